// Package telemetry holds what every service exports about itself: the
// contract's Prometheus metrics, the /metrics, /healthz and /readyz endpoint,
// and the slog logger.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values of the contract's metrics.
const (
	PollOK          = "ok"
	PollNotModified = "not_modified"
	PollError       = "error"

	NotifySent    = "sent"
	NotifyRetried = "retried"
	NotifyFailed  = "failed"

	TopicNone = "none"
)

// Metrics are the contract's metrics, shared by the services of a process.
type Metrics struct {
	PollRequests    *prometheus.CounterVec
	ItemsPublished  prometheus.Counter
	ItemsClassified *prometheus.CounterVec
	Notifications   *prometheus.CounterVec
	PipelineLatency prometheus.Histogram
}

// NewRegistry returns a registry with the Go and process collectors and
// feedmon_build_info.
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "feedmon_build_info",
		Help:        "Always 1; labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	bi.Set(1)
	reg.MustRegister(bi)
	return reg
}

// NewMetrics registers the contract's metrics on reg. Every label value the
// contract names is initialised, so the series exist from start-up.
func NewMetrics(reg prometheus.Registerer, receivers, topics []string) *Metrics {
	m := &Metrics{
		PollRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_poll_requests_total",
			Help: "Feed fetches by result (ok, not_modified, error).",
		}, []string{"result"}),
		ItemsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmon_items_published_total",
			Help: "New items published on feedmon.items.>.",
		}),
		ItemsClassified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_items_classified_total",
			Help: "Classified items by topic (none for items that matched no topic).",
		}, []string{"topic"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_notifications_total",
			Help: "Delivery attempts by receiver and result (sent, retried, failed).",
		}, []string{"receiver", "result"}),
		PipelineLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "feedmon_pipeline_latency_seconds",
			Help:    "Time from the fetch of an item to its delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
		}),
	}
	reg.MustRegister(m.PollRequests, m.ItemsPublished, m.ItemsClassified, m.Notifications, m.PipelineLatency)
	for _, r := range []string{PollOK, PollNotModified, PollError} {
		m.PollRequests.WithLabelValues(r)
	}
	m.ItemsClassified.WithLabelValues(TopicNone)
	for _, t := range topics {
		m.ItemsClassified.WithLabelValues(t)
	}
	for _, rc := range receivers {
		for _, r := range []string{NotifySent, NotifyRetried, NotifyFailed} {
			m.Notifications.WithLabelValues(rc, r)
		}
	}
	return m
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	reg    *prometheus.Registry
	log    *slog.Logger
	mux    *http.ServeMux
	mu     sync.Mutex
	checks map[string]func() error
	srv    *http.Server
	ln     net.Listener
	// served is closed when Serve has returned.
	served chan struct{}
}

// NewServer returns a server for reg; call Start to listen.
func NewServer(reg *prometheus.Registry, log *slog.Logger) *Server {
	s := &Server{reg: reg, log: log, checks: map[string]func() error{}}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", s.readyz)
	s.mux = mux
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// Handle adds a handler for pattern (http.ServeMux syntax) beside /metrics,
// /healthz and /readyz; it may be called while the server runs.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadiness adds a check that must pass for /readyz to answer 200.
func (s *Server) AddReadiness(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Ready runs every readiness check; nil when all pass.
func (s *Server) Ready() error {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := s.checks
	s.mu.Unlock()
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := checks[n](); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, err.Error()+"\n")
		return
	}
	io.WriteString(w, "ready\n")
}

// Start listens on addr and serves in the background. An empty addr
// disables the endpoint.
func (s *Server) Start(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", addr, err)
	}
	s.ln = ln
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address listened on, "" before Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops serving, and returns once the server's goroutine has
// (or ctx ends).
func (s *Server) Shutdown(ctx context.Context) {
	if s.ln == nil {
		return
	}
	_ = s.srv.Shutdown(ctx)
	select {
	case <-s.served:
	case <-ctx.Done():
	}
}

// Handler is the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// NewLogger returns a slog logger writing to w at level in format (text or json).
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
