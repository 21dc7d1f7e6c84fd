package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
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
	// First: the id of the first report of the item's story when the item
	// is an update for the subscriber.
	First string `json:"first,omitempty"`
}

func parkKey(logKey string) string { return "park." + logKey }

const parkFilter = "park.>"

// park keeps the delivery for the parker; true when it is safely stored
// and the message may be acked.
func (s *Service) park(ctx context.Context, kv jetstream.KeyValue, j *job, next time.Time) bool {
	data, err := json.Marshal(parked{Subscriber: j.sub.name, Receiver: j.rt.kind, Item: j.item, Next: next, First: j.first})
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
// It keeps an index of the parked entries (key, due time) from a KV
// watcher, so that a long outage with many parked deliveries costs memory
// for keys only, and no scan of the bucket per tick.
func (s *Service) parkLoop(ctx context.Context, kv jetstream.KeyValue) {
	if s.opts.parkAfter <= 0 {
		return
	}
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(flushGrace, cancel) })
	defer stop()

	var w jetstream.KeyWatcher
	if err := bus.Retry(ctx, s.log, "watch parked deliveries", func(ctx context.Context) error {
		var err error
		w, err = kv.WatchFiltered(ctx, []string{parkFilter})
		return err
	}); err != nil {
		return // ctx ended
	}
	defer func() { _ = w.Stop() }()

	var (
		index    = map[string]time.Time{} // parked key -> due
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
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the end of the initial values
			}
			if e.Operation() != jetstream.KeyValuePut {
				delete(index, e.Key())
				continue
			}
			var p parked
			if err := json.Unmarshal(e.Value(), &p); err != nil || p.Item == nil {
				delete(index, e.Key())
				continue
			}
			index[e.Key()] = p.Next
		case <-t.C:
			now := s.now()
			for key, due := range index {
				if now.Before(due) {
					continue
				}
				mu.Lock()
				busy := inflight[key]
				inflight[key] = true
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
						delete(inflight, key)
						mu.Unlock()
					}()
					s.unpark(work, kv, key)
				})
			}
		}
	}
}

// unpark runs a parked delivery through the usual pipeline, then removes
// the entry (delivered or dead-lettered) or moves its time on.
func (s *Service) unpark(ctx context.Context, kv jetstream.KeyValue, key string) {
	if s.stopping.Err() != nil {
		return
	}
	gctx, gcancel := context.WithTimeout(ctx, kvTimeout)
	e, err := kv.Get(gctx, key)
	gcancel()
	if err != nil {
		return // gone meanwhile, or NATS away: the watcher says what is next
	}
	var p parked
	if err := json.Unmarshal(e.Value(), &p); err != nil || p.Item == nil || s.now().Before(p.Next) {
		return
	}
	var j *job
	for _, sub := range s.subs {
		if sub.name != p.Subscriber {
			continue
		}
		for _, rt := range sub.receivers {
			if rt.kind == p.Receiver {
				j = newJob(sub, rt, p.Item, p.First)
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
		if err := kv.Delete(dctx, key, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			s.log.Warn("could not remove a parked delivery", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "err", err)
		}
	default:
		p.Next = s.now().Add(max(o.delay, s.opts.backoffMin))
		data, _ := json.Marshal(p)
		_, _ = kv.Update(dctx, key, data, e.Revision())
	}
}
