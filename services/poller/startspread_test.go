package poller

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
)

// TestFirstPollsSpreadPerHost: the start-up spread does not replace the
// per-host line. Every first poll below falls at the same point of the
// spread (the random source is pinned); once it is reached, feeds on
// distinct hosts are all polled at once, while the feeds of one host are
// spread by that host's gap, one request per gap. The scheduler's clock is
// pinned and moved by hand, so "at once" means without the clock moving.
func TestFirstPollsSpreadPerHost(t *testing.T) {
	t.Parallel()
	const gap = 300 * time.Millisecond
	shared := newHostFarm(t, 4, nil)
	var singles []*hostFarm
	urls := shared.urls()
	for range 4 {
		hf := newHostFarm(t, 1, nil)
		singles = append(singles, hf)
		urls = append(urls, hf.url(0))
	}
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clock := &manualClock{t: t0}
	cfg := fastConfig(time.Minute, urls...)
	cfg.Poll.Workers, cfg.Poll.PerHost = 16, 4
	// A pinned random source: every first poll is due half the start-up
	// spread (startSpread: 1s at this interval) after start-up.
	h := newHarness(t, nil, cfg, WithClock(clock.Now), WithHostGap(gap), WithRand(func() float64 { return 0.5 }))
	stop := run(t, h.svc)
	defer stop()
	// The clock moves only once the scheduler has taken the feeds on at t0.
	scheduled := func() float64 { return metricValue(h.svc.met.feeds.WithLabelValues(stateNew)) }
	bustest.Eventually(t, 10*time.Second, func() bool { return scheduled() == float64(len(urls)) },
		"feeds scheduled: %s, want %d", lazy(func() string { return fmt.Sprint(scheduled()) }), len(urls))
	t1 := t0.Add(startSpread(time.Minute) / 2)
	clock.set(t1)

	sharedHits := func() int64 {
		var n int64
		for i := range shared.hits {
			n += shared.hits[i].Load()
		}
		return n
	}
	singlesDone := func() bool {
		for _, hf := range singles {
			if hf.hits[0].Load() < 1 {
				return false
			}
		}
		return true
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return singlesDone() && sharedHits() >= 1 },
		"with the clock at the first polls: %d of the shared host's feeds fetched, distinct hosts fetched: %v", sharedHits(), singlesDone())
	// The clock has not moved: the shared host's gap has not passed.
	if n := sharedHits(); n != 1 {
		t.Fatalf("shared host got %d requests before its gap passed, want 1 (%s)", n, shared.counts())
	}
	for k := int64(2); k <= 4; k++ {
		clock.set(t1.Add(time.Duration(k-1) * gap))
		bustest.Eventually(t, 10*time.Second, func() bool { return sharedHits() >= k },
			"after %d gaps: shared host got %d requests, want %d", k-1, sharedHits(), k)
		if n := sharedHits(); n != k {
			t.Fatalf("after %d gaps: shared host got %d requests, want %d (%s)", k-1, n, k, shared.counts())
		}
	}
	if !shared.fetchedAtLeast(1, nil) {
		t.Errorf("a feed of the shared host was never fetched: %s", shared.counts())
	}
	for i, hf := range singles {
		if n := hf.hits[0].Load(); n != 1 {
			t.Errorf("single-feed host %d fetched %d times, want 1", i, n)
		}
	}
}

// TestFirstPollsSpreadOverStart: feeds on distinct hosts do not all make
// their first poll in the same instant, or the whole pipeline gets every
// feed's first items in one burst; their first polls are spread over
// min(interval/10, 1s), and no further. The random source hands the feeds
// k/n of the spread in turn (the last one just under all of it), and the
// scheduler's clock is moved by hand from one due time to the next: at each
// step exactly the feeds due by then have been fetched.
func TestFirstPollsSpreadOverStart(t *testing.T) {
	t.Parallel()
	const n = 10
	cases := []struct {
		name     string
		interval time.Duration
		spread   time.Duration
	}{
		{"a tenth of a short interval", 5 * time.Second, 500 * time.Millisecond},
		{"at most a second", time.Minute, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var farms []*hostFarm
			var urls []string
			for range n {
				hf := newHostFarm(t, 1, nil)
				farms = append(farms, hf)
				urls = append(urls, hf.url(0))
			}
			// The first n draws are the feeds' start-up spread; later
			// ones (the jitter of second polls) do not matter, the
			// clock never reaches a second poll.
			var draws atomic.Int64
			rnd := func() float64 {
				k := draws.Add(1) - 1
				switch {
				case k < n-1:
					return float64(k) / n
				case k == n-1:
					return math.Nextafter(1, 0)
				}
				return 0.5
			}
			t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
			clock := &manualClock{t: t0}
			cfg := fastConfig(tc.interval, urls...)
			cfg.Poll.Workers = 2 * n
			h := newHarness(t, nil, cfg, WithClock(clock.Now), WithHostGap(0), WithRand(rnd))
			stop := run(t, h.svc)
			defer stop()

			fetched := func() int64 {
				var c int64
				for _, hf := range farms {
					c += hf.hits[0].Load()
				}
				return c
			}
			for j := range n {
				// First the clock as the scheduler started (the first
				// feed is due then; its poll shows the feeds were
				// scheduled before the clock moved), then halfway
				// between the j-th due time and the next, then the end
				// of the spread.
				at := t0.Add(tc.spread * time.Duration(2*j+1) / (2 * n))
				switch j {
				case 0:
					at = t0
				case n - 1:
					at = t0.Add(tc.spread)
				}
				clock.set(at)
				want := int64(j + 1)
				bustest.Eventually(t, 10*time.Second, func() bool { return fetched() >= want },
					"clock at start+%s: %d first polls, want %d", at.Sub(t0), fetched(), want)
				if got := fetched(); got != want {
					t.Fatalf("clock at start+%s: %d first polls, want %d: the first polls are not spread over %s",
						at.Sub(t0), got, want, tc.spread)
				}
			}
			for i, hf := range farms {
				if c := hf.hits[0].Load(); c != 1 {
					t.Errorf("host %d fetched %d times, want 1", i, c)
				}
			}
		})
	}
}
