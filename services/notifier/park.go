package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// Parking: a delivery whose next attempt is far off is taken out of NATS
// and kept in the delivered-log bucket until it is due. A NATS message
// handed back with a delay still counts against the consumer's
// MaxAckPending, so without this one receiver down for hours would, once
// that many items waited for it, stall every other subscriber.

// DefaultParkAfter is the retry delay from which a delivery is parked
// rather than handed back to NATS.
const DefaultParkAfter = 30 * time.Second

// WithParkAfter sets the retry delay from which a delivery is parked in
// the bucket instead of being handed back to NATS (0 = never park).
func WithParkAfter(d time.Duration) Option { return func(o *options) { o.parkAfter = d } }

// parked is a delivery waiting in the bucket for its next attempt.
type parked struct {
	Subscriber string      `json:"subscriber"`
	Receiver   string      `json:"receiver"`
	Item       *event.Item `json:"item"`
	Next       time.Time   `json:"next"`
}

func parkKey(logKey string) string { return "park." + logKey }

const parkFilter = "park.>"

// park keeps the delivery for the parker; true when it is safely stored
// and the message may be acked.
func (s *Service) park(ctx context.Context, kv jetstream.KeyValue, j *job, next time.Time) bool {
	data, err := json.Marshal(parked{Subscriber: j.sub.name, Receiver: j.rt.kind, Item: j.item, Next: next})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := kv.Put(ctx, parkKey(j.key), data); err != nil {
		s.log.Warn("could not park a delivery; handing it back to NATS", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "err", err)
		return false
	}
	s.log.Debug("parked delivery", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "next", next)
	return true
}

// parkLoop attempts parked deliveries when they are due, until ctx ends.
func (s *Service) parkLoop(ctx context.Context, kv jetstream.KeyValue) {
	if s.opts.parkAfter <= 0 {
		return
	}
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(flushGrace, cancel) })
	defer stop()

	var (
		mu       sync.Mutex
		inflight = map[string]bool{}
		wg       sync.WaitGroup
		sem      = make(chan struct{}, s.notify.Workers)
	)
	defer wg.Wait()
	t := time.NewTicker(max(s.opts.flushEvery, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due, err := s.dueParked(ctx, kv)
		if err != nil {
			s.log.Warn("could not list parked deliveries", "err", err)
			continue
		}
		for _, d := range due {
			mu.Lock()
			busy := inflight[d.key]
			inflight[d.key] = true
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() {
					<-sem
					mu.Lock()
					delete(inflight, d.key)
					mu.Unlock()
				}()
				s.unpark(work, kv, d)
			})
		}
	}
}

type dueEntry struct {
	key string
	rev uint64
	p   parked
}

func (s *Service) dueParked(ctx context.Context, kv jetstream.KeyValue) ([]dueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	lister, err := kv.ListKeysFiltered(ctx, parkFilter)
	if err != nil {
		return nil, fmt.Errorf("notifier: list parked: %w", err)
	}
	now := s.now()
	var out []dueEntry
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var p parked
		if err := json.Unmarshal(e.Value(), &p); err != nil || p.Item == nil {
			_ = kv.Delete(ctx, k)
			continue
		}
		if !now.Before(p.Next) {
			out = append(out, dueEntry{key: k, rev: e.Revision(), p: p})
		}
	}
	return out, nil
}

// unpark runs a parked delivery through the usual pipeline, then removes
// the entry (delivered or dead-lettered) or moves its time on.
func (s *Service) unpark(ctx context.Context, kv jetstream.KeyValue, d dueEntry) {
	if s.stopping.Err() != nil {
		return
	}
	var j *job
	for _, sub := range s.subs {
		if sub.name != d.p.Subscriber {
			continue
		}
		for _, rt := range sub.receivers {
			if rt.kind == d.p.Receiver {
				j = &job{sub: sub, rt: rt, item: d.p.Item, batch: alert.NewBatch(sub.name, rt.kind, d.p.Item), key: deliveredKey(sub.name, rt.kind, d.p.Item.ID)}
			}
		}
	}
	if j == nil {
		// Left by a config that had this receiver; it stays for the
		// config that has it again (or for the bucket's TTL).
		return
	}
	o := s.deliver(ctx, kv, j, false)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	switch o.kind {
	case settled, dead:
		if err := kv.Delete(dctx, d.key, jetstream.LastRevision(d.rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			s.log.Warn("could not remove a parked delivery", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "err", err)
		}
	default:
		d.p.Next = s.now().Add(max(o.delay, s.opts.backoffMin))
		data, _ := json.Marshal(d.p)
		_, _ = kv.Update(dctx, d.key, data, d.rev)
	}
}
