// Package feedsout serves feedmon's alerts as feeds: every topic and every
// subscriber as Atom 1.0 (RFC 4287) and JSON Feed 1.1, so that analysts can
// follow them in the feed reader they already use.
//
// The feeds are built from FEEDMON_CLASSIFIED, with no store of their own:
// an ordered consumer reads the stream's recent tail at start-up and then
// follows it, and each topic and subscriber keeps its newest entries in a
// bounded ring in memory. A subscriber's feed is what its routing (topics
// and filters, the notifier's own code in internal/routing) selects. Later
// reports of a story are folded into the entry of its first report.
// Feeds are rendered when asked for and the bytes kept, with their ETag,
// until the feed changes, so a reader polling every minute costs a map
// lookup and a 304.
package feedsout

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/routing"
)

// Kinds of feed, as they appear in paths.
const (
	KindTopics      = "topics"
	KindSubscribers = "subscribers"
)

// tailFactor sets how much of the stream is read at start-up: this many
// times max_items messages per topic, so that a topic with a tenth of the
// others' traffic still starts with a full feed.
const tailFactor = 20

// feed is one topic's or subscriber's feed.
type feed struct {
	kind, name, title string

	mu   sync.Mutex
	ring *ring
	// version counts changes; changed is the stream time of the last one
	// (so it is the same on every replica and after a restart).
	version uint64
	changed time.Time
	cache   map[string]*rendered // by format
}

// rendered is a feed rendered for one format and one address.
type rendered struct {
	version uint64
	self    string
	body    []byte
	etag    string
}

type subscriberFeed struct {
	filter *routing.Filter
	feed   *feed
}

// Service follows FEEDMON_CLASSIFIED into the feeds and serves them.
type Service struct {
	b        *bus.Bus
	log      *slog.Logger
	maxItems int
	// tokenSum is the SHA-256 of feeds_out.token; nil = no token needed.
	tokenSum []byte

	topics       map[string]*feed // by topic name
	topicByToken map[string]*feed // by subject token
	subscribers  map[string]*feed // by subscriber name
	subFeeds     []subscriberFeed

	loaded   atomic.Bool
	requests *prometheus.CounterVec
}

// New returns the feeds of cfg's topics and subscribers. It does not touch
// NATS: Run does.
func New(cfg config.FeedsOutConfig, b *bus.Bus, reg prometheus.Registerer, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		b: b, log: log, maxItems: cfg.FeedsOut.OrDefaults().MaxItems,
		topics:       map[string]*feed{},
		topicByToken: map[string]*feed{},
		subscribers:  map[string]*feed{},
	}
	if cfg.FeedsOut.Token != "" {
		sum := sha256.Sum256([]byte(cfg.FeedsOut.Token))
		s.tokenSum = sum[:]
	}
	for name := range cfg.Topics {
		f := s.newFeed(KindTopics, name, "feedmon: "+name, true)
		s.topics[name] = f
		s.topicByToken[event.Token(name)] = f
	}
	for i := range cfg.Subscribers {
		cs := &cfg.Subscribers[i]
		// A subscriber that wants every report as an alert of its own
		// (group_stories: false) gets them as entries of their own too.
		f := s.newFeed(KindSubscribers, cs.Name, "feedmon: "+cs.Name+" ("+strings.Join(cs.Topics, ", ")+")", cs.GroupsStories())
		s.subscribers[cs.Name] = f
		s.subFeeds = append(s.subFeeds, subscriberFeed{filter: routing.New(cs), feed: f})
	}
	s.requests = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "feedmon_feeds_out_requests_total",
		Help: "Requests for topic and subscriber feeds by format (atom, json) and result (ok, not_modified, unauthorized, not_found, unavailable).",
	}, []string{"format", "result"})
	for _, f := range []string{FormatAtom, FormatJSON} {
		for _, r := range []string{resultOK, resultNotModified, resultUnauthorized, resultNotFound, resultUnavailable} {
			s.requests.WithLabelValues(f, r)
		}
	}
	return s
}

func (s *Service) newFeed(kind, name, title string, fold bool) *feed {
	return &feed{kind: kind, name: name, title: title, ring: newRing(s.maxItems, fold), cache: map[string]*rendered{}}
}

// Ready is nil once the stream's recent tail is loaded.
func (s *Service) Ready() error {
	if !s.loaded.Load() {
		return errors.New("feedsout: classified items not loaded yet")
	}
	return nil
}

// Run follows FEEDMON_CLASSIFIED until ctx ends. NATS may not be there
// yet: setting up is retried.
func (s *Service) Run(ctx context.Context) error {
	var cc jetstream.ConsumeContext
	err := bus.Retry(ctx, s.log, "feeds out", func(ctx context.Context) error {
		var err error
		cc, err = s.follow(ctx)
		return err
	})
	if err != nil {
		return nil // ctx ended before NATS was there
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}

// follow starts an ordered consumer on the classified stream from its
// recent tail. Ordered consumers are ephemeral and recreated by the client
// after a disconnection, from where they were: nothing is acknowledged and
// nothing is left on the server when the process goes.
func (s *Service) follow(ctx context.Context) (jetstream.ConsumeContext, error) {
	stream, err := s.b.EnsureStream(ctx, event.StreamClassified)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("feedsout: %w", err)
	}
	last := info.State.LastSeq
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.ClassifiedAll}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if tail := uint64(tailFactor * s.maxItems * max(len(s.topics), 1)); last > tail {
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = last - tail + 1
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return nil, fmt.Errorf("feedsout: follow %s: %w", event.StreamClassified, err)
	}
	if last == 0 || info.State.Msgs == 0 {
		s.loaded.Store(true)
	}
	// The previous message's item, for its next topic. Atomic because an
	// ordered consumer recreated after a disconnection calls from another
	// goroutine.
	var prev atomic.Pointer[event.Item]
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		prev.Store(s.take(msg.Subject(), msg.Headers().Get(jetstream.MsgIDHeader), msg.Data(), md.Timestamp, prev.Load()))
		if !s.loaded.Load() && (md.Sequence.Stream >= last || md.NumPending == 0) {
			s.loaded.Store(true)
			s.log.Info("feeds out loaded", "topics", len(s.topics), "subscribers", len(s.subscribers))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("feedsout: follow %s: %w", event.StreamClassified, err)
	}
	// Nothing to read after all: the messages went (by age or size)
	// between the stream's info and the consumer's creation.
	if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 && ci.Delivered.Stream == 0 {
		s.loaded.Store(true)
	}
	return cc, nil
}

// take adds the item of one classified message (subject, Nats-Msg-Id,
// data, stream time) to the feeds it belongs in. An item comes once per
// matched topic, one message after the other: prev, the item of the
// message before, is reused when it is the same, so it is decoded once.
// take returns the item of this message.
func (s *Service) take(subject, msgID string, data []byte, at time.Time, prev *event.Item) *event.Item {
	topic, ok := strings.CutPrefix(subject, event.ClassifiedPrefix)
	if !ok {
		return prev
	}
	it := prev
	// The message id is event.ClassifiedMsgID: "<item id>:<topic>".
	if i := strings.LastIndexByte(msgID, ':'); it == nil || i < 0 || msgID[:i] != it.ID {
		var err error
		if it, err = event.Unmarshal(data); err != nil {
			s.log.Debug("feeds out: not an item", "subject", subject, "err", err)
			return prev
		}
	}
	if f := s.topicByToken[topic]; f != nil {
		f.add(it, at)
	}
	for _, sf := range s.subFeeds {
		if sf.filter.Selects(it, topic) {
			sf.feed.add(it, at)
		}
	}
	return it
}

func (f *feed) add(it *event.Item, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ring.add(it, at) {
		f.version++
		if at.After(f.changed) {
			f.changed = at
		}
	}
}
