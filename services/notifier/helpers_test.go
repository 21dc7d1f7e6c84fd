package notifier

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
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
	"github.com/feedmon/feedmon/internal/testkit"
)

const waitLong = 20 * time.Second

// sink is a real HTTP webhook endpoint that records what it gets and
// answers as respond says (200 when respond is nil).
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []sinkReq
	respond func(n int, r *http.Request, w http.ResponseWriter) int
}

type sinkReq struct {
	at     time.Time
	method string
	header http.Header
	body   []byte
	status int
}

func newSink(t *testing.T, respond func(n int, r *http.Request, w http.ResponseWriter) int) *sink {
	t.Helper()
	s := &sink{respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, sinkReq{at: time.Now(), method: r.Method, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		status := http.StatusOK
		if s.respond != nil {
			status = s.respond(n, r, w)
		}
		s.mu.Lock()
		s.reqs[n].status = status
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) requests() []sinkReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkReq(nil), s.reqs...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// accepted counts requests answered 2xx.
func (s *sink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if r.status/100 == 2 {
			n++
		}
	}
	return n
}

// syncBuffer is an io.Writer safe for the stdout receiver and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testConfig(subs ...config.Subscriber) *config.NotifierConfig {
	return &config.NotifierConfig{
		Notify: config.Notify{
			MaxAttempts: 5,
			MaxAge:      config.Duration(time.Hour),
			Timeout:     config.Duration(5 * time.Second),
			Workers:     4,
		},
		Subscribers: subs,
	}
}

func testItem(id string, topics ...string) *event.Item {
	return &event.Item{
		ID:        id,
		FeedURL:   "https://news.example.org/world.rss",
		FeedTitle: "Example News",
		Title:     "EU and Japan agree to jointly mine rare earths (" + id + ")",
		Link:      "https://news.example.org/articles/" + id,
		Summary:   "The EU and Japan agreed to develop rare-earth projects.",
		Published: "2026-11-26T08:00:00Z",
		FetchedAt: event.FormatTime(time.Now().Add(-time.Second)),
		Topics:    topics,
		Scores:    map[string]float64{},
		Matches:   map[string][]string{},
	}
}

// publishItem publishes it once per topic, as the classifier does.
func publishItem(t testing.TB, b *bus.Bus, it *event.Item) {
	t.Helper()
	bustest.PublishClassified(t, b, it)
}

type running struct {
	svc *Service
	m   *telemetry.Metrics
	reg *prometheus.Registry
	out *syncBuffer
	// stop cancels Run and waits for it to return.
	stop func()
}

func startService(t *testing.T, b *bus.Bus, cfg *config.NotifierConfig, opts ...Option) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg, ReceiverNames(cfg.Subscribers), nil)
	out := &syncBuffer{}
	opts = append([]Option{WithStdout(out), WithBackoff(10*time.Millisecond, 50*time.Millisecond)}, opts...)
	svc, err := New(*cfg, b, m, reg, bustest.Logger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Run(t, "notifier", svc.Run)
	bustest.Eventually(t, waitLong, func() bool { return svc.Ready() == nil }, "notifier not ready")
	return &running{svc: svc, m: m, reg: reg, out: out, stop: stop}
}

func (r *running) count(receiver, result string) float64 {
	return counterValue(r.m.Notifications.WithLabelValues(receiver, result))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func histogramCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// gathered reports whether reg exports a metric family called name.
func gathered(reg *prometheus.Registry, name string) bool {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// waitHandled waits until the notifier consumer has acked (or termed)
// every message in the classified stream.
func waitHandled(t *testing.T, b *bus.Bus) {
	t.Helper()
	bustest.WaitConsumed(t, b, event.StreamClassified, event.ConsumerNotifier, waitLong)
}

// deadLetters reads every record of the dead-letter stream.
func deadLetters(t *testing.T, b *bus.Bus) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := b.Stream(ctx, event.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(int(si.State.Msgs), jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

func slicesSort(s []string) { sort.Strings(s) }
