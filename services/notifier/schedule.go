package notifier

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/slack"
)

// Schedule says when one subscriber's alerts go out, if not at once.
// Held items wait in the idempotency-log bucket (acked on NATS, so a long
// night cannot fill the consumer's ack window) and go out as one batch per
// receiver. The nats receiver is never held: it feeds machines.
type Schedule struct {
	// Digest, when positive, collects items and sends them every Digest,
	// at clock boundaries (every hour on the hour for time.Hour, in UTC).
	Digest time.Duration
	// Quiet holds items that arrive during quiet hours until they end.
	Quiet *QuietHours
}

// QuietHours is a daily window, Start to End (offsets from midnight in
// Location; Start after End spans midnight, e.g. 22:00 to 07:00).
type QuietHours struct {
	Start, End time.Duration
	Location   *time.Location
}

// Contains reports whether t falls in the window.
func (q *QuietHours) Contains(t time.Time) bool {
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	off := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute + time.Duration(lt.Second())*time.Second
	if q.Start <= q.End {
		return off >= q.Start && off < q.End
	}
	return off >= q.Start || off < q.End
}

// WithSchedule sets a subscriber's digest and quiet hours.
func WithSchedule(subscriber string, sch Schedule) Option {
	return func(o *options) {
		if o.schedules == nil {
			o.schedules = map[string]Schedule{}
		}
		o.schedules[subscriber] = sch
	}
}

// WithFlushInterval sets how often held items are looked at (default 1s).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushEvery = d } }

const (
	// DefaultFlushInterval is how often the flusher looks at held items.
	DefaultFlushInterval = time.Second
	// maxBatchItems bounds one batch; more held items go out in several.
	maxBatchItems = 50
	// quietRescan: outside quiet hours, how often to look for items that
	// another replica held at the edge of the window.
	quietRescan = 30 * time.Second
	// orphanRescan: how often to look for items held for a subscriber
	// that has no schedule (any more).
	orphanRescan = 5 * time.Minute
	// flushGrace is how long a batch send in flight at shutdown may finish.
	flushGrace = 8 * time.Second
)

// maxItemsFor is how many items one message of kind can show in full.
func maxItemsFor(kind string) int {
	if kind == KindSlack {
		return slack.MaxItems
	}
	return maxBatchItems
}

// holds reports whether the delivery waits for its subscriber's schedule.
func (s *Service) holds(j *job, now time.Time) bool {
	sch := j.sub.sched
	if sch == nil || j.rt.kind == KindNATS {
		return false
	}
	return sch.Digest > 0 || (sch.Quiet != nil && sch.Quiet.Contains(now))
}

// Keys of held items and of the batch being sent, in the delivered-log
// bucket. Log entries have three tokens; these have four, so none collide.
func queueKey(logKey string) string { return "queue." + logKey }
func queueFilter(sub, kind string) string {
	return "queue." + event.Token(sub) + "." + kind + ".*"
}
func batchKey(sub, kind string) string { return "batch." + event.Token(sub) + "." + kind + ".current" }

type queued struct {
	Item   *event.Item `json:"item"`
	Queued time.Time   `json:"queued"`
	// First: the id of the first report of the item's story when the item
	// is an update for the subscriber.
	First string `json:"first,omitempty"`
}

// batchRecord is the batch of held items being sent: its items are fixed
// when it is made, so that every attempt (and a takeover after a crash)
// sends the same items under the same key.
type batchRecord struct {
	record
	Items []*event.Item `json:"items"`
	// Updates: which items are later reports of a story, and of which
	// first report (alert.Batch.Updates).
	Updates map[string]string `json:"updates,omitempty"`
}

// enqueue holds the item for the subscriber's schedule. The queue entry is
// created before the log is consulted again, and the flusher marks items
// done before it removes their queue entries, so an item is never both
// delivered and still held.
func (s *Service) enqueue(ctx context.Context, kv jetstream.KeyValue, j *job) outcome {
	data, err := json.Marshal(queued{Item: j.item, Queued: s.now(), First: j.first})
	if err != nil {
		return outcome{kind: pending, delay: s.opts.backoffMin}
	}
	cctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	qk := queueKey(j.key)
	if _, err := kv.Create(cctx, qk, data); errors.Is(err, jetstream.ErrKeyExists) {
		return outcome{kind: settled}
	} else if err != nil {
		s.log.Warn("could not hold item for its schedule; will retry", "subscriber", j.sub.name, "receiver", j.rt.kind, "err", err)
		return outcome{kind: pending, delay: s.opts.backoffMin}
	}
	if rec, _, err := s.load(ctx, kv, j.key); err == nil && (rec.State == stateDone || rec.State == stateDead) {
		// Sent (and its queue entry removed) while we looked the other way.
		_ = kv.Delete(cctx, qk)
	}
	return outcome{kind: settled}
}

type pairState struct {
	boundary time.Time // digest: the last boundary flushed
	scanned  time.Time // quiet only: the last look outside quiet hours
	quiet    bool      // in quiet hours at the last look
}

// flushLoop sends held items when their schedule says so, until ctx ends.
func (s *Service) flushLoop(ctx context.Context, kv jetstream.KeyValue) {
	states := map[string]*pairState{}
	now := s.now()
	for _, sub := range s.subs {
		for _, rt := range sub.receivers {
			if rt.kind == KindNATS {
				continue
			}
			st := &pairState{}
			if sub.sched != nil && sub.sched.Digest > 0 {
				// Held items go out at the next boundary, not at start-up.
				st.boundary = now.Truncate(sub.sched.Digest)
			}
			states[sub.name+"/"+rt.kind] = st
		}
	}
	if len(states) == 0 {
		return
	}
	// Sends in flight at shutdown get the same grace as the consume loop's.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(flushGrace, cancel) })
	defer stop()
	t := time.NewTicker(s.opts.flushEvery)
	defer t.Stop()
	for {
		s.flushTicks.Add(1)
		for _, sub := range s.subs {
			for _, rt := range sub.receivers {
				if rt.kind != KindNATS {
					s.flushPair(work, kv, sub, rt, states[sub.name+"/"+rt.kind])
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) flushPair(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route, st *pairState) {
	now := s.now()
	sch := sub.sched
	if sch == nil {
		// Items held under an earlier config (or by a replica that still
		// runs one) go out now that the subscriber has no schedule.
		if !st.scanned.IsZero() && now.Sub(st.scanned) < orphanRescan {
			return
		}
		st.scanned = now
		if s.sendPending(ctx, kv, sub, rt) {
			s.drain(ctx, kv, sub, rt)
		}
		return
	}
	quiet := sch.Quiet != nil && sch.Quiet.Contains(now)
	if quiet {
		st.quiet = true
		return
	}
	// A batch already made (failed, or left by a crash) goes first.
	if more := s.sendPending(ctx, kv, sub, rt); !more {
		return
	}
	due := st.quiet // quiet hours just ended
	st.quiet = false
	if sch.Digest > 0 {
		if b := now.Truncate(sch.Digest); b.After(st.boundary) {
			st.boundary = b
			due = true
		}
	} else if st.scanned.IsZero() || now.Sub(st.scanned) >= quietRescan {
		due = true
	}
	if !due {
		return
	}
	st.scanned = now
	s.drain(ctx, kv, sub, rt)
}

// drain sends the pair's held items, batch after batch.
func (s *Service) drain(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route) {
	for range 100 { // bounded: a flood goes out over several looks
		n, err := s.makeBatch(ctx, kv, sub, rt)
		if err != nil {
			s.log.Warn("could not batch held items", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return
		}
		if n == 0 || !s.sendPending(ctx, kv, sub, rt) {
			return
		}
	}
}

// makeBatch fixes the oldest held items into the pair's batch record.
func (s *Service) makeBatch(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	lister, err := kv.ListKeysFiltered(ctx, queueFilter(sub.name, rt.kind))
	if err != nil {
		return 0, fmt.Errorf("notifier: list held items: %w", err)
	}
	var held []queued
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // removed meanwhile
		}
		var q queued
		if err := json.Unmarshal(e.Value(), &q); err != nil || q.Item == nil {
			_ = kv.Delete(ctx, k)
			continue
		}
		logKey := deliveredKey(sub.name, rt.kind, q.Item.ID)
		if rec, _, err := s.load(ctx, kv, logKey); err == nil && (rec.State == stateDone || rec.State == stateDead) {
			_ = kv.Delete(ctx, k)
			continue
		}
		held = append(held, q)
	}
	if len(held) == 0 {
		return 0, nil
	}
	slices.SortFunc(held, func(a, b queued) int {
		return cmp.Or(a.Queued.Compare(b.Queued), cmp.Compare(a.Item.ID, b.Item.ID))
	})
	held = held[:min(len(held), maxItemsFor(rt.kind))]
	items := make([]*event.Item, len(held))
	var updates map[string]string
	for i, q := range held {
		items[i] = q.Item
		if q.First != "" {
			if updates == nil {
				updates = map[string]string{}
			}
			updates[q.Item.ID] = q.First
		}
	}
	br := batchRecord{record: record{State: stateRetry, Key: alert.Key(sub.name, rt.kind, items...), Updated: s.now()}, Items: items, Updates: updates}
	data, err := json.Marshal(br)
	if err != nil {
		return 0, fmt.Errorf("notifier: encode batch: %w", err)
	}
	if _, err := kv.Create(ctx, batchKey(sub.name, rt.kind), data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("notifier: make batch: %w", err)
	}
	// Made by us or by another replica: either way there is one to send.
	return len(items), nil
}

// sendPending sends the pair's batch record if there is one and it is due.
// It reports whether the pair is free for a new batch.
func (s *Service) sendPending(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route) bool {
	bk := batchKey(sub.name, rt.kind)
	for {
		gctx, cancel := context.WithTimeout(ctx, kvTimeout)
		e, err := kv.Get(gctx, bk)
		cancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return true
		}
		if err != nil {
			s.log.Warn("could not read held batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return false
		}
		var br batchRecord
		if err := json.Unmarshal(e.Value(), &br); err != nil || len(br.Items) == 0 {
			s.cleanBatch(ctx, kv, sub, rt, nil)
			return true
		}
		rev := e.Revision()
		now := s.now()
		switch {
		case br.State == stateSending && now.Before(br.Lease):
			return false // another replica is sending it
		case br.State == stateRetry && now.Before(br.Next):
			return false
		case br.State == stateSending:
			if s.allSettled(ctx, kv, sub, rt, br.Items) {
				// The crash came after the batch was recorded as sent.
				s.cleanBatch(ctx, kv, sub, rt, br.Items)
				return true
			}
			s.log.Warn("resending a batch interrupted mid-send (same idempotency key)", "subscriber", sub.name, "receiver", rt.kind, "key", br.Key)
		}
		if br.Attempts >= s.notify.MaxAttempts || (!br.First.IsZero() && now.Sub(br.First) >= s.notify.MaxAge.D()) {
			s.deadBatch(ctx, kv, sub, rt, &br, fmt.Sprintf("gave up after %d attempts: %s", br.Attempts, br.Error))
			return true
		}
		if s.stopping.Err() != nil {
			return false
		}
		br.State, br.Lease, br.Next, br.Updated = stateSending, now.Add(s.opts.lease), time.Time{}, now
		br.Attempts++
		if br.First.IsZero() {
			br.First = now
		}
		data, _ := json.Marshal(br)
		uctx, cancel := context.WithTimeout(ctx, kvTimeout)
		rev, err = kv.Update(uctx, bk, data, rev)
		cancel()
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			s.log.Warn("could not claim held batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return false
		}
		if d := s.pace(ctx, rt.lim); d > 0 {
			// Not sent: give the claim back for the next look.
			br.State, br.Lease, br.Next = stateRetry, time.Time{}, now.Add(d)
			br.Attempts--
			data, _ = json.Marshal(br)
			_, _ = kv.Update(context.WithoutCancel(ctx), bk, data, rev)
			return false
		}

		batch := &alert.Batch{Subscriber: sub.name, Receiver: rt.kind, Key: br.Key, Items: br.Items, Updates: updatesIn(br.Updates, br.Items)}
		retry, sendErr := s.attempt(ctx, rt, batch)
		wctx := context.WithoutCancel(ctx)
		now = s.now()
		switch {
		case sendErr == nil:
			s.markItems(wctx, kv, sub, rt, br.Items, stateDone, "")
			s.cleanBatch(wctx, kv, sub, rt, br.Items)
			s.m.Notifications.WithLabelValues(rt.kind, telemetry.NotifySent).Inc()
			if n := batch.CountUpdates(); n > 0 {
				s.storyUpdates.WithLabelValues(rt.kind).Add(float64(n))
			}
			for _, it := range br.Items {
				if ft := it.FetchedTime(); !ft.IsZero() {
					s.m.PipelineLatency.Observe(max(now.Sub(ft), 0).Seconds())
				}
			}
			s.log.Debug("delivered held batch", "subscriber", sub.name, "receiver", rt.kind, "items", len(br.Items))
			return true
		case !retry:
			br.Error = sendErr.Error()
			s.deadBatch(wctx, kv, sub, rt, &br, sendErr.Error())
			return true
		}
		s.m.Notifications.WithLabelValues(rt.kind, telemetry.NotifyRetried).Inc()
		delay := s.backoff(br.Attempts, sendErr)
		br.State, br.Lease, br.Next, br.Updated = stateRetry, time.Time{}, now.Add(delay), now
		br.Error = truncate(sendErr.Error(), 1024)
		data, _ = json.Marshal(br)
		uctx, cancel = context.WithTimeout(wctx, kvTimeout)
		_, err = kv.Update(uctx, bk, data, rev)
		cancel()
		if err != nil {
			s.log.Warn("could not record a failed batch attempt", "subscriber", sub.name, "receiver", rt.kind, "err", err)
		}
		s.log.Info("batch delivery failed, will retry", "subscriber", sub.name, "receiver", rt.kind, "attempt", br.Attempts, "delay", delay, "err", sendErr)
		return false
	}
}

func (s *Service) allSettled(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route, items []*event.Item) bool {
	for _, it := range items {
		rec, _, err := s.load(ctx, kv, deliveredKey(sub.name, rt.kind, it.ID))
		if err != nil || (rec.State != stateDone && rec.State != stateDead) {
			return false
		}
	}
	return true
}

// markItems records the outcome of a batch in each item's log entry,
// before their queue entries go (see enqueue).
func (s *Service) markItems(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route, items []*event.Item, state, reason string) {
	now := s.now()
	for _, it := range items {
		rec := record{State: state, Key: alert.Key(sub.name, rt.kind, items...), Attempts: 1, Updated: now, Error: truncate(reason, 1024)}
		data, _ := json.Marshal(rec)
		pctx, cancel := context.WithTimeout(ctx, kvTimeout)
		if _, err := kv.Put(pctx, deliveredKey(sub.name, rt.kind, it.ID), data); err != nil {
			s.log.Warn("could not record a batched item", "subscriber", sub.name, "receiver", rt.kind, "item_id", it.ID, "err", err)
		}
		cancel()
	}
}

// cleanBatch removes the items' queue entries and the batch record.
func (s *Service) cleanBatch(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route, items []*event.Item) {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	for _, it := range items {
		_ = kv.Delete(ctx, queueKey(deliveredKey(sub.name, rt.kind, it.ID)))
	}
	if err := kv.Delete(ctx, batchKey(sub.name, rt.kind)); err != nil {
		s.log.Warn("could not remove a sent batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
	}
}

func (s *Service) deadBatch(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, rt route, br *batchRecord, reason string) {
	dl := DeadLetter{
		Subscriber:     sub.name,
		Receiver:       rt.kind,
		IdempotencyKey: br.Key,
		Items:          br.Items,
		Updates:        updatesIn(br.Updates, br.Items),
		Reason:         reason,
		Attempts:       br.Attempts,
		Time:           s.now().UTC().Format(time.RFC3339Nano),
	}
	if err := s.publishDead(ctx, &dl, br.First); err != nil {
		// Keep the batch: the next look tries again.
		s.log.Warn("could not dead-letter a batch; will retry", "subscriber", sub.name, "receiver", rt.kind, "err", err)
		return
	}
	s.markItems(ctx, kv, sub, rt, br.Items, stateDead, reason)
	s.cleanBatch(ctx, kv, sub, rt, br.Items)
	s.m.Notifications.WithLabelValues(rt.kind, telemetry.NotifyFailed).Inc()
	s.dead.WithLabelValues(rt.kind).Inc()
	s.log.Error("batch delivery failed for good; dead-lettered", "subscriber", sub.name, "receiver", rt.kind, "items", len(br.Items), "attempts", br.Attempts, "reason", reason)
}
