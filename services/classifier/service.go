package classifier

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/story"
	"github.com/feedmon/feedmon/internal/telemetry"
)

// Consumer settings. An item is classified in microseconds and its
// publications are settled by another goroutine (see settle.go), so a few
// workers keep up with a lot: each handles one message at a time from
// decoding to handing its publications over.
const (
	ackWait       = 30 * time.Second
	maxDeliver    = 20
	maxAckPending = 1024
	workers       = 8
	// pullBatch is how many items one pull request asks for: items wait
	// for their PubAcks after their worker has moved on, so a batch is
	// worth more than twice the workers.
	pullBatch = 128
	// maxUnsettled is how many items may await their PubAcks before a
	// worker waits too. On a busy machine the classifier shares the CPU
	// with the poller: the more it has in flight, the more it takes. With
	// 128, a first fetch of 50,000 items on two cores is all in the items
	// stream 0.9 s sooner than with 1,024 and all classified as soon
	// (BENCHMARKS.md, "Issue #18 at a glance"); below 64 the round trips
	// show and classifying all of it takes longer.
	maxUnsettled = 128
	// publishTimeout bounds the wait for one item's publications; past it
	// the item is handed back and redelivered.
	publishTimeout = 20 * time.Second
	// retryDelay is how long an item whose publication failed waits
	// before it is redelivered.
	retryDelay = 2 * time.Second
	// settleGrace is how long, once Run's context ends, PubAcks of items
	// in flight are waited for before the items are handed back.
	settleGrace = 6 * time.Second
	// stopTimeout bounds waiting for the story follower to stop.
	stopTimeout = 5 * time.Second
)

// Service is the classifier: a durable consumer on feedmon.items.> that
// publishes every item to feedmon.classified.<topic> for each topic it has.
type Service struct {
	bus   *bus.Bus
	m     *telemetry.Metrics
	log   *slog.Logger
	cls   atomic.Pointer[Classifier]
	ready atomic.Bool

	duration prometheus.Histogram
	errors   *prometheus.CounterVec

	storyOpts story.Options
	// noStories turns story assignment off (WithoutStories).
	noStories bool
	// stories groups near-duplicate items; set by Run once the stories
	// bucket is open.
	stories *story.Index
}

// Option changes a Service's defaults.
type Option func(*options)

type options struct {
	// stories start as the config's stories section; the With options
	// below replace single values.
	stories   story.Options
	noStories bool
}

// WithStoryWindow sets how far apart in publication time two reports of
// one story may be (default story.DefaultWindow, 48h). A restarted
// classifier reloads the classified items of the last window, so past the
// classified stream's retention (retention.classified.max_age) stories are
// forgotten anyway.
func WithStoryWindow(d time.Duration) Option {
	return func(o *options) { o.stories.Window = d }
}

// WithStoryThreshold sets the similarity (0 to 1) from which two items are
// one story (default story.DefaultThreshold).
func WithStoryThreshold(t float64) Option {
	return func(o *options) { o.stories.Threshold = t }
}

// WithStoryMaxEntries caps the items the story index keeps in memory
// (default story.DefaultMaxEntries); the oldest go first.
func WithStoryMaxEntries(n int) Option {
	return func(o *options) { o.stories.MaxEntries = n }
}

// WithoutStories turns story assignment off: items leave without a
// story_id. It exists to measure what stories cost.
func WithoutStories() Option {
	return func(o *options) { o.noStories = true }
}

// New compiles cfg's topic set and returns the service. A nil log logs
// nothing.
func New(cfg config.ClassifierConfig, b *bus.Bus, m *telemetry.Metrics, reg prometheus.Registerer, log *slog.Logger, opts ...Option) (*Service, error) {
	c, err := Compile(cfg.Topics)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{stories: StoryOptions(cfg.Stories)}
	for _, opt := range opts {
		opt(&o)
	}
	f := promauto.With(reg)
	s := &Service{
		bus:       b,
		m:         m,
		log:       log.With("service", "classifier"),
		storyOpts: o.stories,
		noStories: o.noStories,
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "feedmon_classify_duration_seconds",
			Help:    "Time to classify one item (text extraction, matching, scoring).",
			Buckets: []float64{1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01},
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_classifier_errors_total",
			Help: "Items the classifier could not handle, by reason (decode: dropped; publish: retried).",
		}, []string{"reason"}),
	}
	s.errors.WithLabelValues("decode")
	s.errors.WithLabelValues("publish")
	s.cls.Store(c)
	return s, nil
}

// Reload swaps in cfg's topic rules; items in flight finish with the old ones.
func (s *Service) Reload(cfg config.ClassifierConfig) error {
	c, err := Compile(cfg.Topics)
	if err != nil {
		return err
	}
	s.cls.Store(c)
	s.log.Info("topic rules reloaded", "topics", len(cfg.Topics))
	return nil
}

// Ready reports whether the consumer is in place.
func (s *Service) Ready() error {
	if !s.ready.Load() {
		return errors.New("classifier consumer not ready")
	}
	return nil
}

// Run consumes until ctx ends, then lets in-flight items finish. It first
// loads the story index (see followStories), so that a restarted
// classifier and every replica agree on stories.
func (s *Service) Run(ctx context.Context) error {
	stopStories, err := s.openStories(ctx)
	if err != nil {
		return nil // ctx ended
	}
	// Deferred: the follower keeps the index in step with the replicas
	// until the last item in flight is classified.
	defer stopStories()
	s.consume(ctx)
	return nil
}

// openStories loads the story index and starts following the classified
// stream, retrying until it works or ctx ends. stop ends the following.
func (s *Service) openStories(ctx context.Context) (stop func(), err error) {
	if s.noStories {
		return func() {}, nil
	}
	err = bus.Retry(ctx, s.log, "follow "+event.StreamClassified, func(ctx context.Context) error {
		idx := story.New(s.storyOpts)
		st, err := s.followStories(ctx, idx)
		if err != nil {
			return err
		}
		s.stories, stop = idx, st
		return nil
	})
	return stop, err
}

func (s *Service) consume(ctx context.Context) {
	// A worker that finds maxUnsettled items queued waits for the
	// settler to take one.
	out := make(chan *outgoing, maxUnsettled)
	settleCtx, cancel := grace.Context(ctx, settleGrace)
	defer cancel()
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		s.settle(settleCtx, out)
	}()
	s.bus.Consume(ctx, bus.ConsumeOptions{
		Stream: event.StreamItems,
		Consumer: jetstream.ConsumerConfig{
			Durable:       event.ConsumerClassifier,
			Description:   "feedmon classifier",
			FilterSubject: event.ItemsAll,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    maxDeliver,
			MaxAckPending: maxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
		Workers: workers,
		Batch:   pullBatch,
		Ready:   &s.ready,
	}, func(ctx context.Context, msg jetstream.Msg) { s.handle(ctx, msg, out) })
	// Every handler has returned: nothing more is sent on out.
	close(out)
	<-settled
}

// handle classifies one item and publishes it to each of its topics,
// handing the publications to the settler, which acknowledges the item.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg, out chan<- *outgoing) {
	it, err := event.Unmarshal(msg.Data())
	if err != nil {
		// A message that is not an item will never become one: drop it
		// rather than redeliver it forever.
		s.errors.WithLabelValues("decode").Inc()
		s.log.Warn("dropping undecodable item", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("undecodable item")
		return
	}
	start := time.Now()
	res := s.cls.Load().ClassifyItem(it, false)
	s.duration.Observe(time.Since(start).Seconds())

	if len(res.Topics) == 0 {
		s.m.ItemsClassified.WithLabelValues(telemetry.TopicNone).Inc()
		_ = msg.Ack()
		return
	}
	it.Topics, it.Scores, it.Matches = res.Topics, res.Scores, res.Matches
	// Only items with topics get a story: the others are not published.
	it.StoryID = s.assignStory(it)
	data, err := it.Marshal()
	if err != nil {
		s.errors.WithLabelValues("decode").Inc()
		_ = msg.TermWithReason("unencodable item")
		return
	}
	o := &outgoing{
		msg:      msg,
		itemID:   it.ID,
		topics:   res.Topics,
		futs:     make([]jetstream.PubAckFuture, 0, len(res.Topics)),
		deadline: start.Add(publishTimeout),
	}
	for _, topic := range res.Topics {
		// The message id makes a redelivered item's re-publication a no-op.
		f, err := s.bus.PublishAsync(event.ClassifiedSubject(topic), event.ClassifiedMsgID(it.ID, topic), data)
		if err != nil {
			s.errors.WithLabelValues("publish").Inc()
			s.log.Warn("publish classified item, will retry", "item_id", it.ID, "topic", topic, "err", err)
			_ = msg.NakWithDelay(retryDelay)
			return
		}
		o.futs = append(o.futs, f)
	}
	select {
	case out <- o:
	case <-ctx.Done():
		// The grace period is over: hand the item back, its copies are
		// duplicates next time.
		_ = msg.Nak()
	}
}

// assignStory returns the story id of an item.
func (s *Service) assignStory(it *event.Item) string {
	if s.stories == nil {
		return ""
	}
	id, _ := s.stories.Assign(storyDoc(it))
	return id
}
