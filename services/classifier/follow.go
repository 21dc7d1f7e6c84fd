package classifier

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/story"
)

// followStories fills idx from FEEDMON_CLASSIFIED and keeps it in step
// with what every replica publishes there, until stop is called. It
// returns once the items of the last story window are loaded; stop ends
// the following and returns when its goroutines have.
//
// Classified items carry the story ids they went out with, so the stream
// is the record of every story decision: a restarted classifier reloads
// it, and a replica learns of the others' items from it, without a write
// of its own per item. An item this index holds already (its own, or one
// seen on another topic) is recognised from its Nats-Msg-Id header
// without decoding it.
func (s *Service) followStories(ctx context.Context, idx *story.Index) (stop func(), err error) {
	stream, err := s.bus.EnsureStream(ctx, event.StreamClassified)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("classifier: stories: %w", err)
	}
	opts := idx.Options()
	from := time.Now().Add(-opts.Window)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.ClassifiedAll},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return nil, fmt.Errorf("classifier: stories: follow %s: %w", event.StreamClassified, err)
	}
	// Loaded once the last message that existed now has been read, or at
	// once when none is recent enough.
	last := info.State.LastSeq
	loaded := make(chan struct{})
	var caughtUp atomic.Bool
	if last == 0 || info.State.LastTime.Before(from) {
		caughtUp.Store(true)
		close(loaded)
	}
	// The index keeps at most MaxEntries items: of a long history only the
	// last few of them (an item is on one message per topic) are worth
	// decoding and signing.
	var skipBelow uint64
	if keep := uint64(3 * opts.MaxEntries); last > keep {
		skipBelow = last - keep
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if caughtUp.Load() {
			rememberStory(idx, msg)
			return
		}
		md, err := msg.Metadata()
		if err != nil || md.Sequence.Stream >= skipBelow {
			rememberStory(idx, msg)
		}
		if err == nil && (md.Sequence.Stream >= last || md.NumPending == 0) && caughtUp.CompareAndSwap(false, true) {
			close(loaded)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("classifier: stories: follow %s: %w", event.StreamClassified, err)
	}
	stop = func() {
		cc.Stop()
		// Closed once the last callback has returned; bounded, so that a
		// NATS gone away cannot hold up shutdown.
		select {
		case <-cc.Closed():
		case <-time.After(stopTimeout):
			s.log.Warn("story follower did not stop in time", "timeout", stopTimeout)
		}
	}
	select {
	case <-loaded:
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

// rememberStory adds the item of one classified message to idx with the
// story it was published with.
func rememberStory(idx *story.Index, msg jetstream.Msg) {
	// The message id is event.ClassifiedMsgID: "<item id>:<topic>".
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		if i := strings.LastIndexByte(id, ':'); i > 0 && idx.Known(id[:i]) {
			return
		}
	}
	it, err := event.Unmarshal(msg.Data())
	if err != nil || it.StoryID == "" {
		return // not an item, or classified without stories: nothing to learn
	}
	idx.Remember(storyDoc(it), it.StoryID)
}

// storyDoc is what the story index is given of an item: its publication
// time, or when it was fetched when it has none.
func storyDoc(it *event.Item) story.Doc {
	at, err := time.Parse(time.RFC3339, it.Published)
	if err != nil {
		at = it.FetchedTime()
	}
	return story.Doc{ID: it.ID, Title: it.Title, Text: it.Summary, Lang: it.Lang, At: at}
}
