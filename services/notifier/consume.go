package notifier

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
)

// handle processes one classified message: route it (route.go), deliver
// it to each receiver of each routed subscriber (deliverAll), then ack it
// (all done), term it (something was dead-lettered and nothing is
// pending) or hand it back with the shortest delay still pending.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	it, err := event.Unmarshal(msg.Data())
	if err != nil {
		s.log.Warn("dropping undecodable message", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("notifier: undecodable item")
		return
	}
	if it.Topics == nil {
		it.Topics = []string{}
	}
	subs := s.routeItem(strings.TrimPrefix(msg.Subject(), event.ClassifiedPrefix), it)
	if len(subs) == 0 {
		s.ack(msg)
		return
	}
	stop := s.keepAlive(msg)
	defer stop()
	last, fresh := false, false
	if md, err := msg.Metadata(); err == nil {
		last = md.NumDelivered >= uint64(s.maxDeliver())
		fresh = md.NumDelivered == 1
	}
	v := s.deliverAll(ctx, *s.ledger.Load(), it, subs, fresh, last)
	switch {
	case v.handBack:
		_ = msg.NakWithDelay(v.delay)
	case len(v.dead) > 0:
		_ = msg.TermWithReason(truncate("notifier: dead-lettered: "+strings.Join(v.dead, "; "), 512))
	default:
		s.ack(msg)
	}
}

// verdict is what the deliveries of one message leave to do with it.
type verdict struct {
	// handBack: something is pending; look at the message again after
	// delay.
	handBack bool
	delay    time.Duration
	// dead: the deliveries dead-lettered now, "subscriber/receiver: reason".
	dead []string
}

// deliverAll runs the jobs of it for the receivers of subs in parallel,
// each through the pipeline's steps (deliver.go), parking those that wait
// long (park.go). fresh says the message is on its first delivery, last
// that it will not be delivered again.
//
// Whether it is the first report of its story or a later one is decided
// once per subscriber before any receiver sends, so that all agree
// (story.go). The jobs whose claim does not depend on it claim meanwhile
// and wait for it before they send (roleWait).
func (s *Service) deliverAll(ctx context.Context, l ledger, it *event.Item, subs []*subscriber, fresh, last bool) verdict {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		delay   time.Duration
		anyPend bool
		reasons []string
	)
	run := func(j *job) {
		s.tasks.Load().Go(&wg, func() {
			o := s.pipe.deliver(ctx, l, j, last)
			o = s.pipe.parkFar(ctx, l, j, o)
			mu.Lock()
			defer mu.Unlock()
			switch o.kind {
			case pending, owned:
				if !anyPend || o.delay < delay {
					delay = o.delay
				}
				anyPend = true
			case dead:
				reasons = append(reasons, j.sub.name+"/"+j.rt.kind+": "+o.reason)
			}
		})
	}

	roles := &roleWait{done: make(chan struct{})}
	for _, sub := range subs {
		for _, rt := range sub.receivers {
			if claimsEarly(sub, rt, it, fresh) {
				j := newJob(sub, rt, it, "")
				j.fresh, j.role = true, roles
				run(j)
			}
		}
	}
	firsts, err := s.storyRoles(ctx, l, subs, it)
	if err != nil {
		if !last {
			s.log.Warn("story log unavailable; will retry", "item_id", it.ID, "err", err)
			// The early claims are given back unsent.
			roles.abort = true
			close(roles.done)
			wg.Wait()
			return verdict{handBack: true, delay: s.opts.backoffMin}
		}
		// No redelivery follows: rather an extra alert than none.
		s.log.Warn("story log unavailable on the last delivery; alerting as a first report", "item_id", it.ID, "err", err)
		firsts = nil
	}
	roles.firsts = firsts
	close(roles.done)

	for _, sub := range subs {
		for _, rt := range sub.receivers {
			if !claimsEarly(sub, rt, it, fresh) {
				j := newJob(sub, rt, it, firsts[sub])
				j.fresh = fresh
				run(j)
			}
		}
	}
	wg.Wait()
	if anyPend {
		return verdict{handBack: true, delay: max(delay, 50*time.Millisecond)}
	}
	return verdict{dead: reasons}
}

func (s *Service) ack(msg jetstream.Msg) {
	if s.opts.beforeAck != nil && !s.opts.beforeAck(msg) {
		return
	}
	// A lost ack only means a redelivery, which the log turns into a no-op.
	_ = msg.Ack()
}

// keepAlive tells NATS the message is still being worked on, so that a
// slow receiver or a wait between attempts does not cause a redelivery. It
// is a timer rather than a goroutine: most messages are done long before
// it first fires.
func (s *Service) keepAlive(msg jetstream.Msg) (stop func()) {
	every := max(s.opts.ackWait/3, 10*time.Millisecond)
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	// Holding mu, stop waits for a progress report under way.
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
