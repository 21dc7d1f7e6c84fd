package poller

import (
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
)

// TestFirstPollsSpreadPerHost: at start-up, feeds on distinct hosts are
// all polled at once, while the feeds of one host are spread by that
// host's gap, one request per gap. The scheduler's clock is pinned and
// moved by hand, so "at once" means without the clock moving at all.
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
	// A pinned random source: a start-up spread drawn from it would put
	// every first poll 0.5 × the spread into the future.
	h := newHarness(t, nil, cfg, WithClock(clock.Now), WithHostGap(gap), WithRand(func() float64 { return 0.5 }))
	stop := run(t, h.svc)
	defer stop()

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
		"with the clock still at start-up: %d of the shared host's feeds fetched, distinct hosts fetched: %v", sharedHits(), singlesDone())
	// The clock has not moved: the shared host's gap has not passed.
	if n := sharedHits(); n != 1 {
		t.Fatalf("shared host got %d requests before its gap passed, want 1 (%s)", n, shared.counts())
	}
	for k := int64(2); k <= 4; k++ {
		clock.set(t0.Add(time.Duration(k-1) * gap))
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
