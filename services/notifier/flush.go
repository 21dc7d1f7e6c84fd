package notifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// flusher sends the items held for schedules (hold.go), one batch per
// receiver at a time: it fixes the oldest held items into the pair's
// batch record, claims the batch, sends it and records the outcome in the
// ledger, with the same attempt budget, backoff and dead-lettering as a
// single delivery.
type flusher struct {
	p     *pipeline
	l     ledger
	subs  []*subscriber
	every time.Duration
	ticks *atomic.Int64 // rounds done, for tests
}

// pairState is what the flusher remembers of one receiver of one
// subscriber between rounds.
type pairState struct {
	boundary time.Time // digest: the last boundary flushed
	scanned  time.Time // quiet only: the last look outside quiet hours
	quiet    bool      // in quiet hours at the last look
}

// run sends held items when their schedule says so, until ctx ends.
func (f *flusher) run(ctx context.Context) {
	states := map[string]*pairState{}
	now := f.p.now()
	for _, sub := range f.subs {
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
	work, cancel := grace.Context(ctx, flushGrace)
	defer cancel()
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		f.ticks.Add(1)
		for _, sub := range f.subs {
			for _, rt := range sub.receivers {
				if rt.kind != KindNATS {
					f.flushPair(work, sub, rt, states[sub.name+"/"+rt.kind])
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

func (f *flusher) flushPair(ctx context.Context, sub *subscriber, rt route, st *pairState) {
	now := f.p.now()
	sch := sub.sched
	if sch == nil {
		// Items held under an earlier config (or by a replica that still
		// runs one) go out now that the subscriber has no schedule.
		if !st.scanned.IsZero() && now.Sub(st.scanned) < orphanRescan {
			return
		}
		st.scanned = now
		if f.sendPending(ctx, sub, rt) {
			f.drain(ctx, sub, rt)
		}
		return
	}
	quiet := sch.Quiet != nil && sch.Quiet.Contains(now)
	if quiet {
		st.quiet = true
		return
	}
	// A batch already made (failed, or left by a crash) goes first.
	if more := f.sendPending(ctx, sub, rt); !more {
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
	f.drain(ctx, sub, rt)
}

// drain sends the pair's held items, batch after batch.
func (f *flusher) drain(ctx context.Context, sub *subscriber, rt route) {
	for range 100 { // bounded: a flood goes out over several looks
		n, err := f.makeBatch(ctx, sub, rt)
		if err != nil {
			f.p.log.Warn("could not batch held items", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return
		}
		if n == 0 || !f.sendPending(ctx, sub, rt) {
			return
		}
	}
}

// makeBatch fixes the oldest held items into the pair's batch record.
func (f *flusher) makeBatch(ctx context.Context, sub *subscriber, rt route) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	held, err := f.l.held(ctx, sub.name, rt.kind)
	if err != nil || len(held) == 0 {
		return 0, err
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
	br := batchRecord{record: record{State: stateRetry, Key: alert.Key(sub.name, rt.kind, items...), Updated: f.p.now()}, Items: items, Updates: updates}
	if err := f.l.makeBatch(ctx, sub.name, rt.kind, &br); err != nil {
		return 0, err
	}
	// Made by us or by another replica: either way there is one to send.
	return len(items), nil
}

// sendPending sends the pair's batch record if there is one and it is due.
// It reports whether the pair is free for a new batch.
func (f *flusher) sendPending(ctx context.Context, sub *subscriber, rt route) bool {
	p, l := f.p, f.l
	for {
		br, rev, found, err := l.batch(ctx, sub.name, rt.kind)
		if err != nil {
			p.log.Warn("could not read held batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return false
		}
		if !found {
			return true
		}
		if len(br.Items) == 0 {
			p.dropBatch(ctx, l, sub, rt, nil)
			return true
		}
		now := p.now()
		switch {
		case br.State == stateSending && now.Before(br.Lease):
			return false // another replica is sending it
		case br.State == stateRetry && now.Before(br.Next):
			return false
		case br.State == stateSending:
			if l.allSettled(ctx, sub.name, rt.kind, br.Items, false) {
				// The crash came after the batch was recorded as sent.
				p.dropBatch(ctx, l, sub, rt, br.Items)
				return true
			}
			p.log.Warn("resending a batch interrupted mid-send (same idempotency key)", "subscriber", sub.name, "receiver", rt.kind, "key", br.Key)
		}
		if br.Attempts >= p.notify.MaxAttempts || (!br.First.IsZero() && now.Sub(br.First) >= p.notify.MaxAge.D()) {
			p.buryBatch(ctx, l, sub, rt, &br, fmt.Sprintf("gave up after %d attempts: %s", br.Attempts, br.Error))
			return true
		}
		if grace.Stopping(ctx) {
			return false
		}
		br.State, br.Lease, br.Next, br.Updated = stateSending, now.Add(p.opts.lease), time.Time{}, now
		br.Attempts++
		if br.First.IsZero() {
			br.First = now
		}
		rev, err = l.updateBatch(ctx, sub.name, rt.kind, &br, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			p.log.Warn("could not claim held batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
			return false
		}
		if d := p.waitTurn(ctx, rt.lim); d > 0 {
			// Not sent: give the claim back for the next look.
			br.State, br.Lease, br.Next = stateRetry, time.Time{}, now.Add(d)
			br.Attempts--
			_, _ = l.updateBatch(context.WithoutCancel(ctx), sub.name, rt.kind, &br, rev)
			return false
		}

		batch := &alert.Batch{Subscriber: sub.name, Receiver: rt.kind, Key: br.Key, Items: br.Items, Updates: updatesIn(br.Updates, br.Items)}
		retry, sendErr := p.attempt(ctx, rt, batch)
		wctx := context.WithoutCancel(ctx)
		now = p.now()
		switch {
		case sendErr == nil:
			p.recordBatch(wctx, l, sub, rt, br.Items, stateDone, "")
			p.dropBatch(wctx, l, sub, rt, br.Items)
			p.countSent(rt.kind, br.Items, batch.CountUpdates(), now)
			p.log.Debug("delivered held batch", "subscriber", sub.name, "receiver", rt.kind, "items", len(br.Items))
			return true
		case !retry:
			br.Error = sendErr.Error()
			p.buryBatch(wctx, l, sub, rt, &br, sendErr.Error())
			return true
		}
		p.m.Notifications.WithLabelValues(rt.kind, telemetry.NotifyRetried).Inc()
		delay := p.backoff(br.Attempts, sendErr)
		br.State, br.Lease, br.Next, br.Updated = stateRetry, time.Time{}, now.Add(delay), now
		br.Error = truncate(sendErr.Error(), 1024)
		if _, err := l.updateBatch(wctx, sub.name, rt.kind, &br, rev); err != nil {
			p.log.Warn("could not record a failed batch attempt", "subscriber", sub.name, "receiver", rt.kind, "err", err)
		}
		p.log.Info("batch delivery failed, will retry", "subscriber", sub.name, "receiver", rt.kind, "attempt", br.Attempts, "delay", delay, "err", sendErr)
		return false
	}
}

// recordBatch records the outcome of a batch in each item's log entry,
// before their queue entries go (see ledger.hold).
func (p *pipeline) recordBatch(ctx context.Context, l ledger, sub *subscriber, rt route, items []*event.Item, state, reason string) {
	if err := l.settleItems(ctx, sub.name, rt.kind, items, state, reason, p.now()); err != nil {
		p.log.Warn("could not record a batched item", "subscriber", sub.name, "receiver", rt.kind, "err", err)
	}
}

// dropBatch removes the items' queue entries and the batch record.
func (p *pipeline) dropBatch(ctx context.Context, l ledger, sub *subscriber, rt route, items []*event.Item) {
	if err := l.dropBatch(ctx, sub.name, rt.kind, items); err != nil {
		p.log.Warn("could not remove a sent batch", "subscriber", sub.name, "receiver", rt.kind, "err", err)
	}
}
