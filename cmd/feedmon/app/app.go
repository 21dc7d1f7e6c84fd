// Package app wires feedmon's services to NATS and telemetry. The command
// line and the end-to-end tests both run feedmon through Main, so the tests
// exercise the real wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/version"
	"github.com/feedmon/feedmon/services/classifier"
	"github.com/feedmon/feedmon/services/feedsout"
	"github.com/feedmon/feedmon/services/notifier"
	"github.com/feedmon/feedmon/services/poller"
)

// Service names, as the commands call them (and the config knows them, to
// check for each service what it reads).
const (
	Poller     = config.Poller
	Classifier = config.Classifier
	Notifier   = config.Notifier
)

// FeedsOut is the topic and subscriber feeds, started with the notifier.
const FeedsOut = "feeds_out"

// All is every service: what `feedmon run` starts.
var All = []string{Poller, Classifier, Notifier}

// ShutdownTimeout bounds how long services get to finish in-flight work
// after a stop is asked for; the contract allows 10 s in all.
const ShutdownTimeout = 7 * time.Second

// service is what Main needs of each service.
type service interface {
	Run(ctx context.Context) error
	Ready() error
}

// Main is one feedmon process: some or all services, one NATS connection
// (and the embedded server when nats.url is empty), one metrics endpoint.
type Main struct {
	Config   *config.Config
	Services []string
	Log      *slog.Logger
	// Stdout is where the stdout receiver prints (default os.Stdout).
	Stdout io.Writer
	// Name identifies this process's NATS connection.
	Name string
	// PollerOptions are passed to the poller (the benchmark turns the
	// per-host gap off: all its feeds are on one local host).
	PollerOptions []poller.Option

	Registry  *prometheus.Registry
	Metrics   *telemetry.Metrics
	Telemetry *telemetry.Server
	Bus       *bus.Bus

	services map[string]service
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
}

// Start connects to NATS, starts the metrics endpoint and the services, and
// returns; the services run until Close.
func (m *Main) Start(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if m.Name == "" {
		m.Name = "feedmon"
	}
	if len(m.Services) == 0 {
		m.Services = All
	}
	cfg := m.Config

	m.Registry = telemetry.NewRegistry(version.Version)
	m.Metrics = telemetry.NewMetrics(m.Registry, notifier.ReceiverNames(cfg.Subscribers), classifier.TopicOrder(topicNames(cfg)))
	m.Telemetry = telemetry.NewServer(m.Registry, m.Log)
	// /readyz answers as soon as the endpoint listens, before the
	// embedded NATS and the services whose checks it runs exist: until
	// Start has added them all, it must not say ready.
	var started atomic.Bool
	m.Telemetry.AddReadiness("start", func() error {
		if !started.Load() {
			return errors.New("starting")
		}
		return nil
	})
	if err := m.Telemetry.Start(cfg.Metrics.Listen); err != nil {
		return err
	}

	b, err := bus.Connect(ctx, cfg.NATS, m.Name, m.Log)
	if err != nil {
		m.Telemetry.Shutdown(context.Background())
		return err
	}
	m.Bus = b
	m.Telemetry.AddReadiness("nats", func() error {
		if !b.Connected() {
			return errors.New("not connected")
		}
		return nil
	})

	m.services = map[string]service{}
	for _, name := range m.Services {
		var s service
		var err error
		switch name {
		case Poller:
			opts := append([]poller.Option(nil), m.PollerOptions...)
			if b.Embedded() != nil {
				// Only this process can use an embedded store, so its
				// poller may take back its own leases at once after a
				// crash instead of waiting for them to expire.
				opts = append(opts, poller.WithPollerID("embedded"))
			}
			s, err = poller.New(cfg.PollerConfig(), b, m.Metrics, m.Registry, m.Log, opts...)
		case Classifier:
			s, err = classifier.New(cfg.ClassifierConfig(), b, m.Metrics, m.Registry, m.Log)
		case Notifier:
			s, err = notifier.New(cfg.NotifierConfig(), b, m.Metrics, m.Registry, m.Log, notifier.WithStdout(m.Stdout))
		default:
			err = fmt.Errorf("app: unknown service %q", name)
		}
		if err != nil {
			b.Close()
			m.Telemetry.Shutdown(context.Background())
			return err
		}
		m.services[name] = s
		m.Telemetry.AddReadiness(name, s.Ready)
	}

	// The topic and subscriber feeds are served by the processes that run
	// the notifier (feedmon run, feedmon notifier): they have the
	// subscribers' config, and a process without them could serve only
	// half of the feeds. Replicas serve the same bytes: every one builds
	// its feeds from the same stream.
	if _, ok := m.services[Notifier]; ok && cfg.Metrics.Listen != "" {
		fo := feedsout.New(cfg.FeedsOutConfig(), b, m.Registry, m.Log)
		m.services[FeedsOut] = fo
		m.Telemetry.AddReadiness(FeedsOut, fo.Ready)
		m.Telemetry.Handle(feedsout.Prefix, fo.Handler())
	}

	// Services run on their own context so that Close, not the caller's
	// context, decides when they stop.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel

	// Whichever service starts first creates every stream, whatever it
	// reads or writes itself: a poller alone must find FEEDMON_ITEMS in
	// place before any classifier exists. NATS may not be up yet, so this
	// is retried in the background and readiness waits for it.
	var streamsReady atomic.Bool
	m.Telemetry.AddReadiness("streams", func() error {
		// A refusal by NATS (storage, streams) says what to change; it
		// counts even once the streams exist, for a bucket or an update.
		if err := b.SetupError(); err != nil {
			return err
		}
		if !streamsReady.Load() {
			return errors.New("streams not created yet")
		}
		return nil
	})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if bus.Retry(runCtx, m.Log, "streams", b.EnsureStreams) == nil {
			streamsReady.Store(true)
		}
	}()

	var lag []bus.ConsumerRef
	if _, ok := m.services[Classifier]; ok {
		lag = append(lag, bus.ConsumerRef{Stream: event.StreamItems, Consumer: event.ConsumerClassifier})
	}
	if _, ok := m.services[Notifier]; ok {
		lag = append(lag, bus.ConsumerRef{Stream: event.StreamClassified, Consumer: event.ConsumerNotifier})
	}
	m.wg.Go(func() { b.WatchLag(runCtx, m.Registry, 5*time.Second, lag) })
	for name, s := range m.services {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := s.Run(runCtx); err != nil {
				m.Log.Error("service stopped", "service", name, "err", err)
				m.errMu.Lock()
				m.err = errors.Join(m.err, fmt.Errorf("%s: %w", name, err))
				m.errMu.Unlock()
			}
		}()
	}
	started.Store(true)
	m.Log.Info("feedmon started", "version", version.Version, "services", m.Services,
		"feeds", len(cfg.Feeds), "subscribers", len(cfg.Subscribers), "metrics", m.Telemetry.Addr())
	return nil
}

// Reload applies a new configuration to the services that can take one
// (the poller's feeds, the classifier's rules).
func (m *Main) Reload(cfg *config.Config) error {
	var errs []error
	for name, s := range m.services {
		var err error
		switch s := s.(type) {
		case *poller.Service:
			err = s.Reload(cfg.PollerConfig())
		case *classifier.Service:
			err = s.Reload(cfg.ClassifierConfig())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(errs) == 0 {
		m.Config = cfg
	}
	return errors.Join(errs...)
}

// Ready reports whether every service is ready (what /readyz answers).
func (m *Main) Ready() error { return m.Telemetry.Ready() }

// Close stops the services (they finish or hand back in-flight work),
// drains and closes NATS and stops the metrics endpoint. It returns the
// first error a service stopped with.
func (m *Main) Close() error {
	m.stop(false)
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// Abort stops the process as a crash would, for tests of failure handling:
// the NATS connection is closed at once without draining, so in-flight work
// is neither finished nor acknowledged and NATS redelivers it elsewhere.
func (m *Main) Abort() { m.stop(true) }

func (m *Main) stop(crash bool) {
	if crash && m.Bus != nil {
		m.Bus.Abort()
	}
	if m.cancel != nil {
		m.cancel()
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ShutdownTimeout):
		if !crash {
			m.Log.Warn("services did not stop in time; closing anyway", "timeout", ShutdownTimeout)
		}
	}
	if m.Bus != nil {
		m.Bus.Close()
	}
	if m.Telemetry != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m.Telemetry.Shutdown(ctx)
		cancel()
	}
}

func topicNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.TopicSet))
	for n := range cfg.TopicSet {
		names = append(names, n)
	}
	return names
}
