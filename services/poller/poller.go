package poller

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/version"
	"github.com/feedmon/feedmon/services/poller/websub"
)

const (
	// shutdownGrace bounds how long fetches in flight may run after Run's
	// context ends. The contract wants the process gone within 10s: this,
	// plus recording what was published (2s) and releasing leases (2s),
	// stays inside it.
	shutdownGrace = 5 * time.Second
	// minSeen is the smallest seen-set kept per feed, so a small feed that
	// rotates items quickly still recognises recent ones.
	minSeen = 200
	// stateFlushAge: a 304 that changes nothing but the fetch time is
	// written to KV at most this often, so steady polling of unchanged feeds
	// does not turn into a KV write per request.
	stateFlushAge = 10 * time.Second
	// publishTimeout bounds publishing one fetch's new items and recording
	// them (NATS down: the fetch fails and is retried with backoff).
	publishTimeout = 30 * time.Second
)

// Option changes a Service's defaults.
type Option func(*options)

type options struct {
	client *http.Client
	now    func() time.Time
	id     string
	gap    time.Duration
	gapSet bool
	rnd    func() float64
	websub func(*websub.Options)
	// hosts is the slow-down policy for hosts that answer slowly or with
	// errors; tests shorten it.
	hosts hostPolicy
}

// WithHTTPClient replaces the poller's own HTTP client. The replacement
// must enforce timeouts and the address check itself.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithClock sets the clock used for fetched_at, date checks and scheduling
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithPollerID names this poller in leases (default: hostname and a random suffix).
func WithPollerID(id string) Option { return func(o *options) { o.id = id } }

// WithHostGap sets the minimum time between request starts to one host
// (default DefaultHostGap / poll.per_host).
func WithHostGap(d time.Duration) Option { return func(o *options) { o.gap = d; o.gapSet = true } }

// WithRand sets the source of jitter, a function returning [0,1).
func WithRand(f func() float64) Option { return func(o *options) { o.rnd = f } }

// Service is the poller.
type Service struct {
	poll      config.Poll
	bus       *bus.Bus
	m         *telemetry.Metrics
	met       *metrics
	log       *slog.Logger
	client    *http.Client
	userAgent string
	now       func() time.Time
	rnd       func() float64
	id        string
	gap       time.Duration
	// publishTimeout is publishTimeout; tests shorten it.
	publishTimeout time.Duration

	ready  atomic.Bool
	store  *store
	leases *leaser
	hosts  *hostLimiter
	gate   *requestGate

	// WebSub (push.go): the manager exists once KV is open, when
	// websub.callback_url is set.
	websub   config.WebSub
	push     *websub.Manager
	pushLn   net.Listener
	pushMet  *websub.Metrics
	pushOpts func(*websub.Options)
	soonMu   sync.Mutex
	soon     map[string]bool
	nudge    chan struct{}

	mu      sync.Mutex
	feeds   []config.Feed
	running bool
	reload  chan struct{}
}

// New builds a poller for cfg's feeds (and OPML files); unset poll values
// take their defaults, and a nil log logs nothing. It does not touch NATS:
// Run opens the KV buckets, retrying until NATS is there.
func New(cfg config.PollerConfig, b *bus.Bus, m *telemetry.Metrics, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Service, error) {
	if b == nil || m == nil {
		return nil, errors.New("poller: New needs a bus and metrics")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{now: time.Now, rnd: rand.Float64, hosts: defaultHostPolicy()}
	for _, opt := range opts {
		opt(&o)
	}
	p := cfg.Poll.OrDefaults()
	s := &Service{
		poll:           p,
		bus:            b,
		m:              m,
		log:            log.With("service", "poller"),
		userAgent:      p.UserAgent,
		client:         o.client,
		now:            o.now,
		rnd:            o.rnd,
		id:             o.id,
		gap:            o.gap,
		publishTimeout: publishTimeout,
		reload:         make(chan struct{}, 1),
		hosts:          newHostLimiter(o.hosts),
		nudge:          make(chan struct{}, 1),
		websub:         cfg.WebSub,
		pushOpts:       o.websub,
	}
	if s.userAgent == "" {
		s.userAgent = version.UserAgent()
	}
	if s.client == nil {
		guard, err := newAddrGuard(p.AllowNetworks)
		if err != nil {
			return nil, err
		}
		s.client = newHTTPClient(p.Timeout.D(), p.PerHost, guard)
	}
	if !o.gapSet {
		s.gap = hostGap(p.PerHost)
	}
	s.gate = newRequestGate(s.gap)
	if s.id == "" {
		s.id = defaultPollerID()
	}
	s.met = newMetrics(reg)
	s.pushMet = websub.NewMetrics(reg)
	cfg.Poll = p
	feeds, err := feedList(cfg)
	if err != nil {
		return nil, err
	}
	s.feeds = feeds
	if err := s.listenPush(); err != nil {
		return nil, err
	}
	return s, nil
}

func defaultPollerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = crand.Read(b[:])
	return event.Token(host) + "-" + hex.EncodeToString(b[:])
}

// Ready is nil once the poller's KV buckets are open.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return errors.New("poller: kv buckets not open yet")
	}
	return nil
}

// Reload replaces the feed list (feeds and OPML files, read again): added
// feeds start, removed ones stop, a changed interval (the feed's own or
// poll.interval) or title applies from the next poll. Other poll.* settings
// need a restart. On an error (an unreadable OPML file) the old list stays.
func (s *Service) Reload(cfg config.PollerConfig) error {
	cfg.Poll = cfg.Poll.OrDefaults()
	feeds, err := feedList(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.feeds = feeds
	if s.push != nil {
		s.push.SetFeeds(feeds)
	}
	s.mu.Unlock()
	select {
	case s.reload <- struct{}{}:
	default: // a reload is already pending; it will read the newest list
	}
	s.log.Info("feed list reloaded", "feeds", len(feeds))
	return nil
}

// feedList is cfg's feeds plus those of its OPML files, each URL once.
func feedList(cfg config.PollerConfig) ([]config.Feed, error) {
	out := make([]config.Feed, 0, len(cfg.Feeds))
	seen := map[string]bool{}
	for _, f := range cfg.Feeds {
		if !seen[f.URL] {
			seen[f.URL] = true
			if f.Interval <= 0 {
				f.Interval = cfg.Poll.Interval
			}
			out = append(out, f)
		}
	}
	for _, path := range cfg.OPML {
		fs, err := readOPML(path)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if !seen[f.URL] {
				seen[f.URL] = true
				f.Interval = cfg.Poll.Interval
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// Run polls until ctx ends. Then it starts no new fetch, lets those in
// flight finish (publishing what they fetched) within a grace period,
// releases its leases and returns nil.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("poller: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	if err := bus.Retry(ctx, s.log, "poller kv buckets", s.open); err != nil {
		return nil // ctx ended before NATS was there
	}
	s.ready.Store(true)
	s.log.Info("poller started", "poller_id", s.id, "workers", s.poll.Workers, "per_host", s.poll.PerHost)

	var pushDone chan struct{}
	if s.push != nil {
		pushDone = make(chan struct{})
		go func() {
			defer close(pushDone)
			if err := s.push.Run(ctx); err != nil {
				s.log.Error("websub stopped", "err", err)
			}
		}()
	}

	// Fetches run on a context that outlives ctx by the grace period, so
	// a fetch in flight at shutdown can publish what it got.
	workCtx, cancelWork := grace.Context(ctx, shutdownGrace)
	defer cancelWork()

	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watchSlowdowns(ctx)
	}()

	feeds := s.loop(ctx, workCtx)
	if pushDone != nil {
		<-pushDone
	}
	<-watchDone

	// Hand our feeds to other pollers at once rather than at lease expiry.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, f := range feeds {
		if err := s.leases.release(rctx, f.url, f.lease); err != nil {
			s.log.Debug("lease not released", "feed", config.Redact(f.url), "err", err)
		}
	}
	s.log.Info("poller stopped")
	return nil
}

// open opens the poller's KV buckets (creating them when missing).
func (s *Service) open(ctx context.Context) error {
	// In parallel: on a replicated cluster each bucket can take seconds to
	// place, and the poller is not ready until all three are.
	names := []string{event.BucketFeeds, event.BucketSeen, event.BucketLeases}
	kvs := make([]jetstream.KeyValue, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { kvs[i], errs[i] = s.bus.KV(ctx, name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	feeds, seen, leases := kvs[0], kvs[1], kvs[2]
	if err := s.openPush(ctx); err != nil {
		return err
	}
	s.store = &store{feeds: feeds, seen: seen}
	s.leases = &leaser{kv: leases, id: s.id}
	return nil
}
