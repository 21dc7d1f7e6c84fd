package backtest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
)

// Reading settings. A backtest reads through an ephemeral consumer of its
// own: NATS removes it by itself once it has been idle for
// consumerInactive, should the command die before deleting it.
const (
	consumerInactive = 30 * time.Second
	pullBatch        = 1024
	// cleanupTimeout bounds deleting the consumer when the scan ends,
	// whatever ended it.
	cleanupTimeout = 5 * time.Second
)

// scan calls fn with each message of st stored since from (zero: every
// message it keeps), in stream order, up to the last message st held when
// scan started: items that arrive meanwhile are not part of the window.
//
// It is read-only: the consumer is ephemeral (no durable name), acks
// nothing (AckNone), keeps its state in memory and is deleted before scan
// returns, so NATS holds the same streams, consumers and messages
// afterwards. An ordered consumer would do the same reading but outlives
// its Stop by minutes (nats.go leaves it to its inactivity threshold).
// headersOnly asks NATS for the headers alone.
func scan(ctx context.Context, st jetstream.Stream, from time.Time, headersOnly bool, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	name := info.Config.Name
	last := info.State.LastSeq
	if info.State.Msgs == 0 || (!from.IsZero() && info.State.LastTime.Before(from)) {
		return nil // nothing in the window: no consumer needed
	}
	cfg := jetstream.ConsumerConfig{
		Description:       "feedmon backtest: ephemeral, read-only",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       headersOnly,
		MemoryStorage:     true,
		InactiveThreshold: consumerInactive,
	}
	if !from.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &from
	}
	cons, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("backtest: read %s: %w", name, err)
	}
	defer func() {
		// A fresh context: the consumer goes also when ctx ended the scan.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = st.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	if cons.CachedInfo().NumPending == 0 {
		return nil // the window's messages went (max_age) since Info
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(pullBatch))
	if err != nil {
		return fmt.Errorf("backtest: read %s: %w", name, err)
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("backtest: read %s: %w", name, ctx.Err())
			}
			return fmt.Errorf("backtest: read %s: %w", name, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("backtest: read %s: %w", name, err)
		}
		if err := fn(msg, md); err != nil {
			return err
		}
		// NumPending 0: the last message of the window is gone (a
		// stream that trims its oldest while we read never trims the
		// newest, but a purge can).
		if md.Sequence.Stream >= last || md.NumPending == 0 {
			return nil
		}
	}
}

// classifiedIndex holds the topics each item was published with.
//
// The join of items and their classified records is a map from item id to
// topics, filled from FEEDMON_CLASSIFIED before the items are read. Its
// size is bounded by the window, not by the streams: it reads the
// classified records stored since the window's start (an item is
// classified after it is stored, so its records are never older than it),
// and it holds one entry per item of the window that had a topic (items
// with none leave no record). Reading the two streams side by side would
// not need less: an item's records come later than it in time, interleaved
// with other items', so the items waiting for theirs would be held
// instead; and NATS cannot look a record up by item id (subjects are per
// topic). Only the headers are read (the Nats-Msg-Id is "<item id>:<topic>",
// event.ClassifiedMsgID), so the index costs the id and a shared topic
// name per record, and the read moves a tenth of the bytes.
type classifiedIndex struct {
	byID map[string][]string
	// names interns topic names: one string per topic, not per record.
	names map[string]string
}

func newClassifiedIndex() *classifiedIndex {
	return &classifiedIndex{byID: map[string][]string{}, names: map[string]string{}}
}

// add records one classified message.
func (x *classifiedIndex) add(ctx context.Context, st jetstream.Stream, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
	id, topic, ok := recordOf(msg.Headers().Get(jetstream.MsgIDHeader))
	if !ok {
		// Published without the classifier's message id (by hand, say):
		// the item id is in the body, which a headers-only read lacks.
		raw, err := st.GetMsg(ctx, md.Sequence.Stream)
		if err != nil {
			return fmt.Errorf("backtest: read %s: %w", event.StreamClassified, err)
		}
		it, err := event.Unmarshal(raw.Data)
		if err != nil {
			return nil // not an item: the notifier drops it too
		}
		id, topic = it.ID, strings.TrimPrefix(raw.Subject, event.ClassifiedPrefix)
	}
	name, ok := x.names[topic]
	if !ok {
		name = strings.Clone(topic)
		x.names[topic] = name
	}
	ts := x.byID[id]
	for _, t := range ts {
		if t == name {
			return nil // a record published twice
		}
	}
	x.byID[id] = append(ts, name)
	return nil
}

// recordOf splits a classified message id into item id and topic.
func recordOf(msgID string) (id, topic string, ok bool) {
	i := strings.LastIndexByte(msgID, ':')
	if i <= 0 || i == len(msgID)-1 {
		return "", "", false
	}
	return msgID[:i], msgID[i+1:], true
}

// readClassified reads the classified records stored since from.
func readClassified(ctx context.Context, st jetstream.Stream, from time.Time) (*classifiedIndex, error) {
	x := newClassifiedIndex()
	err := scan(ctx, st, from, true, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		return x.add(ctx, st, msg, md)
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}
