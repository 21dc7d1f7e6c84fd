// Package poller fetches RSS, Atom and JSON feeds and publishes their new
// items on NATS (feedmon.items.<feed>). It schedules each feed (interval,
// ttl and cache hints, Retry-After, backoff), fetches it with its own
// bounded HTTP client, parses and normalises the items, and publishes only
// those not seen before. Feed state, seen-sets and leases live in JetStream
// KV, so a restarted or second poller continues where another stopped.
package poller

import (
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/version"
)

const (
	// shutdownGrace bounds how long fetches in flight may run after Run's
	// context ends; the contract wants the process gone within 10s.
	shutdownGrace = 7 * time.Second
	// minSeen is the smallest seen-set kept per feed, so a small feed that
	// rotates items quickly still recognises recent ones.
	minSeen = 200
	// stateFlushAge: a 304 that changes nothing but the fetch time is
	// written to KV at most this often, so steady polling of unchanged feeds
	// does not turn into a KV write per request.
	stateFlushAge = 30 * time.Second
	// maxStartSpread spreads the first polls after start-up.
	maxStartSpread = 5 * time.Second
)

// Clock tells the time; tests inject one to pin fetched_at and scheduling.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Option configures a Service.
type Option func(*Service)

// WithHTTPClient replaces the poller's own HTTP client. The replacement
// must enforce timeouts and the address check itself.
func WithHTTPClient(c *http.Client) Option { return func(s *Service) { s.client = c } }

// WithClock sets the clock used for fetched_at, date checks and scheduling.
func WithClock(c Clock) Option { return func(s *Service) { s.clock = c } }

// WithPollerID names this poller in leases (default: hostname and a random suffix).
func WithPollerID(id string) Option { return func(s *Service) { s.id = id } }

// WithHostGap sets the minimum time between request starts to one host
// (default DefaultHostGap / poll.per_host).
func WithHostGap(d time.Duration) Option { return func(s *Service) { s.gap = d; s.gapSet = true } }

// WithRand sets the source of jitter, a function returning [0,1).
func WithRand(f func() float64) Option { return func(s *Service) { s.rnd = f } }

// Service is the poller.
type Service struct {
	poll      config.Poll
	bus       *bus.Bus
	m         *telemetry.Metrics
	met       *metrics
	log       *slog.Logger
	client    *http.Client
	userAgent string
	clock     Clock
	rnd       func() float64
	id        string
	gap       time.Duration
	gapSet    bool

	ready  atomic.Bool
	store  *store
	leases *leaser

	mu      sync.Mutex
	feeds   []config.Feed
	running bool
	reload  chan struct{}
}

// New builds a poller for cfg's feeds (and OPML files). It does not touch
// NATS: Run opens the KV buckets, retrying until NATS is there.
func New(cfg *config.Config, b *bus.Bus, m *telemetry.Metrics, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Service, error) {
	if cfg == nil || b == nil || m == nil || log == nil {
		return nil, errors.New("poller: New needs a config, a bus, metrics and a logger")
	}
	p := cfg.Poll
	// Zero values come from a Config built in code rather than loaded;
	// give them the documented defaults instead of a poller that never
	// fetches.
	if p.Interval <= 0 {
		p.Interval = config.Duration(config.DefaultInterval)
	}
	if p.Workers < 1 {
		p.Workers = config.DefaultWorkers
	}
	if p.PerHost < 1 {
		p.PerHost = config.DefaultPerHost
	}
	if p.Timeout <= 0 {
		p.Timeout = config.Duration(config.DefaultFetchTimeout)
	}
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = config.DefaultMaxBodyBytes
	}
	if p.MaxItems < 1 {
		p.MaxItems = config.DefaultMaxItems
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = config.Duration(config.DefaultMaxBackoff)
	}
	s := &Service{
		poll:      p,
		bus:       b,
		m:         m,
		log:       log.With("service", "poller"),
		userAgent: p.UserAgent,
		clock:     realClock{},
		reload:    make(chan struct{}, 1),
	}
	if s.userAgent == "" {
		s.userAgent = version.UserAgent()
	}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		guard, err := newAddrGuard(p.AllowNetworks)
		if err != nil {
			return nil, err
		}
		s.client = newHTTPClient(p.Timeout.D(), p.PerHost, guard)
	}
	if !s.gapSet {
		s.gap = hostGap(p.PerHost)
	}
	if s.rnd == nil {
		s.rnd = rand.Float64
	}
	if s.id == "" {
		s.id = defaultPollerID()
	}
	s.met = newMetrics(reg)
	feeds, err := feedList(cfg)
	if err != nil {
		return nil, err
	}
	s.feeds = feeds
	return s, nil
}

func defaultPollerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = crand.Read(b[:])
	return event.Token(host) + "-" + hex.EncodeToString(b[:])
}

// Ready is nil once the poller's KV buckets are open.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return errors.New("poller: kv buckets not open yet")
	}
	return nil
}

// Reload replaces the feed list: added feeds start, removed ones stop, a
// changed interval or title applies from the next poll. Other poll.*
// settings need a restart.
func (s *Service) Reload(cfg *config.Config) error {
	feeds, err := feedList(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.feeds = feeds
	s.mu.Unlock()
	select {
	case s.reload <- struct{}{}:
	default: // a reload is already pending; it will read the newest list
	}
	s.log.Info("feed list reloaded", "feeds", len(feeds))
	return nil
}

// feedList is cfg's feeds plus those of its OPML files, each URL once.
func feedList(cfg *config.Config) ([]config.Feed, error) {
	out := make([]config.Feed, 0, len(cfg.Feeds))
	seen := map[string]bool{}
	for _, f := range cfg.Feeds {
		if !seen[f.URL] {
			seen[f.URL] = true
			if f.Interval <= 0 {
				f.Interval = cfg.Poll.Interval
			}
			out = append(out, f)
		}
	}
	for _, path := range cfg.OPML {
		fs, err := readOPML(path)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !seen[f.URL] {
				seen[f.URL] = true
				f.Interval = cfg.Poll.Interval
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// Run polls until ctx ends. Then it starts no new fetch, lets those in
// flight finish (publishing what they fetched) within a grace period,
// releases its leases and returns nil.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("poller: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	if err := bus.Retry(ctx, s.log, "poller kv buckets", s.open); err != nil {
		return nil // ctx ended before NATS was there
	}
	s.ready.Store(true)
	s.log.Info("poller started", "poller_id", s.id, "workers", s.poll.Workers, "per_host", s.poll.PerHost)

	// Fetches run on a context that outlives ctx by the grace period, so
	// a fetch in flight at shutdown can publish what it got.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancelWork)
		context.AfterFunc(workCtx, func() { t.Stop() })
	})
	defer stopGrace()

	feeds := s.loop(ctx, workCtx)

	// Hand our feeds to other pollers at once rather than at lease expiry.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, f := range feeds {
		if err := s.leases.release(rctx, f.url, f.lease); err != nil {
			s.log.Debug("lease not released", "feed", config.Redact(f.url), "err", err)
		}
	}
	s.log.Info("poller stopped")
	return nil
}

// open opens the poller's KV buckets (creating them when missing).
func (s *Service) open(ctx context.Context) error {
	feeds, err := s.bus.KV(ctx, event.BucketFeeds)
	if err != nil {
		return err
	}
	seen, err := s.bus.KV(ctx, event.BucketSeen)
	if err != nil {
		return err
	}
	leases, err := s.bus.KV(ctx, event.BucketLeases)
	if err != nil {
		return err
	}
	s.store = &store{feeds: feeds, seen: seen}
	s.leases = &leaser{kv: leases, id: s.id}
	return nil
}

// feed is one scheduled feed. Outside its poll only the scheduler
// goroutine touches it; during its poll only the poll's goroutine does.
type feed struct {
	url      string
	title    string
	host     string
	interval time.Duration

	state   feedState
	loaded  bool
	savedAt time.Time
	lease   *lease
	shown   string // state counted in the feeds gauge

	due      time.Time
	idx      int
	inflight bool
	removed  bool
	// hostDelay is a Retry-After the last poll got, applied to the host.
	hostDelay time.Duration
	redacted  string
}

// logURL is the feed's URL with credentials hidden, for logs. Only the
// poll's goroutine calls it.
func (f *feed) logURL() string {
	if f.redacted == "" {
		f.redacted = config.Redact(f.url)
	}
	return f.redacted
}

// gaugeState is the feed's label in the feeds gauge.
func (f *feed) gaugeState(self string) string {
	switch {
	case f.lease != nil && f.lease.Owner != self:
		return stateElsewhere
	case f.loaded && f.state.State != "":
		return f.state.State
	}
	return f.shown
}

type hostState struct {
	inflight  int
	notBefore time.Time
	waiting   []*feed
}

// loop is the scheduler: it starts each feed's poll when due and its
// host has room, at most poll.workers at once. It returns the feeds it
// had once ctx has ended and every poll in flight has finished.
func (s *Service) loop(ctx, workCtx context.Context) []*feed {
	var (
		due      dueHeap
		feeds    = map[string]*feed{}
		hosts    = map[string]*hostState{}
		done     = make(chan *feed, s.poll.Workers)
		inflight int
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()

	apply := func() {
		s.mu.Lock()
		list := s.feeds
		s.mu.Unlock()
		now := s.clock.Now()
		want := make(map[string]config.Feed, len(list))
		for _, fc := range list {
			want[fc.URL] = fc
		}
		for u, f := range feeds {
			if _, ok := want[u]; !ok {
				f.removed = true
				delete(feeds, u)
				if f.idx >= 0 {
					heap.Remove(&due, f.idx)
				}
				s.met.feeds.WithLabelValues(f.shown).Dec()
				if !f.inflight {
					go s.releaseLease(workCtx, f)
				}
			}
		}
		for _, fc := range list {
			interval := fc.Interval.D()
			if interval <= 0 {
				interval = s.poll.Interval.D()
			}
			if f, ok := feeds[fc.URL]; ok {
				f.title, f.interval = fc.Title, interval
				continue
			}
			f := &feed{url: fc.URL, title: fc.Title, host: hostOf(fc.URL), interval: interval, shown: stateNew, idx: -1}
			spread := min(interval/10, maxStartSpread)
			f.due = now.Add(time.Duration(s.rnd() * float64(spread)))
			feeds[fc.URL] = f
			heap.Push(&due, f)
			s.met.feeds.WithLabelValues(stateNew).Inc()
		}
	}
	apply()

	for {
		now := s.clock.Now()
		for inflight < s.poll.Workers && due.Len() > 0 && !due[0].due.After(now) {
			f := heap.Pop(&due).(*feed)
			hs := hosts[f.host]
			if hs == nil {
				hs = &hostState{}
				hosts[f.host] = hs
			}
			if hs.inflight >= s.poll.PerHost {
				hs.waiting = append(hs.waiting, f)
				continue
			}
			if now.Before(hs.notBefore) {
				f.due = hs.notBefore
				heap.Push(&due, f)
				continue
			}
			hs.inflight++
			hs.notBefore = now.Add(s.gap)
			inflight++
			f.inflight = true
			go func() {
				s.pollFeed(workCtx, f)
				done <- f
			}()
		}

		wait := time.Hour
		if due.Len() > 0 && inflight < s.poll.Workers {
			wait = max(due[0].due.Sub(now), 0)
		}
		timer.Reset(wait)

		select {
		case <-ctx.Done():
			for inflight > 0 {
				f := <-done
				inflight--
				f.inflight = false
			}
			out := make([]*feed, 0, len(feeds))
			for _, f := range feeds {
				out = append(out, f)
			}
			return out
		case f := <-done:
			inflight--
			f.inflight = false
			hs := hosts[f.host]
			hs.inflight--
			if f.hostDelay > 0 {
				// The server asked us to slow down: that holds for every
				// feed on the host, not just this one.
				hs.notBefore = later(hs.notBefore, s.clock.Now().Add(f.hostDelay))
			}
			// A slot on the host is free: the longest waiting feed gets it.
			for len(hs.waiting) > 0 {
				w := hs.waiting[0]
				hs.waiting = hs.waiting[1:]
				if !w.removed {
					heap.Push(&due, w)
					break
				}
			}
			if f.removed {
				go s.releaseLease(workCtx, f)
				continue
			}
			if g := f.gaugeState(s.id); g != f.shown {
				s.met.feeds.WithLabelValues(f.shown).Dec()
				s.met.feeds.WithLabelValues(g).Inc()
				f.shown = g
			}
			heap.Push(&due, f)
		case <-s.reload:
			apply()
		case <-timer.C:
		}
	}
}

func (s *Service) releaseLease(ctx context.Context, f *feed) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.leases.release(ctx, f.url, f.lease); err != nil {
		s.log.Debug("lease not released", "feed", config.Redact(f.url), "err", err)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Host)
}

// dueHeap orders feeds by next due time.
type dueHeap []*feed

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *dueHeap) Push(x any) {
	f := x.(*feed)
	f.idx = len(*h)
	*h = append(*h, f)
}
func (h *dueHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	f.idx = -1
	return f
}

// pollFeed runs one poll of f: lease, fetch, publish, state, schedule.
// It sets f.due (and f.hostDelay) for the scheduler.
func (s *Service) pollFeed(ctx context.Context, f *feed) {
	now := s.clock.Now()
	f.hostDelay = 0
	retry := now.Add(jitter(f.interval, s.rnd))

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
		// took over from: keep its schedule.
		// A backoff carries over; a schedule from a longer interval than
		// the one now configured does not.
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
	hints     hints
	etag      string
	modified  string
	title     string
	items     int
	published int
}

// refresh is the whole refresh flow of one feed: conditional GET, the
// response's questions, decode, parse, normalise, publish the unseen.
func (s *Service) refresh(ctx context.Context, f *feed, now time.Time) outcome {
	ctx, cancel := context.WithTimeout(ctx, s.poll.Timeout.D())
	defer cancel()
	fail := func(err error) outcome { return outcome{result: telemetry.PollError, err: err} }

	rb := &requestBuilder{client: s.client, userAgent: s.userAgent}
	resp, err := rb.withCache(f.state.ETag, f.state.LastModified).execute(ctx, f.url)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) {
			s.met.refused.Inc()
		}
		return fail(err)
	}
	defer resp.Close()

	if resp.IsRateLimited() {
		out := fail(fmt.Errorf("poller: rate limited (http %d)", resp.resp.StatusCode))
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
	body, err = toUTF8(body, resp.ContentType())
	if err != nil {
		return fail(err)
	}
	parsed, err := parseFeed(body)
	if err != nil {
		return fail(err)
	}
	h.feedTTL = feedTTL(parsed)

	base, _ := url.Parse(resp.EffectiveURL())
	n := normalizer{feedURL: f.url, feedTitle: f.title, base: base, now: now, maxItems: s.poll.MaxItems}
	entries := n.items(parsed)
	s.met.itemsPerFetch.Observe(float64(len(entries)))

	published, err := s.publishNew(ctx, f.url, entries)
	out := outcome{
		result:    telemetry.PollOK,
		hints:     h,
		etag:      resp.ETag(),
		modified:  resp.LastModified(),
		title:     htmltext.ToText(parsed.Title),
		items:     len(entries),
		published: published,
	}
	if err != nil {
		out.result, out.err = telemetry.PollError, err
	}
	return out
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
		if f, err := s.bus.JS.PublishAsync(subject, data, jetstream.WithMsgID(e.item.ID)); err == nil {
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
	limit := max(2*len(entries), minSeen)
	next := seen.rebuild(entries, published, min(limit, max(2*s.poll.MaxItems, minSeen)))
	if len(published) > 0 || !equalStrings(next.IDs, seen.IDs) {
		if err := s.store.saveSeen(ctx, feedURL, next); err != nil {
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
		st.Failures++
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
		}
		st.Published += int64(out.published)
	}
	delay := nextDelay(f.interval, s.poll.MaxBackoff.D(), st.Failures, out.hints, now.Sub(st.LastChange), s.rnd)
	st.NextDue = now.Add(delay)
	st.BackoffUntil = time.Time{}
	if st.Failures > 0 {
		st.BackoffUntil = st.NextDue
		if st.Failures > 1 {
			s.met.backoffs.Inc()
		}
	}
	f.due = st.NextDue
	if out.hints.retryAfter > 0 {
		f.hostDelay = out.hints.retryAfter
	}

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
