// Package notifier is feedmon's last stage: a durable consumer on
// feedmon.classified.> that routes each item to the subscribers whose
// topics it has, once per subscriber, and delivers it through each of their
// receivers with retries, backoff, Retry-After, a dead-letter stream for
// permanent failures and an idempotency log in KV, so that neither a
// redelivery nor a restart nor a second replica sends anything twice.
//
// One classified item, file by file:
//
//   - notifier.go: Service, its options and Run, which opens the ledger
//     and consumes feedmon.classified.> with handle.
//   - consume.go: handle, the ack protocol. It decodes the message,
//     routes it, runs one job per (subscriber, receiver) in parallel
//     (deliverAll) and acks, terms or hands the message back.
//   - route.go: which subscribers take the item from this message, and
//     their receivers.
//   - story.go: whether the item is the first report of its story or an
//     update, decided once per subscriber.
//   - deliver.go: a job and the steps it goes through, in order: look
//     (read the job's log entry), hold, due, pace, claim, attempt, record.
//   - hold.go: what does not go out now: suppressed updates, items held
//     for a digest or quiet hours.
//   - ledger.go: every record the notifier keeps in the feedmon_delivered
//     bucket (the log entries, story entries, held items, batches, parked
//     deliveries), with their key layout.
//   - attempt.go: one attempt at a receiver (Receiver.Notify, e.g. the
//     webhook's POST), pacing, backoff.
//   - dead.go: dead letters, `feedmon dlq list` and `replay`.
//   - replay.go: `feedmon replay`: a window of the classified stream sent
//     to one subscriber through the same steps, by a running notifier
//     (which serves replay calls) or by the command itself.
//
// Beside the consumer, two loops work from the ledger: the flusher sends
// held items as batches (flush.go), and the parker attempts deliveries
// whose retry was too far off to keep their message (park.go).
package notifier

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// Receiver delivers one batch. It decides what is worth retrying: retry is
// true for failures that may pass (429, 5xx, timeouts, connection errors),
// false for permanent ones (a 4xx, an invalid address). A retryable error
// may carry the far side's wish of when to come back (alert.RetryAfterError).
type Receiver interface {
	Notify(ctx context.Context, b *alert.Batch) (retry bool, err error)
}

// Receiver kinds, as they appear in metrics, logs and dead letters.
const (
	KindWebhook = "webhook"
	KindSlack   = "slack"
	KindEmail   = "email"
	KindStdout  = "stdout"
	KindNATS    = "nats"
)

// Delivery defaults that the config does not (yet) expose.
const (
	// DefaultAckWait is how long NATS waits for an ack before redelivering;
	// long deliveries keep the message with InProgress well within it.
	DefaultAckWait = 30 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the exponential backoff
	// between attempts when the far side gives no Retry-After.
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 5 * time.Minute
	// DefaultInlineWait is the longest backoff waited for while holding
	// the message; a longer one hands the message back to NATS
	// (NakWithDelay) so that a worker is not parked on it.
	DefaultInlineWait = 10 * time.Second
	// DefaultSlackRate and DefaultSlackBurst pace each Slack receiver
	// unless WithRateLimit says otherwise (rate.Inf: unpaced).
	DefaultSlackRate  = rate.Limit(1)
	DefaultSlackBurst = 3
	// maxAckPendingPerWorker bounds the messages out at once (including
	// those handed back with a delay) relative to the workers.
	maxAckPendingPerWorker = 64
)

// Option changes a Service's defaults.
type Option func(*options)

type options struct {
	stdout     io.Writer
	now        func() time.Time
	client     *http.Client
	ackWait    time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	inlineWait time.Duration
	lease      time.Duration
	receivers  map[string]Receiver
	limits     map[string]rateLimit
	schedules  map[string]Schedule
	flushEvery time.Duration
	parkAfter  time.Duration
	// beforeAck, when set, is called before a fully handled message is
	// acked; returning false skips the ack (tests use it to make NATS
	// redeliver a message that was delivered).
	beforeAck func(jetstream.Msg) bool
}

// WithStdout sets the writer of the stdout receiver (default os.Stdout).
func WithStdout(w io.Writer) Option { return func(o *options) { o.stdout = w } }

// WithClock sets the clock used for retry schedules, leases, latencies and
// dead-letter times (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithHTTPClient sets the HTTP client of the webhook and slack receivers.
// Each attempt is bounded by notify.timeout through its context either way.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithBackoff sets the bounds of the exponential backoff between attempts.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = minDelay, maxDelay }
}

// WithInlineWait sets the longest retry delay waited for while holding the
// message; longer delays hand it back to NATS with NakWithDelay.
func WithInlineWait(d time.Duration) Option { return func(o *options) { o.inlineWait = d } }

// WithAckWait sets the consumer's AckWait.
func WithAckWait(d time.Duration) Option { return func(o *options) { o.ackWait = d } }

// WithReceiver replaces the receiver of one kind for every subscriber that
// has it configured (for embedding feedmon with a custom transport).
func WithReceiver(kind string, r Receiver) Option {
	return func(o *options) {
		if o.receivers == nil {
			o.receivers = map[string]Receiver{}
		}
		o.receivers[kind] = r
	}
}

type rateLimit struct {
	every rate.Limit
	burst int
}

// WithRateLimit paces the deliveries of one receiver kind to limit per
// second with bursts of burst, separately for each subscriber (a Slack
// incoming webhook takes about one message a second). A delivery that
// would wait longer than the inline wait is handed back to NATS instead of
// holding a worker. The limit is per process: replicas each get it.
func WithRateLimit(kind string, limit rate.Limit, burst int) Option {
	return func(o *options) {
		if o.limits == nil {
			o.limits = map[string]rateLimit{}
		}
		o.limits[kind] = rateLimit{limit, max(burst, 1)}
	}
}

// Service is the notifier.
type Service struct {
	cfg  config.NotifierConfig
	b    *bus.Bus
	m    *telemetry.Metrics
	log  *slog.Logger
	opts options
	subs []*subscriber
	// notify is cfg.Notify with unset values given their defaults, for a
	// config built in code rather than loaded.
	notify config.Notify

	// The notifier's own metrics (the pipeline counts them).
	dead         *prometheus.CounterVec
	storyUpdates *prometheus.CounterVec

	// pipe is what every delivery goes through (deliver.go).
	pipe *pipeline
	// ledger is set once Run has opened the bucket.
	ledger     atomic.Pointer[ledger]
	stories    storyCache   // story entries known (story.go)
	flushTicks atomic.Int64 // rounds of the flusher, for tests
	consuming  atomic.Bool
	serving    atomic.Bool // takes replay calls
	// tasks runs the parallel parts of deliveries while Run consumes
	// (nil otherwise: each on a goroutine of its own).
	tasks atomic.Pointer[tasks]
}

// New builds the notifier for cfg's subscribers; unset notify values take
// their defaults, and a nil log logs nothing. It does not touch NATS: Run
// sets up what it needs, so services start in any order.
func New(cfg config.NotifierConfig, b *bus.Bus, m *telemetry.Metrics, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Service, error) {
	o := options{
		stdout:     os.Stdout,
		now:        time.Now,
		ackWait:    DefaultAckWait,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		inlineWait: DefaultInlineWait,
		flushEvery: DefaultFlushInterval,
		parkAfter:  DefaultParkAfter,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if _, ok := o.limits[KindSlack]; !ok {
		// Slack takes about one message a second per incoming webhook and
		// answers bursts beyond that with 429.
		WithRateLimit(KindSlack, DefaultSlackRate, DefaultSlackBurst)(&o)
	}
	nc := cfg.Notify.OrDefaults()
	if o.client == nil {
		o.client = alert.NewHTTPClient(nc.Timeout.D())
	}
	if o.lease == 0 {
		// A sender that has not finished (or failed) within twice the
		// attempt timeout has crashed; its delivery may be taken over.
		o.lease = 2*nc.Timeout.D() + 5*time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = telemetry.NewMetrics(prometheus.NewRegistry(), ReceiverNames(cfg.Subscribers), nil)
	}
	s := &Service{cfg: cfg, b: b, m: m, log: log, opts: o, notify: nc}
	subs, err := s.buildSubscribers()
	if err != nil {
		return nil, err
	}
	s.subs = subs

	f := promauto.With(reg)
	duration := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "feedmon_notification_duration_seconds",
		Help:    "Duration of one delivery attempt by receiver.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"receiver"})
	s.dead = f.NewCounterVec(prometheus.CounterOpts{
		Name: "feedmon_notifications_dead_lettered_total",
		Help: "Deliveries that failed for good and went to the dead-letter stream, by receiver.",
	}, []string{"receiver"})
	s.storyUpdates = f.NewCounterVec(prometheus.CounterOpts{
		Name: "feedmon_story_updates_total",
		Help: "Later reports of a story already alerted, sent as updates or (per-item email) suppressed, by receiver.",
	}, []string{"receiver"})
	for _, r := range ReceiverNames(cfg.Subscribers) {
		duration.WithLabelValues(r)
		s.dead.WithLabelValues(r)
		s.storyUpdates.WithLabelValues(r)
	}
	s.pipe = &pipeline{
		notify: nc, opts: &s.opts, log: log, b: b, m: m,
		duration: duration, dead: s.dead, storyUpdates: s.storyUpdates,
	}
	return s, nil
}

// ReceiverNames lists the receiver kinds subs use, in a fixed order, so
// that their metric series exist from start-up.
func ReceiverNames(subs []config.Subscriber) []string {
	used := map[string]bool{}
	for i := range subs {
		for _, r := range subs[i].Receivers() {
			used[r] = true
		}
	}
	var out []string
	for _, k := range []string{KindWebhook, KindSlack, KindEmail, KindStdout, KindNATS} {
		if used[k] {
			out = append(out, k)
		}
	}
	return out
}

// Ready is nil once the ledger is open and the consumer pulls.
func (s *Service) Ready() error {
	if s.ledger.Load() == nil {
		return errors.New("notifier: delivered-log bucket not ready")
	}
	if !s.consuming.Load() {
		return errors.New("notifier: consumer not ready")
	}
	if !s.serving.Load() {
		return errors.New("notifier: replay service not ready")
	}
	return nil
}

// Run sets up the bucket and streams the notifier writes to, then consumes
// classified items until ctx ends. At the end, sends in flight finish
// (within the consume loop's grace), waits between attempts are cut short
// and their messages handed back; Run then returns nil.
func (s *Service) Run(ctx context.Context) error {
	err := bus.Retry(ctx, s.log, "notifier setup", func(ctx context.Context) error {
		l, err := openLedger(ctx, s.b)
		if err != nil {
			return err
		}
		if _, err := s.b.EnsureStream(ctx, event.StreamDead); err != nil {
			return err
		}
		if s.usesKind(KindNATS) {
			if _, err := s.b.EnsureStream(ctx, event.StreamAlerts); err != nil {
				return err
			}
		}
		s.ledger.Store(&l)
		return nil
	})
	if err != nil {
		return nil // ctx ended before NATS was there
	}
	s.log.Info("notifier started", "subscribers", len(s.subs), "receivers", ReceiverNames(s.cfg.Subscribers))
	var background sync.WaitGroup
	l := *s.ledger.Load()
	flush := &flusher{p: s.pipe, l: l, subs: s.subs, every: s.opts.flushEvery, ticks: &s.flushTicks}
	park := &parker{p: s.pipe, l: l, every: s.opts.flushEvery, workers: s.notify.Workers, job: s.parkedJob}
	background.Go(func() { flush.run(ctx) })
	background.Go(func() { park.run(ctx) })
	background.Go(func() { s.serveReplays(ctx, l) })
	defer background.Wait()
	t := newTasks()
	s.tasks.Store(t)
	defer func() {
		s.tasks.Store(nil)
		t.stop()
	}()
	s.b.Consume(ctx, bus.ConsumeOptions{
		Stream:   event.StreamClassified,
		Consumer: s.consumerConfig(),
		Workers:  s.notify.Workers,
		Ready:    &s.consuming,
	}, s.handle)
	s.consuming.Store(false)
	s.log.Info("notifier stopped")
	return nil
}

func (s *Service) consumerConfig() jetstream.ConsumerConfig {
	workers := max(s.notify.Workers, 1)
	return jetstream.ConsumerConfig{
		Durable:       event.ConsumerNotifier,
		Description:   "feedmon notifier: routes classified items to subscribers",
		FilterSubject: event.ClassifiedAll,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.ackWait,
		MaxDeliver:    s.maxDeliver(),
		MaxAckPending: workers * maxAckPendingPerWorker,
	}
}

// maxDeliver leaves room for every attempt of every receiver plus hand-backs
// at shutdown and waits on another replica's lease; the idempotency log,
// not MaxDeliver, bounds the attempts. On the last delivery whatever is
// still pending is dead-lettered, so that nothing is dropped silently.
func (s *Service) maxDeliver() int {
	return max(5*s.notify.MaxAttempts, 100)
}

func (s *Service) usesKind(kind string) bool {
	for _, sub := range s.subs {
		for _, r := range sub.receivers {
			if r.kind == kind {
				return true
			}
		}
	}
	return false
}

// parkedJob rebuilds the job of a parked delivery; false if this config
// has no such subscriber and receiver.
func (s *Service) parkedJob(p parked) (*job, bool) {
	sub, rt, ok := s.lookupRoute(p.Subscriber, p.Receiver)
	if !ok {
		return nil, false
	}
	return newJob(sub, rt, p.Item, p.First), true
}
