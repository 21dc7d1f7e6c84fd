package poller

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
)

// run starts svc.Run and returns a stop function that cancels it and
// waits for Run to return.
func run(t testing.TB, svc *Service) (stop func()) {
	t.Helper()
	return testkit.Run(t, "poller", svc.Run)
}

// noJitter takes the jitter out of later polls (the poll after a feed's
// first comes after half its interval) for tests that would otherwise wait
// for it.
var noJitter = WithRand(func() float64 { return 0 })

func fastConfig(interval time.Duration, feeds ...string) *config.PollerConfig {
	cfg := testConfig(feeds...)
	cfg.Poll.Interval = configDuration(interval)
	return cfg
}

func TestRunSchedulesAndReloads(t *testing.T) {
	t.Parallel()
	a := newFeedServer(t, serveXML(fixture(t, "atom.xml"), "application/atom+xml", ""))
	bsrv := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	cfg := fastConfig(100*time.Millisecond, a.URL)
	h := newHarness(t, nil, cfg, WithHostGap(0))
	if err := (&Service{}).Ready(); err == nil {
		t.Error("Ready before Run")
	}
	run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return h.svc.Ready() == nil }, "not ready")
	bustest.Eventually(t, 10*time.Second, func() bool { return a.hits.Load() >= 3 }, "feed A polled %d times, want 3", a.hits.Load())
	if n := streamCount(t, h.bus); n != 1 {
		t.Fatalf("%d items, want 1", n)
	}

	// Add B, drop A.
	cfg2 := fastConfig(100*time.Millisecond, bsrv.URL)
	if err := h.svc.Reload(*cfg2); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return bsrv.hits.Load() >= 1 && streamCount(t, h.bus) == 4 }, "feed B not picked up")
	aHits := a.hits.Load()
	bHits := bsrv.hits.Load()
	bustest.Eventually(t, 20*time.Second, func() bool { return bsrv.hits.Load() >= bHits+3 }, "feed B not polled again")
	// At most one poll of A may have been in flight at the reload.
	if got := a.hits.Load(); got > aHits+1 {
		t.Errorf("removed feed A still polled: %d -> %d", aHits, got)
	}
}

func TestConcurrencyLimits(t *testing.T) {
	t.Parallel()
	body := fixture(t, "atom.xml")
	tests := []struct {
		name     string
		workers  int
		perHost  int
		sameHost bool
		feeds    int
		want     int64
	}{
		{"per host", 10, 2, true, 6, 2},
		{"workers", 3, 10, false, 6, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cur, peak atomic.Int64
			release := make(chan struct{})
			handler := func(w http.ResponseWriter, r *http.Request) {
				n := cur.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				cur.Add(-1)
				w.Write(body)
			}
			var urls []string
			if tc.sameHost {
				srv := newFeedServer(t, handler)
				for i := range tc.feeds {
					urls = append(urls, srv.URL+"/f"+string(rune('a'+i)))
				}
			} else {
				for range tc.feeds {
					urls = append(urls, newFeedServer(t, handler).URL)
				}
			}
			cfg := fastConfig(time.Minute, urls...)
			cfg.Poll.Workers, cfg.Poll.PerHost = tc.workers, tc.perHost
			h := newHarness(t, nil, cfg, WithHostGap(0), noJitter)
			stop := run(t, h.svc)
			bustest.Eventually(t, 10*time.Second, func() bool { return peak.Load() >= tc.want }, "peak %d, want %d", peak.Load(), tc.want)
			// Let a scheduler that would overshoot do so before we look.
			deadline := time.Now().Add(200 * time.Millisecond)
			bustest.Eventually(t, time.Second, func() bool { return time.Now().After(deadline) }, "")
			if p := peak.Load(); p != tc.want {
				t.Errorf("peak concurrency %d, want %d", p, tc.want)
			}
			close(release)
			bustest.Eventually(t, 10*time.Second, func() bool { return streamCount(t, h.bus) == tc.feeds }, "not all feeds fetched")
			stop()
		})
	}
}

func TestHostGap(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var starts []time.Time
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		w.Write(fixture(t, "atom.xml"))
	})
	cfg := fastConfig(time.Minute, srv.URL+"/a", srv.URL+"/b", srv.URL+"/c")
	cfg.Poll.PerHost = 3
	h := newHarness(t, nil, cfg, WithHostGap(150*time.Millisecond), noJitter)
	run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return srv.hits.Load() >= 3 }, "not polled")
	mu.Lock()
	defer mu.Unlock()
	// The gap is kept where requests are sent; on their way to the server
	// each picks up its own connection's delay (a dial, the scheduling of
	// the server's goroutine), tens of milliseconds on a loaded machine.
	// Without the gap the three would arrive within a few milliseconds.
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 100*time.Millisecond {
			t.Errorf("requests %d and %d to one host %s apart, want about 150ms", i-1, i, gap)
		}
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		// Slow, but well inside the grace period.
		timer := time.NewTimer(300 * time.Millisecond)
		defer timer.Stop()
		<-timer.C
		w.Write(fixture(t, "rss.xml"))
	})
	h := newHarness(t, nil, fastConfig(time.Minute, srv.URL), noJitter)
	stop := run(t, h.svc)
	<-started
	begin := time.Now()
	stop()
	if d := time.Since(begin); d > shutdownGrace+time.Second {
		t.Errorf("Run took %s to return", d)
	}
	if n := streamCount(t, h.bus); n != 3 {
		t.Errorf("%d items published by the fetch in flight at shutdown, want 3", n)
	}
	// The lease was handed back.
	kv, err := h.bus.KV(context.Background(), event.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), feedKey(srv.URL)); err == nil {
		t.Error("lease not released on shutdown")
	}
}

func TestListFeeds(t *testing.T) {
	t.Parallel()
	good := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", `"e1"`))
	bad := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	})
	h := newHarness(t, nil, testConfig(good.URL, bad.URL))
	h.poll(good.URL)
	h.poll(good.URL)
	h.poll(bad.URL)
	h.poll(bad.URL)

	var out bytes.Buffer
	if err := ListFeeds(context.Background(), h.bus, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "FEED") {
		t.Fatalf("table:\n%s", out.String())
	}
	var goodLine, badLine string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, good.URL) {
			goodLine = l
		}
		if strings.HasPrefix(l, bad.URL) {
			badLine = l
		}
	}
	if !strings.Contains(goodLine, "not_modified") || !strings.Contains(goodLine, " 3 ") {
		t.Errorf("good feed row: %q", goodLine)
	}
	if !strings.Contains(badLine, "error (x2, backing off until") || !strings.Contains(badLine, "http status 410") {
		t.Errorf("failing feed row: %q", badLine)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	good := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	bad := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", 500) })
	h := newHarness(t, nil, fastConfig(time.Minute, good.URL, bad.URL), WithHostGap(0), noJitter)
	run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool {
		return metricValue(h.svc.met.feeds.WithLabelValues(stateOK)) == 1 && metricValue(h.svc.met.feeds.WithLabelValues(stateError)) == 1
	}, "feeds gauge: ok=%v error=%v", metricValue(h.svc.met.feeds.WithLabelValues(stateOK)), metricValue(h.svc.met.feeds.WithLabelValues(stateError)))
	if v := metricValue(h.svc.met.feeds.WithLabelValues(stateNew)); v != 0 {
		t.Errorf("new feeds gauge %v", v)
	}
	if v := metricValue(h.svc.met.bytes); v < float64(len(fixture(t, "rss.xml"))) {
		t.Errorf("bytes %v", v)
	}
	if v := metricValue(h.svc.met.itemsPerFetch); v != 1 {
		t.Errorf("items per fetch observations %v", v)
	}
	if v := metricValue(h.svc.met.fetchDuration.WithLabelValues("error").(prometheus.Metric)); v != 1 {
		t.Errorf("error fetch duration observations %v", v)
	}
}

// TestLeases runs three pollers on the same feeds: each feed is polled by
// one of them at a time, and when one stops, the others take its feeds
// over within two intervals.
func TestLeases(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	b, url := bustest.NewListening(t)
	var mu sync.Mutex
	byFeed := map[string]int{}
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		byFeed[r.URL.Path]++
		mu.Unlock()
		w.Write(bytes.ReplaceAll(fixture(t, "atom.xml"), []byte("entry-1"), []byte("entry"+r.URL.Path)))
	})
	var feeds []string
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e", "/f"} {
		feeds = append(feeds, srv.URL+p)
	}
	cfg := fastConfig(interval, feeds...)
	cfg.Poll.PerHost = 10

	type poller struct {
		h    *harness
		stop func()
	}
	var ps []poller
	for _, id := range []string{"p1", "p2", "p3"} {
		// Each poller on its own connection, as separate processes would be.
		pb := bustest.Connect(t, url)
		h := newHarness(t, pb, cfg, WithPollerID(id), WithHostGap(0))
		ps = append(ps, poller{h: h, stop: run(t, h.svc)})
	}
	_ = b

	states := func() map[string]feedState {
		out := map[string]feedState{}
		kv, err := ps[0].h.bus.KV(context.Background(), event.BucketFeeds)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range feeds {
			e, err := kv.Get(context.Background(), feedKey(u))
			if err != nil {
				continue
			}
			var st feedState
			json.Unmarshal(e.Value(), &st)
			out[u] = st
		}
		return out
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return len(states()) == len(feeds) }, "not every feed polled")
	bustest.Eventually(t, 10*time.Second, func() bool { return streamCount(t, ps[0].h.bus) == len(feeds) }, "items")

	// No feed is polled more often than one poller would: over a few
	// intervals, hits per feed stay near elapsed/interval.
	mu.Lock()
	before := map[string]int{}
	for k, v := range byFeed {
		before[k] = v
	}
	mu.Unlock()
	t0 := time.Now()
	wait := time.Now().Add(4 * interval)
	bustest.Eventually(t, 10*time.Second, func() bool { return time.Now().After(wait) }, "")
	mu.Lock()
	maxPolls := int(time.Since(t0)/(interval*9/10)) + 1
	for k, v := range byFeed {
		if v-before[k] > maxPolls {
			t.Errorf("feed %s polled %d times in %s by three pollers (max %d)", k, v-before[k], time.Since(t0), maxPolls)
		}
	}
	mu.Unlock()

	// Stop the poller that owns the most feeds; its feeds move.
	owned := map[string][]string{}
	for u, st := range states() {
		owned[st.Poller] = append(owned[st.Poller], u)
	}
	victim := 0
	for i, p := range ps {
		if len(owned[p.h.svc.id]) > len(owned[ps[victim].h.svc.id]) {
			victim = i
		}
	}
	vid := ps[victim].h.svc.id
	if len(owned[vid]) == 0 {
		t.Fatal("no poller owns a feed")
	}
	stopAt := time.Now()
	ps[victim].stop()
	bustest.Eventually(t, 10*time.Second, func() bool {
		for _, u := range owned[vid] {
			st := states()[u]
			if st.Poller == vid || st.LastFetch.Before(stopAt) {
				return false
			}
		}
		return true
	}, "feeds of the stopped poller %s not taken over", vid)
	if d := time.Since(stopAt); d > 2*interval+interval/2 {
		// The bound is two intervals; the half interval is slack for
		// polling the KV in this test and a loaded CI machine.
		t.Errorf("takeover took %s, want within two intervals (%s)", d, 2*interval)
	}
	if n := streamCount(t, ps[0].h.bus); n != len(feeds) {
		t.Errorf("%d items after takeover, want %d (no re-publish)", n, len(feeds))
	}
}

func TestListFeedsEmpty(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := ListFeeds(context.Background(), bustest.New(t), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "FEED") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("table %q", out.String())
	}
}

// TestOffline: with every feed unreachable the poller keeps running,
// retries with backoff and warns once per feed, not once per attempt.
func TestOffline(t *testing.T) {
	t.Parallel()
	dead := newFeedServer(t, serveXML(nil, "", ""))
	deadURL := dead.URL
	dead.Close() // connection refused from now on
	cfg := fastConfig(20*time.Millisecond, deadURL+"/a", deadURL+"/b")
	cfg.Poll.MaxBackoff = configDuration(100 * time.Millisecond)
	h := newHarness(t, nil, cfg, WithHostGap(0), noJitter)
	run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return h.count("error") >= 10 }, "errors %v", h.count("error"))
	if err := h.svc.Ready(); err != nil {
		t.Errorf("not ready while feeds are offline: %v", err)
	}
	if n := h.logs.get(slog.LevelWarn); n != 2 {
		t.Errorf("%d warnings for 2 offline feeds, want 2", n)
	}
	if h.count("ok") != 0 || streamCount(t, h.bus) != 0 {
		t.Error("published from nowhere")
	}
}

// TestReloadChurn reloads the feed list repeatedly while polls are in
// flight and hosts are full: the scheduler must neither lose a feed nor
// keep polling a removed one.
func TestReloadChurn(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hits := map[string]int{}
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.Write(bytes.ReplaceAll(fixture(t, "atom.xml"), []byte("entry-1"), []byte("entry"+r.URL.Path)))
	})
	feedsFor := func(round int) []string {
		var out []string
		for i := range 12 {
			if (i+round)%3 != 0 { // a different third is missing each round
				out = append(out, srv.URL+"/f"+string(rune('a'+i)))
			}
		}
		return out
	}
	cfg := fastConfig(30*time.Millisecond, feedsFor(0)...)
	cfg.Poll.PerHost, cfg.Poll.Workers = 2, 3
	h := newHarness(t, nil, cfg, WithHostGap(0), noJitter)
	run(t, h.svc)
	for round := 1; round <= 20; round++ {
		if err := h.svc.Reload(*fastConfig(30*time.Millisecond, feedsFor(round)...)); err != nil {
			t.Fatal(err)
		}
		n := srv.hits.Load()
		bustest.Eventually(t, 10*time.Second, func() bool { return srv.hits.Load() >= n+2 }, "stalled after reload %d", round)
	}
	// Settle on the final list: every feed in it gets polled, the others stop.
	final := feedsFor(0)
	if err := h.svc.Reload(*fastConfig(30*time.Millisecond, final...)); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range hits {
			out[k] = v
		}
		return out
	}
	before := snapshot()
	bustest.Eventually(t, 10*time.Second, func() bool {
		now := snapshot()
		for _, u := range final {
			p := strings.TrimPrefix(u, srv.URL)
			if now[p] < before[p]+3 {
				return false
			}
		}
		return true
	}, "not every feed of the final list is polled")
	after := snapshot()
	for p, n := range after {
		if !strings.Contains(strings.Join(final, " "), srv.URL+p) && n > before[p]+1 {
			t.Errorf("removed feed %s polled %d more times", p, n-before[p])
		}
	}
}

func TestReloadOPML(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, serveXML(fixture(t, "atom.xml"), "application/atom+xml", ""))
	h := newHarness(t, nil, fastConfig(time.Minute), noJitter)
	run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return h.svc.Ready() == nil }, "not ready")

	path := filepath.Join(t.TempDir(), "subs.opml")
	opml := `<?xml version="1.0"?><opml version="2.0"><body><outline text="News"><outline type="rss" text="Local" xmlUrl="` + srv.URL + `/atom"/></outline></body></opml>`
	if err := os.WriteFile(path, []byte(opml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(time.Minute)
	cfg.OPML = []string{path}
	if err := h.svc.Reload(*cfg); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return streamCount(t, h.bus) == 1 }, "OPML feed not polled")
	items := streamItems(t, h.bus)
	if items[0].FeedTitle != "Local" || items[0].FeedURL != srv.URL+"/atom" {
		t.Errorf("item %+v", items[0])
	}
	cfg.OPML = []string{filepath.Join(t.TempDir(), "missing.opml")}
	if err := h.svc.Reload(*cfg); err == nil {
		t.Error("Reload accepted a missing OPML file")
	}
}
