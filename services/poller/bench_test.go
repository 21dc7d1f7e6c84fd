package poller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/telemetry"
)

const (
	benchFeeds = 1000
	benchItems = 50
)

// benchServer serves benchFeeds distinct feeds of benchItems items each
// (/f/<n>), with an ETag per feed, answering 304 to a matching
// If-None-Match. Bodies are built once: the server must not be what is
// measured.
func benchServer(b *testing.B) *feedServer {
	b.Helper()
	bodies := make([][]byte, benchFeeds)
	for f := range benchFeeds {
		var sb strings.Builder
		fmt.Fprintf(&sb, `<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Bench feed %d</title><link>https://bench.example.org/%d/</link><language>en</language>`, f, f)
		for i := range benchItems {
			fmt.Fprintf(&sb, `<item><title>Feed %d story %d: EU and Japan agree on rare earths</title><link>https://bench.example.org/%d/%d</link><guid>bench-%d-%d</guid><pubDate>%s</pubDate><description><![CDATA[<p>Story <b>%d</b> of feed %d. Ministers met &amp; agreed to cooperate on critical minerals, defense-industry dialogue and economic coercion.</p>]]></description></item>`,
				f, i, f, i, f, i, fixedNow.Add(-time.Duration(i)*time.Hour).Format(time.RFC1123Z), i, f)
		}
		sb.WriteString(`</channel></rss>`)
		bodies[f] = []byte(sb.String())
	}
	return newFeedServer(b, func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/f/%d", &n); err != nil || n < 0 || n >= benchFeeds {
			http.NotFound(w, r)
			return
		}
		etag := fmt.Sprintf(`"b%d"`, n)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/rss+xml")
		w.Write(bodies[n])
	})
}

func benchConfig(srv *feedServer) *config.PollerConfig {
	cfg := testConfig()
	cfg.Poll.Workers = 64
	cfg.Poll.PerHost = 10000 // one local host serves every feed
	cfg.Poll.MaxItems = 500
	cfg.Poll.Timeout = configDuration(30 * time.Second)
	cfg.Poll.Interval = configDuration(time.Hour)
	for f := range benchFeeds {
		cfg.Feeds = append(cfg.Feeds, config.Feed{URL: fmt.Sprintf("%s/f/%d", srv.URL, f)})
	}
	return cfg
}

// BenchmarkFirstFetch measures the first fetch of 1,000 feeds of 50 items
// each, through the real scheduler, until all 50,000 items are in
// JetStream. One op = the whole first fetch.
func BenchmarkFirstFetch(b *testing.B) {
	srv := benchServer(b)
	cfg := benchConfig(srv)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		bs := bustest.New(b)
		h := newHarness(b, bs, cfg, WithHostGap(0), noJitter)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		cpu0 := cpuTime()
		b.StartTimer()
		go func() { h.svc.Run(ctx); close(done) }()
		bustest.Eventually(b, time.Minute, func() bool { return streamCount(b, bs) >= benchFeeds*benchItems }, "first fetch incomplete")
		b.StopTimer()
		cpu += cpuTime() - cpu0
		cancel()
		<-done
		if got := h.published(); got != benchFeeds*benchItems {
			b.Fatalf("published %v", got)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(benchFeeds*benchItems)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cpus")
	b.ReportMetric(float64(benchFeeds*benchItems)*float64(b.N)/cpu.Seconds(), "items/cpu-s")
}

// BenchmarkNotModified measures steady-state polls answered 304: the
// whole poll path (lease check, conditional GET, state bookkeeping) for
// 1,000 feeds, 64 at a time. One op = one poll.
func BenchmarkNotModified(b *testing.B) {
	srv := benchServer(b)
	cfg := benchConfig(srv)
	h := newHarness(b, nil, cfg, WithHostGap(0), noJitter)
	feeds := make([]*feed, benchFeeds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, fc := range cfg.Feeds {
		feeds[i] = &feed{url: fc.URL, host: hostOf(fc.URL), interval: time.Hour, idx: -1}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			h.svc.pollFeed(context.Background(), feeds[i])
		}()
	}
	wg.Wait()
	if got := h.published(); got != benchFeeds*benchItems {
		b.Fatalf("warm-up published %v", got)
	}
	// Each feed is polled by one goroutine at a time, as the scheduler does.
	var locks [benchFeeds]sync.Mutex
	var next atomic.Int64
	b.SetParallelism(32) // 32 x GOMAXPROCS(2) = 64 polls in flight
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % benchFeeds
			locks[i].Lock()
			f := feeds[i]
			f.state.NextDue = time.Time{}
			h.svc.pollFeed(context.Background(), f)
			locks[i].Unlock()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
	cpu := cpuTime() - cpu0
	b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cpus")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "polls/cpu-s")
	if nm := h.count(telemetry.PollNotModified); nm < float64(b.N) {
		b.Fatalf("not_modified %v < %d polls", nm, b.N)
	}
}

// cpuTime is the CPU time this process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
