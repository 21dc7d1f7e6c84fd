package poller

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
)

// fixedNow is the clock of tests that pin time: a day after the fixtures'
// dates, so they count as plausible.
var fixedNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// feedServer is an httptest server whose handler a test may swap, counting
// requests.
type feedServer struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	handler http.HandlerFunc
}

func newFeedServer(t testing.TB, h http.HandlerFunc) *feedServer {
	t.Helper()
	fs := &feedServer{handler: h}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.hits.Add(1)
		fs.mu.Lock()
		h := fs.handler
		fs.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

// newFeedServerOn listens on a given loopback address (e.g. 127.0.0.2:0).
func newFeedServerOn(t testing.TB, addr string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func (fs *feedServer) set(h http.HandlerFunc) {
	fs.mu.Lock()
	fs.handler = h
	fs.mu.Unlock()
}

// serveXML answers with body and, when etag is set, honours If-None-Match.
func serveXML(body []byte, contentType, etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if etag != "" {
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
		}
		if contentType == "" {
			contentType = "application/rss+xml"
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}

func testConfig(feeds ...string) *config.PollerConfig {
	cfg := &config.PollerConfig{Poll: config.Poll{
		Interval:      config.Duration(time.Minute),
		Workers:       8,
		PerHost:       4,
		AllowNetworks: []string{"127.0.0.0/8"},
		Timeout:       config.Duration(5 * time.Second),
		MaxBodyBytes:  1 << 20,
		MaxItems:      100,
		MaxBackoff:    config.Duration(time.Hour),
	}}
	for _, f := range feeds {
		cfg.Feeds = append(cfg.Feeds, config.Feed{URL: f})
	}
	return cfg
}

type harness struct {
	t     testing.TB
	bus   *bus.Bus
	svc   *Service
	m     *telemetry.Metrics
	reg   *prometheus.Registry
	feeds map[string]*feed
	logs  *logCounter
}

func newHarness(t testing.TB, b *bus.Bus, cfg *config.PollerConfig, opts ...Option) *harness {
	t.Helper()
	if b == nil {
		b = bustest.New(t)
	}
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg, nil, nil)
	lc := &logCounter{}
	log := slog.New(lc.wrap(bustest.Logger(t).Handler()))
	svc, err := New(*cfg, b, m, reg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.open(ctx); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, bus: b, svc: svc, m: m, reg: reg, feeds: map[string]*feed{}, logs: lc}
}

// poll runs one poll of feedURL as the scheduler would, returning its state.
// Each call is a fresh poll regardless of schedule: tests that pin the
// clock still need the next poll to happen.
func (h *harness) poll(feedURL string) feedState {
	h.t.Helper()
	f := h.feeds[feedURL]
	if f == nil {
		f = &feed{url: feedURL, host: hostOf(feedURL), interval: h.svc.poll.Interval.D(), idx: -1}
		h.feeds[feedURL] = f
	}
	if f.loaded {
		f.state.NextDue = time.Time{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.svc.pollFeed(ctx, f)
	return f.state
}

func (h *harness) count(result string) float64 {
	return metricValue(h.m.PollRequests.WithLabelValues(result))
}

func (h *harness) published() float64 { return metricValue(h.m.ItemsPublished) }

// streamItems returns the items published on feedmon.items.> so far.
func streamItems(t testing.TB, b *bus.Bus) []*event.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Item
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		it, err := event.Unmarshal(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != it.ID {
			t.Errorf("Nats-Msg-Id %q, want item id %q", m.Header.Get(jetstream.MsgIDHeader), it.ID)
		}
		out = append(out, it)
	}
	return out
}

func streamCount(t testing.TB, b *bus.Bus) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// logCounter counts records per level, to check that the poller logs a
// failing feed once per state change.
type logCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (c *logCounter) wrap(h slog.Handler) slog.Handler { return &countingHandler{h, c} }

func (c *logCounter) get(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[l]
}

type countingHandler struct {
	slog.Handler
	c *logCounter
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.c.mu.Lock()
	if h.c.counts == nil {
		h.c.counts = map[slog.Level]int{}
	}
	h.c.counts[r.Level]++
	h.c.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{h.Handler.WithAttrs(as), h.c}
}

func (h *countingHandler) WithGroup(n string) slog.Handler {
	return &countingHandler{h.Handler.WithGroup(n), h.c}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	if d.Histogram != nil {
		return float64(d.Histogram.GetSampleCount())
	}
	return -1
}

func configDuration(d time.Duration) config.Duration { return config.Duration(d) }

// pollOther polls on a separate feed record, safe to run concurrently with
// a poll of another feed (the harness map is only touched here, before).
func (h *harness) pollOther(feedURL string) feedState {
	h.t.Helper()
	f := &feed{url: feedURL, host: hostOf(feedURL), interval: h.svc.poll.Interval.D(), idx: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.svc.pollFeed(ctx, f)
	return f.state
}

// stop releases the harness poller's leases, as Run does on a clean stop.
func (h *harness) stop() {
	for _, f := range h.feeds {
		h.svc.releaseLease(context.Background(), f)
	}
}
