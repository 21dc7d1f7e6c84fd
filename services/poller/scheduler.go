package poller

import (
	"container/heap"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/feedmon/feedmon/internal/config"
)

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
	// polls numbers this feed's polls; long marks a poll in flight that
	// has run so long it no longer holds a slot of its host (longFetch).
	polls     uint64
	long      bool
	longTimer *time.Timer
	removed   bool
	// phased is set after the first poll in this process: its next poll
	// was spread over an interval (spreadDelay).
	phased bool
	// pauseUntil is set when the last poll's answer started a slow-down
	// of the host (hostLimiter): no request to the host before it.
	pauseUntil time.Time
	// pending holds settings reloaded while a poll was in flight.
	pending *config.Feed
}

// logURL is the feed's URL for logs, with credentials hidden. The
// redaction runs only when a record is written (slog.LogValuer): a debug
// line that is not logged costs nothing, and no feed keeps a second copy of
// its URL (at 100,000 feeds, megabytes).
func (f *feed) logURL() redactedURL { return redactedURL(f.url) }

// redactedURL is a feed URL that logs with its credentials hidden.
type redactedURL string

func (u redactedURL) LogValue() slog.Value { return slog.StringValue(config.Redact(string(u))) }

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

// hostState is what the scheduler knows of one host: polls in flight, the
// earliest start of the next one, and the due feeds waiting for it. A host
// with waiting feeds sits once in the host heap, ordered by notBefore, so
// that a thousand feeds of one host cost one heap entry while they wait for
// its gap, not a thousand that are popped and pushed back at every tick.
type hostState struct {
	inflight int
	// long counts polls in flight that no longer hold a slot: at most
	// poll.per_host of them.
	long      int
	notBefore time.Time
	waiting   []*feed
	hidx      int // index in the host heap, -1 when not in it
}

func (hs *hostState) when() time.Time { return hs.notBefore }
func (hs *hostState) setIndex(i int)  { hs.hidx = i }

// loop is the scheduler: it starts each feed's poll when due and its
// host has room, at most poll.workers at once. It returns the feeds it
// had once ctx has ended and every poll in flight has finished.
func (s *Service) loop(ctx, workCtx context.Context) []*feed {
	var (
		due      timeHeap[*feed]
		waiting  timeHeap[*hostState]
		feeds    = map[string]*feed{}
		hosts    = map[string]*hostState{}
		done     = make(chan *feed, s.poll.Workers)
		inflight int
		timer    = time.NewTimer(time.Hour)
		// long receives the polls that have run for longFetch.
		long    = make(chan longPoll)
		stopped = make(chan struct{})
	)
	defer timer.Stop()
	defer close(stopped)
	// Leases of removed feeds are released in the background; the loop
	// returns once they are.
	var releases sync.WaitGroup
	defer releases.Wait()
	longAfter := min(longFetch, s.poll.Timeout.D()/2)

	apply := func() {
		s.mu.Lock()
		list := s.feeds
		s.mu.Unlock()
		now := s.now()
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
					releases.Go(func() { s.releaseLease(workCtx, f) })
				}
			}
		}
		for _, fc := range list {
			interval := fc.Interval.D()
			if interval <= 0 {
				interval = s.poll.Interval.D()
			}
			if f, ok := feeds[fc.URL]; ok {
				// A poll in flight owns its feed; it gets the new
				// settings when it is back.
				if f.inflight {
					f.pending = &config.Feed{Title: fc.Title, Interval: config.Duration(interval)}
				} else {
					f.title, f.interval = fc.Title, interval
				}
				continue
			}
			// A new feed is due within startSpread(interval) of now.
			// Feeds started together (at start-up, or many added by one
			// reload) would otherwise all publish their first items in
			// one burst, and its tail is the pipeline's p99 latency. The
			// spread is short, at most a second: it is for the pipeline,
			// not for politeness, which is per host and kept by the host's
			// line below whenever its feeds come due (a gap apart, at most
			// poll.per_host at once). The two compose: a host whose line
			// is longer than the spread loses nothing to it, and feeds on
			// other hosts wait no longer than the spread.
			first := now.Add(time.Duration(s.rnd() * float64(startSpread(interval))))
			f := &feed{url: fc.URL, title: fc.Title, host: hostOf(fc.URL), interval: interval, shown: stateNew, idx: -1, due: first}
			feeds[fc.URL] = f
			heap.Push(&due, f)
			s.met.feeds.WithLabelValues(stateNew).Inc()
		}
	}
	apply()

	start := func(f *feed, hs *hostState, now time.Time) {
		hs.inflight++
		hs.notBefore = now.Add(s.gap)
		inflight++
		f.inflight = true
		f.polls++
		lp := longPoll{f, f.polls}
		f.longTimer = time.AfterFunc(longAfter, func() {
			select {
			case long <- lp:
			case <-stopped:
			}
		})
		go func() {
			s.pollFeed(workCtx, f)
			done <- f
		}()
	}
	// queue puts a host with waiting feeds in the host heap (once).
	queue := func(hs *hostState) {
		if len(hs.waiting) > 0 && hs.hidx < 0 && hs.inflight < s.poll.PerHost {
			heap.Push(&waiting, hs)
		}
	}

	for {
		now := s.now()
		for inflight < s.poll.Workers && due.Len() > 0 && !due[0].due.After(now) {
			f := heap.Pop(&due).(*feed)
			hs := hosts[f.host]
			if hs == nil {
				hs = &hostState{hidx: -1}
				hosts[f.host] = hs
			}
			if hs.inflight >= s.poll.PerHost || now.Before(hs.notBefore) || len(hs.waiting) > 0 {
				// The host is busy or in its gap: wait in its line.
				hs.waiting = append(hs.waiting, f)
				queue(hs)
				continue
			}
			start(f, hs, now)
		}
		for inflight < s.poll.Workers && waiting.Len() > 0 && !waiting[0].notBefore.After(now) {
			hs := heap.Pop(&waiting).(*hostState)
			for len(hs.waiting) > 0 {
				f := hs.waiting[0]
				hs.waiting[0] = nil
				hs.waiting = hs.waiting[1:]
				if !f.removed {
					start(f, hs, now)
					break
				}
			}
			queue(hs)
		}

		wait := time.Hour
		if inflight < s.poll.Workers {
			if due.Len() > 0 {
				wait = max(due[0].due.Sub(now), 0)
			}
			if waiting.Len() > 0 {
				wait = min(wait, max(waiting[0].notBefore.Sub(now), 0))
			}
		}
		timer.Reset(wait)

		select {
		case <-ctx.Done():
			for inflight > 0 {
				f := <-done
				inflight--
				f.inflight = false
				// Not to fire after the loop is gone.
				f.longTimer.Stop()
			}
			out := make([]*feed, 0, len(feeds))
			for _, f := range feeds {
				out = append(out, f)
			}
			return out
		case f := <-done:
			inflight--
			f.inflight = false
			f.longTimer.Stop()
			// A stopped timer held by every idle feed would be about
			// 200 bytes per feed for nothing.
			f.longTimer = nil
			hs := hosts[f.host]
			if f.long {
				f.long = false
				hs.long--
			} else {
				hs.inflight--
			}
			if !f.pauseUntil.IsZero() {
				// The feed's answer started a slow-down of its host: a
				// short pause for the whole host, then a slower pace that
				// each poll applies to its own next due time.
				hs.notBefore = later(hs.notBefore, f.pauseUntil)
				if hs.hidx >= 0 {
					heap.Fix(&waiting, hs.hidx)
				}
			}
			// A slot on the host is free: its line moves on.
			queue(hs)
			if f.removed {
				releases.Go(func() { s.releaseLease(workCtx, f) })
				continue
			}
			if p := f.pending; p != nil {
				f.title, f.interval, f.pending = p.Title, p.Interval.D(), nil
			}
			if g := f.gaugeState(s.id); g != f.shown {
				s.met.feeds.WithLabelValues(f.shown).Dec()
				s.met.feeds.WithLabelValues(g).Inc()
				f.shown = g
			}
			heap.Push(&due, f)
		case lp := <-long:
			// A fetch that hangs or drips until poll.timeout must not
			// keep the host's other feeds waiting that long: it gives
			// up its slot, up to poll.per_host such fetches per host.
			f := lp.f
			hs := hosts[f.host]
			if f.inflight && f.polls == lp.n && !f.long && hs.long < s.poll.PerHost {
				f.long = true
				hs.long++
				hs.inflight--
				queue(hs)
			}
		case <-s.reload:
			apply()
		case <-s.nudge:
			s.pullForward(&due, feeds)
		case <-timer.C:
		}
	}
}

// longPoll is the n-th poll of f, still in flight after longFetch.
type longPoll struct {
	f *feed
	n uint64
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

func (f *feed) when() time.Time { return f.due }
func (f *feed) setIndex(i int)  { f.idx = i }

// timed is what a timeHeap holds: something due at a time that keeps its
// own index in the heap, so that it can be fixed or removed in place.
type timed interface {
	when() time.Time
	setIndex(i int)
}

// timeHeap orders feeds by next due time, and waiting hosts by when they
// may be asked again (container/heap).
type timeHeap[T timed] []T

func (h timeHeap[T]) Len() int           { return len(h) }
func (h timeHeap[T]) Less(i, j int) bool { return h[i].when().Before(h[j].when()) }
func (h timeHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].setIndex(i)
	h[j].setIndex(j)
}
func (h *timeHeap[T]) Push(x any) {
	v := x.(T)
	v.setIndex(len(*h))
	*h = append(*h, v)
}
func (h *timeHeap[T]) Pop() any {
	old := *h
	v := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	v.setIndex(-1)
	return v
}
