package poller

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/poller/websub"
)

// pollFeed runs one poll of f: lease, fetch, publish, state, schedule.
// It sets f.due (and f.pauseUntil) for the scheduler.
func (s *Service) pollFeed(ctx context.Context, f *feed) {
	now := s.now()
	f.pauseUntil = time.Time{}
	retry := now.Add(pollJitter.Spread(f.interval, s.rnd))

	held, taken, err := s.leases.acquire(ctx, f.url, f.lease, now, now.Add(s.poll.Timeout.D()+2*f.interval))
	if err != nil {
		s.log.Debug("lease unavailable", "feed", f.logURL(), "err", err)
		f.due = retry
		return
	}
	f.lease = held
	if held == nil || held.Owner != s.id {
		// Another poller has it. Look again at its expiry, or after an
		// interval in case it releases the lease early.
		f.loaded = false
		if s.push != nil {
			s.push.Disown(f.url)
		}
		if held != nil && held.Expires.Before(retry) {
			retry = later(held.Expires, now)
		}
		f.due = retry
		return
	}
	if taken || !f.loaded {
		st, err := s.store.loadState(ctx, f.url)
		if err != nil {
			s.log.Debug("feed state unavailable", "feed", f.logURL(), "err", err)
			f.due = retry
			return
		}
		f.state, f.loaded, f.savedAt = st, true, now
		// Polled recently by us before a restart, or by the poller we
		// took over from: keep its schedule. A backoff carries over; a
		// schedule from a longer interval than the one now configured
		// does not.
		if st.NextDue.After(now) {
			limit := maxStretch(f.interval)
			if st.Failures > 0 {
				limit = max(limit, s.poll.MaxBackoff.D())
			}
			f.due = minTime(st.NextDue, now.Add(limit))
			return
		}
	}

	start := time.Now()
	out := s.refresh(ctx, f, now)
	s.met.fetchDuration.WithLabelValues(out.result).Observe(time.Since(start).Seconds())
	s.m.PollRequests.WithLabelValues(out.result).Inc()
	s.record(ctx, f, now, out)
	if s.push != nil {
		s.push.Polled(f.url, out.disc)
	}

	// Keep the lease a good while past the next poll, renewing about every
	// other poll rather than on each one.
	if need := f.due.Add(f.interval); f.lease.Expires.Before(need) {
		nl, err := s.leases.extend(ctx, f.url, f.lease, f.due.Add(2*f.interval+s.poll.Timeout.D()))
		if err != nil {
			s.log.Debug("lease lost", "feed", f.logURL(), "err", err)
			f.lease, f.loaded = nil, false
			return
		}
		f.lease = nl
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// outcome is what one fetch produced.
type outcome struct {
	result    string // telemetry.PollOK, PollNotModified or PollError
	err       error
	status    int // HTTP status of a rate-limit answer (429, 503), else 0
	hints     hints
	etag      string
	modified  string
	title     string
	items     int
	published int
	// ours is set when the feed was fine but publishing or recording
	// its items failed.
	ours bool
	// disc is what the body said about WebSub (nil: push off, no body).
	disc *websub.Discovery
}

// refresh is the whole refresh flow of one feed: conditional GET, the
// response's questions, decode, parse, normalise, publish the unseen.
func (s *Service) refresh(parent context.Context, f *feed, now time.Time) outcome {
	ctx, cancel := context.WithTimeout(parent, s.poll.Timeout.D())
	defer cancel()
	fail := func(err error) outcome { return outcome{result: telemetry.PollError, err: err} }

	if err := s.gate.wait(ctx, f.host); err != nil {
		return fail(err)
	}
	rb := &requestBuilder{client: s.client, userAgent: s.userAgent}
	if s.push == nil || !s.push.NeedsDiscovery(f.url) {
		rb.withCache(f.state.ETag, f.state.LastModified)
	}
	resp, err := rb.execute(ctx, f.url)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) {
			s.met.refused.Inc()
		}
		return fail(err)
	}
	defer resp.Close()

	if resp.IsRateLimited() {
		out := fail(fmt.Errorf("poller: rate limited (http %d)", resp.resp.StatusCode))
		out.status = resp.resp.StatusCode
		out.hints.retryAfter = resp.ParseRetryDelay(now)
		return out
	}
	if err := resp.HasError(); err != nil {
		return fail(err)
	}
	h := hints{cacheLifetime: resp.CacheLifetime(now)}
	if !resp.IsModified() {
		return outcome{result: telemetry.PollNotModified, hints: h, etag: resp.ETag(), modified: resp.LastModified()}
	}

	body, err := resp.ReadBody(s.poll.MaxBodyBytes)
	if err != nil {
		return fail(err)
	}
	s.met.bytes.Add(float64(len(body)))
	disc := s.discover(resp, body, f.url)
	parsed, entries, err := s.parseBody(body, resp.ContentType(), f.url, f.title, resp.EffectiveURL(), now)
	if err != nil {
		out := fail(err)
		out.disc = disc
		return out
	}
	h.feedTTL = feedTTL(parsed)
	s.met.itemsPerFetch.Observe(float64(len(entries)))

	// Publishing has its own budget: a fetch that used most of
	// poll.timeout must not leave its items half published.
	pctx, pcancel := context.WithTimeout(parent, s.publishTimeout)
	defer pcancel()
	published, err := s.publishNew(pctx, f.url, entries)
	out := outcome{
		result:    telemetry.PollOK,
		hints:     h,
		etag:      resp.ETag(),
		modified:  resp.LastModified(),
		title:     htmltext.ToText(parsed.Title),
		items:     len(entries),
		published: published,
		disc:      disc,
	}
	if err != nil {
		out.result, out.err, out.ours = telemetry.PollError, err, true
	}
	return out
}

// parseBody is the parse entry point of a feed body, polled or pushed:
// charset handling and recovery (counted), parse, normalise into items
// with their ids.
func (s *Service) parseBody(body []byte, contentType, feedURL, feedTitle, baseURL string, now time.Time) (*gofeed.Feed, []entry, error) {
	parsed, recs, err := parseFeed(body, contentType)
	s.met.recovered(recs)
	if err != nil {
		return nil, nil, err
	}
	base, _ := url.Parse(baseURL)
	n := normalizer{feedURL: feedURL, feedTitle: feedTitle, base: base, now: now, maxItems: s.poll.MaxItems}
	return parsed, n.items(parsed), nil
}

// publish publishes entries (oldest first) and returns which ones made it.
// They go out asynchronously, one feed's new items in flight together, and
// are acknowledged before publish returns: a first fetch of a big feed list
// is bound by round trips otherwise. Any item whose async publish fails is
// retried through bus.Publish, which retries until ctx ends.
func (s *Service) publish(ctx context.Context, subject string, fresh []*entry) (map[string]bool, error) {
	published := make(map[string]bool, len(fresh))
	if len(fresh) == 0 {
		return published, nil
	}
	datas := make([][]byte, len(fresh))
	futs := make([]jetstream.PubAckFuture, len(fresh))
	for i, e := range fresh {
		data, err := e.item.Marshal()
		if err != nil {
			return published, fmt.Errorf("poller: encode item: %w", err)
		}
		datas[i] = data
		if f, err := s.bus.PublishAsync(subject, e.item.ID, data); err == nil {
			futs[i] = f
		}
	}
	for i, e := range fresh {
		ok := false
		if futs[i] != nil {
			select {
			case <-futs[i].Ok():
				ok = true
			case <-futs[i].Err():
			case <-ctx.Done():
				return published, fmt.Errorf("poller: publish: %w", ctx.Err())
			}
		}
		if !ok {
			if _, err := s.bus.Publish(ctx, subject, e.item.ID, datas[i]); err != nil {
				return published, fmt.Errorf("poller: publish: %w", err)
			}
		}
		published[e.item.ID] = true
		s.m.ItemsPublished.Inc()
	}
	return published, nil
}

// publishNew publishes the entries the feed's seen-set does not hold,
// oldest first, then records them as seen. Publishing first means a crash
// in between re-publishes (and JetStream's duplicate window drops the
// copy) rather than losing an item.
func (s *Service) publishNew(ctx context.Context, feedURL string, entries []entry) (int, error) {
	seen, err := s.store.loadSeen(ctx, feedURL)
	if err != nil {
		return 0, err
	}
	subject := event.ItemsSubject(feedURL)
	var fresh []*entry
	dupID := map[string]bool{}
	dupAlt := map[string]bool{}
	for i := len(entries) - 1; i >= 0; i-- {
		e := &entries[i]
		if seen.has(e) || dupID[e.item.ID] || (e.alt != "" && dupAlt[e.alt]) {
			continue
		}
		dupID[e.item.ID] = true
		if e.alt != "" {
			dupAlt[e.alt] = true
		}
		fresh = append(fresh, e)
	}
	published, pubErr := s.publish(ctx, subject, fresh)
	limit := min(max(2*len(entries), minSeen), max(2*s.poll.MaxItems, minSeen))
	next := seen.rebuild(entries, published, limit)
	next.rev = seen.rev
	if len(published) > 0 || !equalStrings(next.IDs, seen.IDs) {
		// What went out must be recorded even if ctx ran out while
		// publishing; a short grace of its own keeps shutdown bounded.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := s.store.saveSeen(sctx, feedURL, next, limit); err != nil {
			return len(published), errors.Join(pubErr, err)
		}
	}
	return len(published), pubErr
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// record folds an outcome into the feed's state, schedules the next poll,
// logs state changes (once each, not every failed poll) and saves the state.
func (s *Service) record(ctx context.Context, f *feed, now time.Time, out outcome) {
	st := &f.state
	prev := st.State
	prevErr := st.Error
	st.URL = f.url
	st.Poller = s.id
	st.LastFetch = now
	if st.LastChange.IsZero() {
		st.LastChange = now
	}
	switch out.result {
	case telemetry.PollError:
		// Our own failure (NATS) says nothing about the feed: no backoff,
		// or a NATS outage would leave feeds idle for hours after it.
		if !out.ours {
			st.Failures++
		}
		st.State, st.Error = stateError, config.Redact(out.err.Error())
	default:
		st.Failures, st.Error = 0, ""
		st.State = stateOK
		if out.result == telemetry.PollNotModified {
			st.State = stateNotModified
		}
		if out.etag != "" || out.result == telemetry.PollOK {
			st.ETag = out.etag
		}
		if out.modified != "" || out.result == telemetry.PollOK {
			st.LastModified = out.modified
		}
		if out.title != "" {
			st.Title = out.title
		}
		if out.published > 0 {
			st.LastChange = now
		}
		if out.result == telemetry.PollOK {
			st.ItemsSeen = out.items
			st.TTL = out.hints.feedTTL
		}
		out.hints.feedTTL = st.TTL
		st.Published += int64(out.published)
	}
	delay := nextDelay(s.pollInterval(f), s.poll.MaxBackoff.D(), st.Failures, out.hints, now.Sub(st.LastChange), s.rnd)
	if !f.phased && st.Failures == 0 {
		// The first polls after start-up all fall within a few seconds;
		// spread the next one over a whole interval so that feeds do not
		// stay in step (bursts of items, of requests to shared hosts).
		delay = spreadDelay(delay, s.rnd)
	}
	f.phased = true
	delay = max(delay, s.slowHost(ctx, f, now, out))
	st.NextDue = now.Add(delay)
	st.BackoffUntil = time.Time{}
	if st.Failures > 0 {
		st.BackoffUntil = st.NextDue
		if st.Failures > 1 {
			s.met.backoffs.Inc()
		}
	}
	f.due = st.NextDue

	feedAttr := f.logURL()
	switch {
	case st.State == stateError && prev != stateError:
		s.log.Warn("feed fetch failing", "feed", feedAttr, "err", st.Error, "retry_in", delay.Round(time.Second))
	case st.State == stateError:
		s.log.Debug("feed fetch still failing", "feed", feedAttr, "err", st.Error, "failures", st.Failures, "retry_in", delay.Round(time.Second))
	case prev == stateError:
		s.log.Info("feed recovered", "feed", feedAttr, "last_error", prevErr)
	}
	if out.published > 0 {
		s.log.Debug("feed items published", "feed", feedAttr, "items", out.published)
	}

	// An unchanged 304 is not worth a KV write every poll.
	if out.result == telemetry.PollNotModified && prev == stateNotModified && now.Sub(f.savedAt) < stateFlushAge {
		return
	}
	if err := s.store.saveState(ctx, st); err != nil {
		s.log.Debug("feed state not saved", "feed", feedAttr, "err", err)
		return
	}
	f.savedAt = now
}
