package poller

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// hostFarm is one httptest host serving n feeds at /f0 ... /f<n-1>,
// counting the requests each gets; answer decides per feed index what to
// send (nil = the atom fixture).
type hostFarm struct {
	*feedServer
	hits []atomic.Int64
	mu   sync.Mutex
	at   [][]time.Time // request arrivals per feed
}

func newHostFarm(t *testing.T, n int, answer func(i int, w http.ResponseWriter) bool) *hostFarm {
	t.Helper()
	body := fixture(t, "atom.xml")
	hf := &hostFarm{hits: make([]atomic.Int64, n), at: make([][]time.Time, n)}
	hf.feedServer = newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/f"))
		if err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		hf.hits[i].Add(1)
		hf.mu.Lock()
		hf.at[i] = append(hf.at[i], time.Now())
		hf.mu.Unlock()
		if answer != nil && answer(i, w) {
			return
		}
		w.Header().Set("Content-Type", "application/atom+xml")
		w.Write(body)
	})
	return hf
}

// arrivals returns when feed i was requested.
func (hf *hostFarm) arrivals(i int) []time.Time {
	hf.mu.Lock()
	defer hf.mu.Unlock()
	return append([]time.Time(nil), hf.at[i]...)
}

func (hf *hostFarm) url(i int) string { return hf.URL + "/f" + strconv.Itoa(i) }

func (hf *hostFarm) urls() []string {
	out := make([]string, len(hf.hits))
	for i := range out {
		out[i] = hf.url(i)
	}
	return out
}

func (hf *hostFarm) counts() string {
	var b strings.Builder
	b.WriteString("fetches per feed:")
	for i := range hf.hits {
		fmt.Fprintf(&b, " f%d=%d", i, hf.hits[i].Load())
	}
	return b.String()
}

// fetchedAtLeast reports whether every feed not in skip was fetched n times.
func (hf *hostFarm) fetchedAtLeast(n int64, skip map[int]bool) bool {
	for i := range hf.hits {
		if !skip[i] && hf.hits[i].Load() < n {
			return false
		}
	}
	return true
}

// lazy is formatted when a failure is reported, so a message can show the
// state at the deadline rather than when the wait began.
type lazy func() string

func (l lazy) String() string { return l() }

// rateLimit answers 429 (or 503) with Retry-After for the feeds in limited.
func rateLimit(status int, retryAfter string, limited map[int]bool) func(int, http.ResponseWriter) bool {
	return func(i int, w http.ResponseWriter) bool {
		if !limited[i] {
			return false
		}
		w.Header().Set("Retry-After", retryAfter)
		w.WriteHeader(status)
		return true
	}
}

// userConfig is what a user would write for a feed farm on one host: the
// defaults of every poll setting but the interval.
func userConfig(interval time.Duration, urls []string) *config.PollerConfig {
	cfg := testConfig(urls...)
	cfg.Poll.Interval = config.Duration(interval)
	cfg.Poll.Workers = config.DefaultWorkers
	cfg.Poll.PerHost = config.DefaultPerHost
	cfg.Poll.MaxBackoff = config.Duration(config.DefaultMaxBackoff)
	return cfg
}

// TestRateLimitedFeedDoesNotSilenceHost is the case as users met it: one
// host with 14 feeds at a 2s interval, one of them answering 429 with
// Retry-After: 3600. That feed waits; the host's other feeds keep being
// fetched: each at least twice within a minute.
func TestRateLimitedFeedDoesNotSilenceHost(t *testing.T) {
	t.Parallel()
	const limited = 5
	hf := newHostFarm(t, 14, rateLimit(http.StatusTooManyRequests, "3600", map[int]bool{limited: true}))
	h := newHarness(t, nil, userConfig(2*time.Second, hf.urls()))
	run(t, h.svc)

	bustest.Eventually(t, 60*time.Second, func() bool {
		return hf.fetchedAtLeast(2, map[int]bool{limited: true})
	}, "%s", lazy(hf.counts))
	if n := hf.hits[limited].Load(); n != 1 {
		t.Errorf("the rate-limited feed was fetched %d times, want 1 (it asked for an hour)", n)
	}
}

// TestHostSlowdownSeveralAnswers: several feeds of one host answer 429 or
// 503 with long Retry-Afters. The host still does not stop: one slow-down,
// extended by each answer but paused only once, ending a bounded time after
// the latest answer; each answering feed waits, the others are fetched.
func TestHostSlowdownSeveralAnswers(t *testing.T) {
	t.Parallel()
	answers := map[int]struct {
		status     int
		retryAfter string
	}{
		2:  {http.StatusTooManyRequests, "3600"},
		7:  {http.StatusTooManyRequests, "86400"},
		9:  {http.StatusServiceUnavailable, "3600"},
		11: {http.StatusTooManyRequests, "600"},
	}
	limited := map[int]bool{}
	for i := range answers {
		limited[i] = true
	}
	hf := newHostFarm(t, 14, func(i int, w http.ResponseWriter) bool {
		a, ok := answers[i]
		if !ok {
			return false
		}
		w.Header().Set("Retry-After", a.retryAfter)
		w.WriteHeader(a.status)
		return true
	})
	h := newHarness(t, nil, userConfig(2*time.Second, hf.urls()))
	run(t, h.svc)

	bustest.Eventually(t, 60*time.Second, func() bool {
		return hf.fetchedAtLeast(2, limited)
	}, "%s", lazy(hf.counts))
	for i := range limited {
		if n := hf.hits[i].Load(); n != 1 {
			t.Errorf("rate-limited feed f%d fetched %d times, want 1", i, n)
		}
	}
	slowdowns := metricValue(h.svc.met.hostSlowdowns.WithLabelValues("429")) + metricValue(h.svc.met.hostSlowdowns.WithLabelValues("503"))
	if slowdowns != 1 {
		t.Errorf("%v host slow-downs counted, want 1 (later answers extend it)", slowdowns)
	}
	sd, ok := h.svc.hosts.current(hostOf(hf.URL), time.Now())
	if !ok {
		t.Fatal("host not slowed")
	}
	if sd.Answers != len(answers) {
		t.Errorf("slow-down counts %d answers, want %d", sd.Answers, len(answers))
	}
	p := defaultHostPolicy()
	if max := sd.At.Add(p.hold + time.Duration(p.coolSteps)*p.coolStep); sd.Until.After(max) {
		t.Errorf("host slowed until %s, more than %s after the latest answer at %s", sd.Until, max.Sub(sd.At), sd.At)
	}
	if got := sd.PauseUntil.Sub(sd.Since); got > p.pause {
		t.Errorf("host paused for %s, want at most %s", got, p.pause)
	}
}

// current returns the host's slow-down running at now, if any.
func (l *hostLimiter) current(host string, now time.Time) (slowdown, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.hosts[host]
	if sd == nil || !now.Before(sd.Until) {
		return slowdown{}, false
	}
	return *sd, true
}

// withHostPolicy replaces the host slow-down policy, so that a test can
// go through every phase in seconds.
func withHostPolicy(p hostPolicy) Option {
	return func(o *options) { o.hosts = p }
}

// TestHostSlowdownPhases follows one slow-down through its phases with a
// short policy: the host pauses, then its other feeds are fetched at the
// slower pace (not more often, and not less), then at full pace again.
func TestHostSlowdownPhases(t *testing.T) {
	t.Parallel()
	p := hostPolicy{
		pause:      400 * time.Millisecond,
		period:     time.Second,
		hold:       2 * time.Second,
		holdNoHint: 2 * time.Second,
		coolStep:   500 * time.Millisecond,
		coolSteps:  2,
	}
	hf := newHostFarm(t, 3, rateLimit(http.StatusTooManyRequests, "3600", map[int]bool{0: true}))
	cfg := fastConfig(50*time.Millisecond, hf.urls()...)
	h := newHarness(t, nil, cfg, WithHostGap(0), noJitter, withHostPolicy(p))
	run(t, h.svc)

	bustest.Eventually(t, 10*time.Second, func() bool { return hf.hits[0].Load() > 0 }, "not polled")
	t429 := hf.arrivals(0)[0]
	end := t429.Add(p.hold + time.Duration(p.coolSteps)*p.coolStep)
	// Back at full pace (50ms) after the end: 5 fetches within a second.
	bustest.Eventually(t, 20*time.Second, func() bool {
		for i := 1; i < 3; i++ {
			n := 0
			for _, a := range hf.arrivals(i) {
				if a.After(end.Add(100 * time.Millisecond)) {
					n++
				}
			}
			if n < 5 {
				return false
			}
		}
		return true
	}, "not back to full pace: %s", lazy(hf.counts))
	if n := hf.hits[0].Load(); n != 1 {
		t.Errorf("rate-limited feed fetched %d times, want 1", n)
	}

	for i := 1; i < 3; i++ {
		var prev time.Time
		for _, a := range hf.arrivals(i) {
			at := a.Sub(t429)
			if at > 150*time.Millisecond && at < p.pause-50*time.Millisecond {
				t.Errorf("f%d fetched %s after the 429, within the host's pause", i, at)
			}
			holdFrom, holdTo := p.pause+50*time.Millisecond, p.hold
			if at > holdFrom && at <= holdTo {
				// Slowed: at most about once a period (0.8 of it with
				// noJitter), and still at least once a period or so.
				if !prev.IsZero() && prev.Sub(t429) > holdFrom {
					if gap := a.Sub(prev); gap < 600*time.Millisecond || gap > 1500*time.Millisecond {
						t.Errorf("f%d fetched %s after its previous fetch while the host was slowed, want about %s", i, gap, p.period)
					}
				}
			}
			prev = a
		}
	}
}

// TestHostLimiter: the slow-down's phases and bounds, on a given clock.
func TestHostLimiter(t *testing.T) {
	t.Parallel()
	p := defaultHostPolicy()
	t0 := fixedNow
	lo := func() float64 { return 0 }
	l := newHostLimiter(p)
	const host = "news.example:443"

	sd, started := l.answered(host, "https://news.example/a", 429, time.Hour, t0)
	if !started || sd.PauseUntil != t0.Add(10*time.Second) || sd.HoldUntil != t0.Add(5*time.Minute) || sd.Until != t0.Add(8*time.Minute) {
		t.Fatalf("first answer: started %v, %+v", started, sd)
	}
	// More answers extend the slow-down from the latest, never pause again
	// and never reach past hold + cool-down after the latest answer.
	sd, started = l.answered(host, "https://news.example/b", 429, 24*time.Hour, t0.Add(2*time.Minute))
	if started || sd.PauseUntil != t0.Add(10*time.Second) || sd.HoldUntil != t0.Add(7*time.Minute) || sd.Until != t0.Add(10*time.Minute) || sd.Answers != 2 {
		t.Fatalf("second answer: started %v, %+v", started, sd)
	}
	sd, _ = l.answered(host, "https://news.example/c", 503, 30*time.Second, t0.Add(3*time.Minute))
	if sd.HoldUntil != t0.Add(7*time.Minute) || sd.Feed != "https://news.example/c" || sd.Status != 503 || sd.Answers != 3 {
		t.Fatalf("a shorter answer shortened the slow-down or was not recorded: %+v", sd)
	}

	for _, tc := range []struct {
		at    time.Duration
		floor time.Duration
		ended bool
	}{
		{time.Minute, 16 * time.Second, false},                // held: 0.8 x 20s
		{7*time.Minute + time.Second, 8 * time.Second, false}, // cool-down: 10s
		{8*time.Minute + time.Second, 4 * time.Second, false}, // 5s
		{9*time.Minute + time.Second, 2 * time.Second, false}, // 2.5s
		{10 * time.Minute, 0, true},                           // full pace
		{10*time.Minute + time.Second, 0, false},              // ended once
	} {
		floor, ended := l.pace(host, t0.Add(tc.at), lo)
		if floor != tc.floor || ended != tc.ended {
			t.Errorf("pace at +%s: %s, ended %v; want %s, %v", tc.at, floor, ended, tc.floor, tc.ended)
		}
	}
	if floor, ended := l.pace("other.example", t0, lo); floor != 0 || ended {
		t.Errorf("a host never slowed is paced: %s %v", floor, ended)
	}

	// A new answer after the end starts a new slow-down; short or missing
	// Retry-After make short ones.
	sd, started = l.answered(host, "https://news.example/a", 429, 3*time.Second, t0.Add(11*time.Minute))
	if !started || sd.PauseUntil.Sub(sd.Since) != 3*time.Second || sd.HoldUntil.Sub(sd.Since) != 3*time.Second {
		t.Errorf("Retry-After 3s: started %v, %+v", started, sd)
	}
	sd, _ = l.answered("quiet.example", "https://quiet.example/", 429, 0, t0)
	if sd.HoldUntil.Sub(t0) != p.holdNoHint || sd.PauseUntil.Sub(t0) != p.pause {
		t.Errorf("429 without Retry-After: %+v", sd)
	}
}

// TestRetryAfterPerFeed: the answering feed waits its Retry-After, capped
// at poll.max_backoff; which answers slow down its host.
func TestRetryAfterPerFeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wait       time.Duration
		slowsHost  bool
	}{
		{"429 within cap", 429, "1800", 30 * time.Minute, true},
		{"429 capped", 429, "7200", 45 * time.Minute, true},
		{"429 a day capped", 429, "86400", 45 * time.Minute, true},
		{"503 date capped", 503, fixedNow.Add(2 * time.Hour).Format(http.TimeFormat), 45 * time.Minute, true},
		{"429 without Retry-After", 429, "", time.Minute, true},
		{"503 without Retry-After", 503, "", time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
			})
			cfg := testConfig(srv.URL)
			cfg.Poll.MaxBackoff = config.Duration(45 * time.Minute)
			h := newHarness(t, nil, cfg, WithClock(fixedClock{fixedNow}.Now), WithRand(func() float64 { return 0.5 }))
			st := h.poll(srv.URL)
			if got := st.NextDue.Sub(fixedNow); got != tc.wait {
				t.Errorf("feed waits %s, want %s", got, tc.wait)
			}
			f := h.feeds[srv.URL]
			_, slowed := h.svc.hosts.current(f.host, fixedNow)
			if slowed != tc.slowsHost || f.pauseUntil.IsZero() == tc.slowsHost {
				t.Errorf("host slowed %v (paused until %s), want %v", slowed, f.pauseUntil, tc.slowsHost)
			}
			if got := metricValue(h.svc.met.hostSlowdowns.WithLabelValues(strconv.Itoa(tc.status))); (got == 1) != tc.slowsHost {
				t.Errorf("host slow-downs counted: %v", got)
			}
		})
	}
}

// manualClock is a clock a test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestListFeedsSlowedHost: `feedmon feeds` says which host is slowed, in
// which phase, until when and why; the record goes once the slow-down is
// over.
func TestListFeedsSlowedHost(t *testing.T) {
	t.Parallel()
	hf := newHostFarm(t, 2, rateLimit(http.StatusTooManyRequests, "3600", map[int]bool{0: true}))
	clock := &manualClock{t: fixedNow}
	h := newHarness(t, nil, testConfig(hf.urls()...), WithClock(clock.Now), WithRand(func() float64 { return 0.5 }))
	h.poll(hf.url(0))
	h.poll(hf.url(1))

	list := func(now time.Time) string {
		t.Helper()
		var out bytes.Buffer
		if err := listFeeds(context.Background(), h.bus, &out, now); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	out := list(fixedNow.Add(time.Minute))
	host := hostOf(hf.URL)
	var hostLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, host+" ") {
			hostLine = l
		}
	}
	for _, want := range []string{
		" slowed ",
		hf.url(0) + " answered 429 with Retry-After 1h0m0s at " + fmtTime(fixedNow),
		fmtTime(fixedNow.Add(10 * time.Second)), // paused until
		fmtTime(fixedNow.Add(5 * time.Minute)),  // slowed until
		fmtTime(fixedNow.Add(8 * time.Minute)),  // full pace at
	} {
		if !strings.Contains(hostLine, want) {
			t.Errorf("slowed host row lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "SLOWED HOST") || strings.Count(out, ", host slowed") != 2 {
		t.Errorf("feeds of the slowed host not marked:\n%s", out)
	}
	if out := list(fixedNow.Add(8 * time.Minute)); strings.Contains(out, "slowed") {
		t.Errorf("slow-down shown after its end:\n%s", out)
	}

	// The first poll after the end clears the record.
	clock.set(fixedNow.Add(9 * time.Minute))
	h.poll(hf.url(1))
	kv, err := h.bus.KV(context.Background(), event.BucketFeeds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), slowdownKey(host)); err == nil {
		t.Error("slow-down record kept after its end")
	}
}

// TestRequestGate: requests to one host are sent at least the gap apart
// however close their polls started; other hosts do not wait; a poll that
// ends while waiting gives up; the gate forgets hosts no longer asked.
func TestRequestGate(t *testing.T) {
	t.Parallel()
	const gap = 60 * time.Millisecond
	g := newRequestGate(gap)
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent []time.Time
	)
	for range 4 {
		wg.Go(func() {
			if err := g.wait(ctx, "a.example"); err != nil {
				t.Error(err)
			}
			mu.Lock()
			sent = append(sent, time.Now())
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(sent, time.Time.Compare)
	for i := 1; i < len(sent); i++ {
		if d := sent[i].Sub(sent[i-1]); d < gap-5*time.Millisecond {
			t.Errorf("requests %d and %d to one host %s apart, want >= %s", i-1, i, d, gap)
		}
	}

	begin := time.Now()
	if err := g.wait(ctx, "b.example"); err != nil || time.Since(begin) > gap/2 {
		t.Errorf("another host waited %s (err %v)", time.Since(begin), err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	g.wait(ctx, "c.example") // takes the free slot
	if err := g.wait(cctx, "c.example"); err == nil {
		t.Error("a cancelled wait returned no error")
	}

	tiny := newRequestGate(time.Nanosecond)
	for i := range 1000 {
		tiny.wait(ctx, "h"+strconv.Itoa(i))
	}
	if n := len(tiny.hosts); n > 128 {
		t.Errorf("gate remembers %d hosts after they were done, want few", n)
	}
}

// TestHangingFeedsDoNotHoldHost: feeds of a host that hang until the
// fetch times out do not hold the host's poll.per_host slots for the
// whole timeout: once a fetch has run long, it stops counting against
// them, and the host's other feeds go on at their interval.
func TestHangingFeedsDoNotHoldHost(t *testing.T) {
	t.Parallel()
	hanging := map[int]bool{0: true, 1: true, 2: true}
	hf := newHostFarm(t, 8, nil)
	hf.set(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/f"))
		hf.hits[i].Add(1)
		if hanging[i] {
			<-r.Context().Done()
			return
		}
		w.Write(fixture(t, "atom.xml"))
	})
	cfg := fastConfig(200*time.Millisecond, hf.urls()...)
	cfg.Poll.PerHost = 2
	cfg.Poll.Timeout = config.Duration(3 * time.Second)
	h := newHarness(t, nil, cfg, WithHostGap(0))
	run(t, h.svc)
	bustest.Eventually(t, 8*time.Second, func() bool { return hf.fetchedAtLeast(5, hanging) }, "%s", lazy(hf.counts))
}

// TestSlowdownSharedByPollers: pollers share a host's feeds through
// leases; when one of them gets the 429, the others slow the host down too.
func TestSlowdownSharedByPollers(t *testing.T) {
	t.Parallel()
	hf := newHostFarm(t, 2, rateLimit(http.StatusTooManyRequests, "3600", map[int]bool{0: true}))
	b := bustest.New(t)
	answered := newHarness(t, b, testConfig(hf.url(0)), WithPollerID("answered"))
	other := newHarness(t, b, fastConfig(100*time.Millisecond, hf.url(1)), WithPollerID("other"), WithHostGap(0), noJitter)
	run(t, other.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return hf.hits[1].Load() >= 3 }, "other poller's feed not polled")

	answered.poll(hf.url(0))
	host := hostOf(hf.URL)
	bustest.Eventually(t, 10*time.Second, func() bool {
		_, ok := other.svc.hosts.current(host, time.Now())
		return ok
	}, "the other poller did not slow the host down")
	// Its feed, polled every 100ms so far, now waits about 16s; one poll
	// may have been in flight or already scheduled.
	n := hf.hits[1].Load()
	until := time.Now().Add(time.Second)
	bustest.Eventually(t, 5*time.Second, func() bool { return time.Now().After(until) }, "")
	if got := hf.hits[1].Load(); got > n+2 {
		t.Errorf("the other poller fetched the slowed host's feed %d times in a second", got-n)
	}
	if v := metricValue(other.svc.met.hostSlowdowns.WithLabelValues("429")); v != 0 {
		t.Errorf("the other poller counted %v slow-downs; the one that got the answer counts it", v)
	}
}
