package notifier

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/grace"
)

// Parking: a delivery whose next attempt is far off is taken out of NATS
// and kept in the ledger until it is due. A NATS message handed back with
// a delay still counts against the consumer's MaxAckPending, so without
// this one receiver down for hours would, once that many items waited for
// it, stall every other subscriber.

// DefaultParkAfter is the retry delay from which a delivery is parked
// rather than handed back to NATS.
const DefaultParkAfter = 30 * time.Second

// WithParkAfter sets the retry delay from which a delivery is parked in
// the bucket instead of being handed back to NATS (0 = never park).
func WithParkAfter(d time.Duration) Option { return func(o *options) { o.parkAfter = d } }

// parkFar parks the job if o says it only waits for an attempt at least
// parkAfter away; the job is then settled as far as its message goes.
func (p *pipeline) parkFar(ctx context.Context, l ledger, j *job, o outcome) outcome {
	if o.kind != pending || !o.waiting || p.opts.parkAfter <= 0 || o.delay < p.opts.parkAfter {
		return o
	}
	next := p.now().Add(o.delay)
	if err := l.park(ctx, j.key, parked{Subscriber: j.sub.name, Receiver: j.rt.kind, Item: j.item, Next: next, First: j.first}); err != nil {
		p.log.Warn("could not park a delivery; handing it back to NATS", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "err", err)
		return o
	}
	p.log.Debug("parked delivery", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "next", next)
	return outcome{kind: settled, how: settledHeld}
}

// parker attempts parked deliveries when they are due. It keeps an index
// of the parked entries (key, due time) from a KV watcher, so that a long
// outage with many parked deliveries costs memory for keys only, and no
// scan of the bucket per tick.
type parker struct {
	p       *pipeline
	l       ledger
	every   time.Duration
	workers int
	// job rebuilds a parked delivery's job; false if this config has no
	// such subscriber and receiver.
	job func(parked) (*job, bool)
}

// run attempts parked deliveries until ctx ends.
func (pk *parker) run(ctx context.Context) {
	if pk.p.opts.parkAfter <= 0 {
		return
	}
	work, cancel := grace.Context(ctx, flushGrace)
	defer cancel()

	var w jetstream.KeyWatcher
	if err := bus.Retry(ctx, pk.p.log, "watch parked deliveries", func(ctx context.Context) error {
		var err error
		w, err = pk.l.watchParked(ctx)
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
		sem      = make(chan struct{}, pk.workers)
	)
	defer wg.Wait()
	t := time.NewTicker(max(pk.every, 10*time.Millisecond))
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
			p, ok := decodeParked(e.Value())
			if !ok {
				delete(index, e.Key())
				continue
			}
			index[e.Key()] = p.Next
		case <-t.C:
			now := pk.p.now()
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
					pk.unpark(work, key)
				})
			}
		}
	}
}

// unpark runs a parked delivery through the usual pipeline, then removes
// the entry (delivered or dead-lettered) or moves its time on.
func (pk *parker) unpark(ctx context.Context, key string) {
	p := pk.p
	if grace.Stopping(ctx) {
		return
	}
	pd, rev, err := pk.l.parkedAt(ctx, key)
	if err != nil || p.now().Before(pd.Next) {
		return // gone meanwhile, or NATS away: the watcher says what is next
	}
	j, ok := pk.job(pd)
	if !ok {
		// Left by a config that had this receiver; it stays for the
		// config that has it again (or for the bucket's TTL).
		return
	}
	o := p.deliver(ctx, pk.l, j, false)
	wctx := context.WithoutCancel(ctx)
	switch o.kind {
	case settled, dead:
		if err := pk.l.unpark(wctx, key, rev); err != nil {
			p.log.Warn("could not remove a parked delivery", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "err", err)
		}
	default:
		pd.Next = p.now().Add(max(o.delay, p.opts.backoffMin))
		_ = pk.l.repark(wctx, key, pd, rev)
	}
}
