package websub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/httpx"
)

// Defaults of the manager's timing; tests shorten them.
const (
	DefaultTick          = time.Second
	DefaultVerifyTimeout = 5 * time.Minute
	DefaultHubCheck      = 30 * time.Second
	DefaultRetryMin      = time.Minute
	DefaultRetryMax      = time.Hour
	// hubStrikes: probes in a row a hub must fail before its
	// subscriptions count as gone (one lost packet is not a dead hub).
	hubStrikes = 2
	// hubRecheck is how soon a hub that failed a probe is asked again.
	hubRecheck = 5 * time.Second
	// maxActions bounds hub requests in flight.
	maxActions = 8
)

// Ingester is what the manager needs of the poller: pushed content goes
// through the same parse, item ids, seen-set and publish as a poll.
type Ingester interface {
	// Ingest publishes the new items of a pushed feed body.
	Ingest(ctx context.Context, feedURL string, body []byte, contentType string) error
	// Fetch fetches the feed now and publishes its new items (a push
	// without a body means "something changed").
	Fetch(ctx context.Context, feedURL string) error
	// PollNow schedules the feed's next poll at once: push stopped, so
	// polling at the normal interval takes over.
	PollNow(feedURL string)
}

// Options configure a Manager.
type Options struct {
	Config config.WebSub
	// MaxBody caps a pushed body, like a polled one (poll.max_body_bytes).
	MaxBody int64
	// Client is the poller's guarded HTTP client.
	Client    *http.Client
	UserAgent string
	// KV is the event.BucketWebSub bucket.
	KV      jetstream.KeyValue
	Ingest  Ingester
	Metrics *Metrics
	Log     *slog.Logger
	// Listener, when set, is the callback server's socket (opened early
	// by the caller, so that a busy address fails start-up); else Run
	// listens on Config.Listen.
	Listener net.Listener
	// Optional timing (zero: the defaults above).
	Tick, VerifyTimeout, HubCheck, RetryMin, RetryMax time.Duration
}

// Manager is the WebSub subscriber of one poller: it subscribes the feeds
// this poller polls (those whose lease it holds, so one subscription per
// feed across replicas), renews their leases, unsubscribes feeds that
// leave, watches hubs, and serves the callback for every subscription,
// its own or another replica's, from the records in KV.
type Manager struct {
	cfg     config.WebSub
	base    string
	maxBody int64
	store   *store
	kv      jetstream.KeyValue
	hub     *hubClient
	ingest  Ingester
	met     *Metrics
	log     *slog.Logger
	now     func() time.Time
	rnd     func() float64

	tick, verifyTimeout, hubCheck, retryMin, retryMax time.Duration

	global *rate.Limiter
	limMu  sync.Mutex
	limits map[string]*rate.Limiter

	ln  net.Listener
	srv *http.Server

	sem  chan struct{}
	wake chan struct{}
	// jobs are the subscription actions and hub probes in flight; Run
	// returns once they have.
	jobs sync.WaitGroup

	mu      sync.Mutex
	running bool     // Run has started: SetFeeds queues unsubscribes
	leaving []string // feed URLs to unsubscribe at the next step
	feeds   map[string]config.Feed
	managed map[string]*Discovery // feed URL -> last discovery (nil: none yet)
	cache   map[string]*Record    // key -> record, as watched
	busy    map[string]bool       // feed URL -> an action is running
	hubs    map[string]*hubHealth
}

type hubHealth struct {
	next    time.Time
	strikes int
	probing bool
}

// New builds a manager. It does not listen or touch NATS until Listen and
// Run.
func New(o Options) (*Manager, error) {
	if o.KV == nil || o.Client == nil || o.Ingest == nil || o.Metrics == nil || o.Log == nil {
		return nil, errors.New("websub: New needs a KV bucket, an HTTP client, an ingester, metrics and a logger")
	}
	if o.Config.CallbackURL == "" {
		return nil, errors.New("websub: websub.callback_url is not set")
	}
	m := &Manager{
		cfg:           o.Config.OrDefaults(),
		base:          strings.TrimRight(o.Config.CallbackURL, "/"),
		maxBody:       o.MaxBody,
		store:         &store{kv: o.KV},
		kv:            o.KV,
		hub:           newHubClient(o.Client, o.UserAgent),
		ingest:        o.Ingest,
		met:           o.Metrics,
		log:           o.Log.With("component", "websub"),
		now:           time.Now,
		rnd:           rand.Float64,
		tick:          orDefault(o.Tick, DefaultTick),
		verifyTimeout: orDefault(o.VerifyTimeout, DefaultVerifyTimeout),
		hubCheck:      orDefault(o.HubCheck, DefaultHubCheck),
		retryMin:      orDefault(o.RetryMin, DefaultRetryMin),
		retryMax:      orDefault(o.RetryMax, DefaultRetryMax),
		global:        rate.NewLimiter(globalRate, globalBurst),
		limits:        map[string]*rate.Limiter{},
		sem:           make(chan struct{}, maxActions),
		wake:          make(chan struct{}, 1),
		feeds:         map[string]config.Feed{},
		managed:       map[string]*Discovery{},
		cache:         map[string]*Record{},
		busy:          map[string]bool{},
		hubs:          map[string]*hubHealth{},
		ln:            o.Listener,
	}
	if m.maxBody <= 0 {
		m.maxBody = config.DefaultMaxBodyBytes
	}
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Listen opens the callback server's socket (websub.listen).
func (m *Manager) Listen() error {
	ln, err := net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("websub: listen %s: %w", m.cfg.Listen, err)
	}
	m.ln = ln
	return nil
}

// Addr is the callback server's address once Listen has succeeded.
func (m *Manager) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Run serves callbacks, follows the records in KV and keeps this poller's
// subscriptions alive until ctx ends. It does not unsubscribe on the way
// out: subscriptions outlive a restart, and another replica takes over
// the feeds with their leases.
func (m *Manager) Run(ctx context.Context) error {
	if m.ln == nil {
		if err := m.Listen(); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.running = true
	m.mu.Unlock()
	m.srv = &http.Server{
		Handler:           m,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("websub callback server stopped", "err", err)
		}
	})
	wg.Go(func() { m.watch(ctx) })
	m.log.Info("websub callback server listening", "addr", m.Addr(), "callback_url", m.base)

	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		m.step(ctx)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = m.srv.Shutdown(sctx)
			cancel()
			wg.Wait()
			m.jobs.Wait()
			return nil
		case <-t.C:
		case <-m.wake:
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// SetFeeds gives the configured feeds (at start and on every reload).
// Feeds that left the list, or whose push was switched off, are
// unsubscribed; among replicas, whichever claims the record first does it.
func (m *Manager) SetFeeds(feeds []config.Feed) {
	next := make(map[string]config.Feed, len(feeds))
	for _, f := range feeds {
		next[f.URL] = f
	}
	m.mu.Lock()
	old := m.feeds
	m.feeds = next
	var gone []string
	for u := range old {
		if f, ok := next[u]; !ok || !m.cfg.Push(f) {
			gone = append(gone, u)
			if !ok {
				delete(m.managed, u)
			}
		}
	}
	// Run unsubscribes them at once (poke), on its goroutines.
	if m.running {
		m.leaving = append(m.leaving, gone...)
	}
	m.mu.Unlock()
	m.poke()
}

// Polled tells the manager that this poller polled feedURL (it holds the
// feed's lease) and what the fetch discovered (nil: no body this time).
func (m *Manager) Polled(feedURL string, d *Discovery) {
	m.mu.Lock()
	prev, ok := m.managed[feedURL]
	if d == nil {
		d = prev
	}
	m.managed[feedURL] = d
	m.mu.Unlock()
	if !ok || (d != nil && (prev == nil || *d != *prev)) {
		m.poke()
	}
}

// Disown tells the manager that another poller polls feedURL now.
func (m *Manager) Disown(feedURL string) {
	m.mu.Lock()
	delete(m.managed, feedURL)
	m.mu.Unlock()
}

// PollInterval is how often to poll feedURL: websub.poll_interval while
// its push subscription is active, else normal.
func (m *Manager) PollInterval(feedURL string, normal time.Duration) time.Duration {
	m.mu.Lock()
	r := m.cache[Key(feedURL)]
	m.mu.Unlock()
	if r.ActiveAt(m.now()) {
		return m.cfg.PollInterval.D()
	}
	return normal
}

// watch keeps the record cache in step with KV. A feed of ours whose push
// stopped being active is polled at once.
func (m *Manager) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := m.kv.WatchAll(ctx)
		if err != nil {
			m.log.Debug("websub watch unavailable", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				continue // end of the initial values
			}
			var r *Record
			if e.Operation() == jetstream.KeyValuePut {
				if r, err = decode(e); err != nil {
					m.log.Warn("websub: unreadable subscription record", "key", e.Key(), "err", err)
					continue
				}
			}
			m.apply(e.Key(), r, e.Revision())
		}
		_ = w.Stop()
	}
}

// apply puts a newer record (nil: deleted) in the cache.
func (m *Manager) apply(key string, r *Record, rev uint64) {
	now := m.now()
	m.mu.Lock()
	prev := m.cache[key]
	if prev != nil && prev.rev > rev {
		m.mu.Unlock()
		return
	}
	if r == nil {
		delete(m.cache, key)
	} else {
		m.cache[key] = r
	}
	var pollNow string
	// A lapsed lease counts too: prev may be past its expiry already.
	if prev != nil && prev.State == StateActive && !r.ActiveAt(now) {
		if _, ours := m.managed[prev.FeedURL]; ours {
			pollNow = prev.FeedURL
		}
	}
	m.mu.Unlock()
	if pollNow != "" {
		m.log.Info("websub push stopped; polling at the normal interval", "feed", m.redact(pollNow), "state", Describe(r, now))
		m.ingest.PollNow(pollNow)
	}
	m.poke()
}

// step looks at every subscription this poller manages and starts what
// is due: subscribe, renew, retry, give up waiting, unsubscribe; it also
// probes the hubs of active subscriptions and tidies records stuck in
// unsubscribing.
func (m *Manager) step(ctx context.Context) {
	now := m.now()
	type job struct {
		feed string
		fn   func(context.Context)
	}
	var jobs []job
	counts := map[string]float64{}
	m.mu.Lock()
	for u, d := range m.managed {
		fc, ok := m.feeds[u]
		if !ok {
			continue
		}
		r := m.cache[Key(u)]
		if r != nil && r.State != StateUnsubscribing {
			st := r.State
			if st == StateActive && !r.ActiveAt(now) {
				st = StateFailed
			}
			counts[st]++
		}
		if m.busy[u] {
			continue
		}
		if fn := m.decide(u, fc, d, r, now); fn != nil {
			jobs = append(jobs, job{u, fn})
			m.busy[u] = true
		}
		if r.ActiveAt(now) {
			m.checkHub(ctx, r.Hub, now)
		}
	}
	for key, r := range m.cache {
		if r.State == StateUnsubscribing && now.Sub(r.Requested) > m.verifyTimeout && !m.busy[r.FeedURL] {
			// The hub never confirmed: forget the record anyway; the
			// hub's lease runs out and its deliveries get 404.
			m.busy[r.FeedURL] = true
			jobs = append(jobs, job{r.FeedURL, func(ctx context.Context) { m.forget(ctx, key, r.Path) }})
		}
	}
	leaving := m.leaving
	m.leaving = nil
	m.mu.Unlock()
	for _, u := range leaving {
		m.jobs.Go(func() { m.unsubscribe(ctx, u) })
	}
	for _, s := range []string{StatePending, StateActive, StateFailed} {
		m.met.Subscriptions.WithLabelValues(s).Set(counts[s])
	}
	for _, j := range jobs {
		m.jobs.Go(func() {
			defer func() {
				m.mu.Lock()
				delete(m.busy, j.feed)
				m.mu.Unlock()
			}()
			select {
			case m.sem <- struct{}{}:
				defer func() { <-m.sem }()
			case <-ctx.Done():
				return
			}
			j.fn(ctx)
		})
	}
}

// decide says what a managed feed's subscription needs now (nil: nothing).
// Called with m.mu held.
func (m *Manager) decide(feedURL string, fc config.Feed, d *Discovery, r *Record, now time.Time) func(context.Context) {
	want := m.cfg.Push(fc)
	hub, topic := fc.Hub, ""
	if d != nil {
		topic = d.Topic
		if hub == "" {
			hub = d.Hub
		}
	} else if r != nil && r.State != StateUnsubscribing {
		// No body fetched by this process yet: carry on with the record.
		hub, topic = r.Advertised, r.Topic
	}
	if topic == "" && hub != "" {
		topic = feedURL
	}
	switch {
	case !want || hub == "":
		if r != nil && r.State != StateUnsubscribing {
			return func(ctx context.Context) { m.unsubscribe(ctx, feedURL) }
		}
		return nil
	case r == nil || r.State == StateUnsubscribing || r.Advertised != hub || r.Topic != topic:
		return func(ctx context.Context) { m.subscribe(ctx, feedURL, hub, topic, false) }
	}
	switch r.State {
	case StatePending:
		if now.Sub(r.Requested) > m.verifyTimeout {
			why := fmt.Sprintf("hub did not verify within %s", m.verifyTimeout)
			return func(ctx context.Context) { m.fail(ctx, feedURL, topic, why) }
		}
	case StateActive:
		if !now.Before(r.Expires) {
			return func(ctx context.Context) { m.fail(ctx, feedURL, topic, "lease lapsed") }
		}
		if !now.Before(r.RenewAt) {
			return func(ctx context.Context) { m.subscribe(ctx, feedURL, hub, topic, true) }
		}
	case StateFailed:
		if !now.Before(r.RetryAt) {
			return func(ctx context.Context) { m.subscribe(ctx, feedURL, hub, topic, false) }
		}
	}
	return nil
}

// subscribe records the intent (so that a hub verifying before it even
// answers finds it), then asks the hub. renew keeps an active
// subscription active while the hub verifies again.
func (m *Manager) subscribe(ctx context.Context, feedURL, hub, topic string, renew bool) {
	key, now := Key(feedURL), m.now()
	var moved []Intent
	rec, err := m.store.update(ctx, key, func(cur *Record) (*Record, error) {
		moved = nil
		r := cur
		if r == nil || r.State == StateUnsubscribing {
			r = &Record{FeedURL: feedURL, Path: randomHex(16), Secret: randomHex(secretBytes)}
		} else if (r.Topic != topic || r.Advertised != hub) && (r.State == StatePending || r.State == StateActive) {
			// The topic or hub moved: leave the old subscription.
			in := Intent{Topic: r.Topic, Hub: r.Hub, Since: now}
			r.Unsub = append(r.Unsub, in)
			moved = append(moved, in)
		}
		if r.Topic != topic || r.Advertised != hub {
			renew = false
			r.Hub = hub
		}
		r.FeedURL, r.Topic, r.Advertised = feedURL, topic, hub
		r.Requested = now
		if renew && r.State == StateActive {
			// Ask again after the verification timeout if the hub stays
			// silent; the lease still runs meanwhile.
			r.RenewAt = now.Add(m.verifyTimeout)
		} else {
			r.State, r.Error = StatePending, ""
		}
		return r, nil
	})
	if err != nil {
		m.log.Warn("websub subscription not recorded", "feed", m.redact(feedURL), "err", err)
		return
	}
	m.apply(key, rec, rec.rev)
	for _, in := range moved {
		if _, err := m.hub.request(ctx, in.Hub, unsubscribeForm(m.callback(rec), in.Topic)); err != nil {
			m.log.Info("websub unsubscribe of moved topic failed", "feed", m.redact(feedURL), "err", err)
			m.dropIntent(ctx, key, in.Topic)
		}
	}
	used, err := m.hub.request(ctx, rec.Hub, subscribeForm(m.callback(rec), topic, rec.Secret, m.cfg.Lease.D()))
	if err != nil {
		m.fail(ctx, feedURL, topic, err.Error())
		return
	}
	if used != rec.Hub {
		// The hub moved for good: ask the new address from now on.
		if r, err := m.store.update(ctx, key, func(cur *Record) (*Record, error) {
			if cur == nil || cur.Topic != topic {
				return nil, errNoChange
			}
			cur.Hub = used
			return cur, nil
		}); err == nil && r != nil {
			m.apply(key, r, r.rev)
		}
	}
	m.log.Info("websub subscription requested", "feed", m.redact(feedURL), "hub", m.redact(used), "topic", m.redact(topic), "renewal", renew)
}

// unsubscribe claims the feed's record (only one replica wins) and asks
// the hub to stop; the record goes when the hub verifies.
func (m *Manager) unsubscribe(ctx context.Context, feedURL string) {
	key, now := Key(feedURL), m.now()
	claimed := false
	rec, err := m.store.update(ctx, key, func(cur *Record) (*Record, error) {
		claimed = false
		if cur == nil || cur.State == StateUnsubscribing {
			return nil, errNoChange
		}
		claimed = true
		cur.State, cur.Error, cur.Requested = StateUnsubscribing, "", now
		return cur, nil
	})
	if err != nil {
		m.log.Warn("websub unsubscription not recorded", "feed", m.redact(feedURL), "err", err)
		return
	}
	if !claimed || rec == nil {
		return
	}
	m.apply(key, rec, rec.rev)
	if _, err := m.hub.request(ctx, rec.Hub, unsubscribeForm(m.callback(rec), rec.Topic)); err != nil {
		m.log.Info("websub unsubscribe failed; forgetting the subscription", "feed", m.redact(feedURL), "err", err)
		m.forget(ctx, key, rec.Path)
		return
	}
	m.log.Info("websub unsubscription requested", "feed", m.redact(feedURL))
}

// forget deletes a record stuck in unsubscribing.
func (m *Manager) forget(ctx context.Context, key, path string) {
	if _, err := m.store.update(ctx, key, func(cur *Record) (*Record, error) {
		if cur == nil || cur.Path != path || cur.State != StateUnsubscribing {
			return nil, errNoChange
		}
		return nil, nil
	}); err != nil {
		m.log.Debug("websub record not deleted", "key", key, "err", err)
	}
}

func (m *Manager) dropIntent(ctx context.Context, key, topic string) {
	_, _ = m.store.update(ctx, key, func(cur *Record) (*Record, error) {
		if cur == nil {
			return nil, errNoChange
		}
		for i, u := range cur.Unsub {
			if u.Topic == topic {
				cur.Unsub = append(cur.Unsub[:i], cur.Unsub[i+1:]...)
				return cur, nil
			}
		}
		return nil, errNoChange
	})
}

// fail marks the subscription of topic failed, to be retried with backoff.
func (m *Manager) fail(ctx context.Context, feedURL, topic, why string) {
	key := Key(feedURL)
	rec, err := m.store.update(ctx, key, func(cur *Record) (*Record, error) {
		if cur == nil || cur.Topic != topic || cur.State == StateUnsubscribing {
			return nil, errNoChange
		}
		m.failRecord(cur, m.now(), why)
		return cur, nil
	})
	if err != nil {
		m.log.Warn("websub failure not recorded", "feed", m.redact(feedURL), "err", err)
		return
	}
	if rec != nil {
		m.apply(key, rec, rec.rev)
		m.log.Warn("websub subscription failed", "feed", m.redact(feedURL), "err", m.redact(why), "retry_at", rec.RetryAt.UTC().Format(time.RFC3339))
	}
}

// failRecord sets r failed with exponential backoff before the next try.
func (m *Manager) failRecord(r *Record, now time.Time, why string) {
	r.State, r.Error = StateFailed, why
	r.Failures++
	r.RetryAt = now.Add(httpx.Backoff(m.retryMin, m.retryMax, r.Failures, retryJitter, m.rnd))
}

// retryJitter spreads the retries of subscriptions that failed together
// (a hub down) by ±10%.
var retryJitter = httpx.Jitter{Low: 0.9, High: 1.1}

// checkHub probes hub every hubCheck; after hubStrikes failures in a row
// every subscription of ours through it fails, so their feeds are polled
// again at once. Called with m.mu held.
func (m *Manager) checkHub(ctx context.Context, hub string, now time.Time) {
	h := m.hubs[hub]
	if h == nil {
		h = &hubHealth{next: now.Add(m.hubCheck)}
		m.hubs[hub] = h
	}
	if h.probing || now.Before(h.next) {
		return
	}
	h.probing = true
	m.jobs.Go(func() {
		err := m.hub.probe(ctx, hub)
		m.mu.Lock()
		h.probing = false
		h.next = m.now().Add(m.hubCheck)
		if err == nil {
			h.strikes = 0
			m.mu.Unlock()
			return
		}
		h.strikes++
		// Confirm soon rather than a whole period later: a dead hub
		// should cost its feeds seconds of polling, not a minute.
		h.next = m.now().Add(min(m.hubCheck, hubRecheck))
		gone := h.strikes >= hubStrikes
		var feeds []*Record
		if gone {
			h.strikes = 0
			for u := range m.managed {
				if r := m.cache[Key(u)]; r != nil && r.Hub == hub && (r.State == StateActive || r.State == StatePending) {
					feeds = append(feeds, r)
				}
			}
		}
		m.mu.Unlock()
		for _, r := range feeds {
			m.fail(ctx, r.FeedURL, r.Topic, err.Error())
		}
	})
}

// callback is the URL the hub calls for rec.
func (m *Manager) callback(r *Record) string {
	return m.base + "/" + Key(r.FeedURL) + "/" + r.Path
}

func (m *Manager) redact(s string) string { return config.Redact(s) }

// NeedsDiscovery reports whether the next fetch of feedURL should be
// unconditional: push is on for it, yet this poller has seen no body of it
// and there is no subscription to carry on with (a 304 has nothing to
// discover from).
func (m *Manager) NeedsDiscovery(feedURL string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	fc, ok := m.feeds[feedURL]
	if !ok || !m.cfg.Push(fc) {
		return false
	}
	if m.managed[feedURL] != nil {
		return false
	}
	return m.cache[Key(feedURL)] == nil
}
