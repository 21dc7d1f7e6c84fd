package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// States of a delivery in the idempotency log.
const (
	// stateSending: an attempt is under way, owned until Lease. A sending
	// record whose lease ran out was left by a crash: the delivery is sent
	// again, with the same idempotency key (the contract's one window).
	stateSending = "sending"
	// stateRetry: the last attempt failed in a retryable way; the next one
	// is due at Next. Anyone may claim it then.
	stateRetry = "retry"
	// stateDone: delivered. Never sent again.
	stateDone = "done"
	// stateDead: failed for good and dead-lettered. Only a replay sends it again.
	stateDead = "dead"
)

// record is a delivery's entry in the idempotency log.
type record struct {
	State    string    `json:"state"`
	Key      string    `json:"key"`
	Attempts int       `json:"attempts"`
	First    time.Time `json:"first,omitzero"`
	Lease    time.Time `json:"lease,omitzero"`
	Next     time.Time `json:"next,omitzero"`
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
}

var errConflict = errors.New("notifier: delivered log changed under us")

// deliveredKey is the idempotency-log key of one item for one receiver of
// one subscriber. Item ids are hashed: they come from feeds and need not be
// valid KV key characters.
func deliveredKey(subscriber, kind, itemID string) string {
	sum := sha256.Sum256([]byte(itemID))
	return event.Token(subscriber) + "." + kind + "." + hex.EncodeToString(sum[:16])
}

// outcome is how one (subscriber, receiver) delivery of a message ended
// for now.
type outcome struct {
	kind   outcomeKind
	delay  time.Duration // pending: when to look again
	reason string        // dead: why
	// waiting: pending only because the next attempt is not due yet (so
	// the delivery may be parked rather than handed back).
	waiting bool
}

type outcomeKind int

const (
	settled outcomeKind = iota // done now or earlier
	pending                    // to be tried again later
	owned                      // another sender holds it; nothing for us to do but look again
	dead                       // dead-lettered now
)

// job is one (subscriber, receiver) delivery of one item.
type job struct {
	sub  *subscriber
	rt   route
	item *event.Item
	// first is the id of the first report of the item's story when the
	// item is a later report (an update for this subscriber), else "".
	first string
	batch *alert.Batch
	key   string
	// fresh: the message is on its first delivery by NATS, so a log
	// entry for the delivery is unlikely (deliver may claim without a
	// read first).
	fresh bool
	// role, when set, is the story role still being decided: first (and
	// the batch's updates) are set from it before anything depends on them.
	role *roleWait
}

// roleWait is the story roles of a message's subscribers, decided while
// early deliveries claim (storyRoles).
type roleWait struct {
	done chan struct{} // closed once firsts or abort is set
	// firsts: as storyRoles returns it.
	firsts map[*subscriber]string
	// abort: the roles could not be decided; the message is handed back
	// and the early deliveries are not to be sent.
	abort bool
}

// claimsEarly reports whether sub's delivery of it through rt may claim its
// log entry before the story role is decided: a blind claim (claimsBlind),
// for a subscriber that waits for a story role, through a receiver whose
// handling does not depend on the role until it sends (not email, which
// suppresses updates).
func (s *Service) claimsEarly(sub *subscriber, rt route, it *event.Item, fresh bool) bool {
	return fresh && sub.groupsStories(it) && rt.kind != KindEmail && rt.lim == nil &&
		(sub.sched == nil || rt.kind == KindNATS)
}

// awaitRole waits for the job's story role if it is still being decided
// and applies it; false if it could not be decided (the delivery is not
// to go ahead).
func (j *job) awaitRole() bool {
	if j.role == nil {
		return true
	}
	<-j.role.done
	if j.role.abort {
		return false
	}
	if first := j.role.firsts[j.sub]; first != "" {
		j.first = first
		j.batch.Updates = map[string]string{j.item.ID: first}
	}
	j.role = nil
	return true
}

// handle processes one classified message: route it, deliver it to each
// receiver of each routed subscriber in parallel, then ack it (all done),
// term it (something was dead-lettered and nothing is pending) or hand it
// back with the shortest delay still pending.
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
	kv := s.kv.Load().kv

	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		delay   time.Duration
		anyPend bool
		reasons []string
	)
	run := func(j *job) {
		wg.Go(func() {
			o := s.deliver(ctx, kv, j, last)
			if o.kind == pending && o.waiting && s.opts.parkAfter > 0 && o.delay >= s.opts.parkAfter &&
				s.park(ctx, kv, j, s.now().Add(o.delay)) {
				o = outcome{kind: settled}
			}
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

	// First report of its story, or a later one? Decided once per
	// subscriber, before any receiver sends, so that all agree. The
	// deliveries whose claim does not depend on it claim meanwhile and
	// wait for it before they send (see roleWait).
	roles := &roleWait{done: make(chan struct{})}
	for _, sub := range subs {
		for _, rt := range sub.receivers {
			if s.claimsEarly(sub, rt, it, fresh) {
				j := newJob(sub, rt, it, "")
				j.fresh, j.role = true, roles
				run(j)
			}
		}
	}
	firsts, err := s.storyRoles(ctx, kv, subs, it)
	if err != nil {
		if !last {
			s.log.Warn("story log unavailable; will retry", "item_id", it.ID, "err", err)
			// The early claims are given back unsent.
			roles.abort = true
			close(roles.done)
			wg.Wait()
			_ = msg.NakWithDelay(s.opts.backoffMin)
			return
		}
		// No redelivery follows: rather an extra alert than none.
		s.log.Warn("story log unavailable on the last delivery; alerting as a first report", "item_id", it.ID, "err", err)
		firsts = nil
	}
	roles.firsts = firsts
	close(roles.done)

	for _, sub := range subs {
		for _, rt := range sub.receivers {
			if !s.claimsEarly(sub, rt, it, fresh) {
				j := newJob(sub, rt, it, firsts[sub])
				j.fresh = fresh
				run(j)
			}
		}
	}
	wg.Wait()
	switch {
	case anyPend:
		_ = msg.NakWithDelay(max(delay, 50*time.Millisecond))
	case len(reasons) > 0:
		_ = msg.TermWithReason(truncate("notifier: dead-lettered: "+strings.Join(reasons, "; "), 512))
	default:
		s.ack(msg)
	}
}

func (s *Service) ack(msg jetstream.Msg) {
	if s.opts.beforeAck != nil && !s.opts.beforeAck(msg) {
		return
	}
	// A lost ack only means a redelivery, which the log turns into a no-op.
	_ = msg.Ack()
}

// keepAlive tells NATS the message is still being worked on, so that a
// slow receiver or a wait between attempts does not cause a redelivery.
func (s *Service) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(s.opts.ackWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// deliver takes one delivery as far as it can now: it skips what the log
// says is done, claims the delivery, attempts it, and retries in place
// while the backoff is short. last says the message will not be delivered
// again, so a delivery still waiting must be dead-lettered now.
func (s *Service) deliver(ctx context.Context, kv jetstream.KeyValue, j *job, last bool) outcome {
	// The logger with the delivery's attributes is made when first used:
	// the usual delivery logs nothing.
	var jl *slog.Logger
	log := func() *slog.Logger {
		if jl == nil {
			jl = s.jobLog(j)
		}
		return jl
	}
	blind := j.fresh && s.claimsBlind(j)
	for {
		var (
			rec record
			rev uint64
			err error
		)
		if blind && s.stopping.Err() == nil {
			// First look at a message NATS delivers for the first time:
			// there is almost never a log entry yet, so claim it straight
			// away with a create (rec and rev as for a missing entry). The
			// create succeeds only where a read would have found nothing;
			// if an entry exists it fails with a conflict and the loop
			// reads the entry and goes on as usual.
			blind = false
		} else {
			blind = false
			if !j.awaitRole() {
				return outcome{kind: pending, delay: s.opts.backoffMin}
			}
			rec, rev, err = s.load(ctx, kv, j.key)
			if err != nil {
				log().Warn("delivered log unavailable; will retry", "err", err)
				return outcome{kind: pending, delay: s.opts.backoffMin}
			}
		}
		now := s.now()
		if rec.State == "" && s.suppresses(j) {
			err := s.suppress(ctx, kv, j, rec, rev)
			if errors.Is(err, errConflict) {
				continue
			}
			if err != nil {
				log().Warn("delivered log unavailable; will retry", "err", err)
				return outcome{kind: pending, delay: s.opts.backoffMin}
			}
			return outcome{kind: settled}
		}
		if rec.State == "" && s.holds(j, now) {
			return s.enqueue(ctx, kv, j)
		}
		switch rec.State {
		case stateDone, stateDead:
			return outcome{kind: settled}
		case stateSending:
			if now.Before(rec.Lease) {
				// Another worker or replica is sending it right now.
				return outcome{kind: owned, delay: rec.Lease.Sub(now) + s.jitter(time.Second)}
			}
			log().Warn("resending a delivery interrupted mid-send (same idempotency key)", "key", j.batch.Key, "attempt", rec.Attempts+1)
		case stateRetry:
			if wait := rec.Next.Sub(now); wait > 0 {
				if last {
					return s.giveUp(ctx, kv, j, rec, rev, fmt.Sprintf("gave up after %d attempts (redeliveries exhausted): %s", rec.Attempts, rec.Error))
				}
				if wait > s.opts.inlineWait || !s.sleep(ctx, wait) {
					return outcome{kind: pending, delay: wait, waiting: true}
				}
				continue
			}
		}
		if rec.Attempts >= s.notify.MaxAttempts {
			return s.giveUp(ctx, kv, j, rec, rev, fmt.Sprintf("gave up after %d attempts: %s", rec.Attempts, rec.Error))
		}
		if !rec.First.IsZero() && now.Sub(rec.First) >= s.notify.MaxAge.D() {
			return s.giveUp(ctx, kv, j, rec, rev, fmt.Sprintf("gave up after %s and %d attempts: %s", s.notify.MaxAge.D(), rec.Attempts, rec.Error))
		}

		if s.stopping.Err() != nil {
			// Shutting down: start nothing new, hand it back.
			return outcome{kind: pending}
		}
		if d := s.pace(ctx, j.rt.lim); d > 0 {
			return outcome{kind: pending, delay: d}
		}
		// Claim: only one sender wins the compare-and-set.
		rec.State = stateSending
		rec.Key = j.batch.Key
		rec.Attempts++
		rec.Lease = now.Add(s.opts.lease)
		rec.Next = time.Time{}
		rec.Updated = now
		if rec.First.IsZero() {
			rec.First = now
		}
		rev, err = s.store(ctx, kv, j.key, rec, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			log().Warn("delivered log unavailable; will retry", "err", err)
			return outcome{kind: pending, delay: s.opts.backoffMin}
		}
		if !j.awaitRole() {
			// Claimed before the story role was known, which it now cannot
			// be: give the claim back unsent, for the redelivery.
			s.release(ctx, kv, j, rev)
			return outcome{kind: pending, delay: s.opts.backoffMin}
		}

		retry, sendErr := s.attempt(ctx, j.rt, j.batch)
		// What follows must be recorded even if the consume loop's grace
		// has run out: the send is over either way.
		wctx := context.WithoutCancel(ctx)
		now = s.now()
		if sendErr == nil {
			rec.State = stateDone
			rec.Lease, rec.Error, rec.Updated = time.Time{}, "", now
			if _, err := s.store(wctx, kv, j.key, rec, rev); err != nil {
				// The receiver has it; if the mark is lost the delivery is
				// sent once more with the same key (the contract's window).
				log().Warn("delivered, but could not record it", "err", err)
			}
			s.m.Notifications.WithLabelValues(j.rt.kind, telemetry.NotifySent).Inc()
			if j.first != "" {
				s.storyUpdates.WithLabelValues(j.rt.kind).Inc()
			}
			if ft := j.item.FetchedTime(); !ft.IsZero() {
				s.m.PipelineLatency.Observe(max(now.Sub(ft), 0).Seconds())
			}
			if s.log.Enabled(ctx, slog.LevelDebug) {
				log().Debug("delivered", "attempt", rec.Attempts)
			}
			return outcome{kind: settled}
		}
		if !retry {
			return s.giveUp(wctx, kv, j, rec, rev, sendErr.Error())
		}
		s.m.Notifications.WithLabelValues(j.rt.kind, telemetry.NotifyRetried).Inc()
		delay := s.backoff(rec.Attempts, sendErr)
		rec.State = stateRetry
		rec.Lease = time.Time{}
		rec.Next = now.Add(delay)
		rec.Error = truncate(sendErr.Error(), 1024)
		rec.Updated = now
		if _, err := s.store(wctx, kv, j.key, rec, rev); err != nil {
			// Our lease ran out and someone took over, or the log is away;
			// either way look again later.
			log().Warn("could not record a failed attempt", "err", err)
			return outcome{kind: pending, delay: delay}
		}
		log().Info("delivery failed, will retry", "attempt", rec.Attempts, "delay", delay, "err", sendErr)
	}
}

// release removes a claim at revision rev that was never sent on, so that
// the next look finds no entry and claims afresh. If that fails the claim
// stays until its lease runs out and is then taken over (with the same
// idempotency key, although nothing was sent).
func (s *Service) release(ctx context.Context, kv jetstream.KeyValue, j *job, rev uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	if err := kv.Delete(ctx, j.key, jetstream.LastRevision(rev)); err != nil {
		s.jobLog(j).Warn("could not give back an unsent claim; it is taken over when its lease runs out", "err", err)
	}
}

// jobLog is the logger of one delivery.
func (s *Service) jobLog(j *job) *slog.Logger {
	return s.log.With("subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID)
}

// claimsBlind reports whether, with no log entry, the delivery goes
// straight to its claim: it is not held for a schedule, not a suppressed
// update and not paced. For such a delivery a create of the claim decides
// as much as a read followed by the create would (see deliver).
func (s *Service) claimsBlind(j *job) bool {
	if j.rt.lim != nil || s.suppresses(j) {
		return false
	}
	return j.sub.sched == nil || j.rt.kind == KindNATS
}

// pace waits for the rate limiter when the wait is short; otherwise it
// gives its turn back and returns how long to come back after.
func (s *Service) pace(ctx context.Context, lim *rate.Limiter) time.Duration {
	if lim == nil {
		return 0
	}
	// Real time, not the injected clock: the limiter paces real sends.
	now := time.Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return s.opts.backoffMin
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return 0
	}
	if d > s.opts.inlineWait || !s.sleep(ctx, d) {
		r.CancelAt(time.Now())
		return d
	}
	return 0
}

// attempt runs one Notify bounded by notify.timeout.
func (s *Service) attempt(ctx context.Context, rt route, b *alert.Batch) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, s.notify.Timeout.D())
	defer cancel()
	start := time.Now()
	retry, err = rt.r.Notify(actx, b)
	s.duration.WithLabelValues(rt.kind).Observe(time.Since(start).Seconds())
	if err != nil && actx.Err() != nil {
		// Whatever the receiver made of it, running out of time is transient.
		retry = true
	}
	return retry, err
}

// giveUp dead-letters the delivery and records that it is dead.
func (s *Service) giveUp(ctx context.Context, kv jetstream.KeyValue, j *job, rec record, rev uint64, reason string) outcome {
	log := s.jobLog(j)
	now := s.now()
	dl := DeadLetter{
		Subscriber:     j.sub.name,
		Receiver:       j.rt.kind,
		IdempotencyKey: j.batch.Key,
		Items:          j.batch.Items,
		Updates:        j.batch.Updates,
		Reason:         reason,
		Attempts:       rec.Attempts,
		Time:           now.UTC().Format(time.RFC3339Nano),
	}
	if err := s.publishDead(ctx, &dl, rec.First); err != nil {
		log.Warn("could not dead-letter; will retry", "err", err)
		return outcome{kind: pending, delay: s.opts.backoffMin}
	}
	rec.State = stateDead
	rec.Lease, rec.Next, rec.Updated = time.Time{}, time.Time{}, now
	rec.Error = truncate(reason, 1024)
	if _, err := s.store(context.WithoutCancel(ctx), kv, j.key, rec, rev); err != nil {
		// Already dead-lettered; a later look may attempt it once more.
		log.Warn("dead-lettered, but could not record it", "err", err)
	}
	s.m.Notifications.WithLabelValues(j.rt.kind, telemetry.NotifyFailed).Inc()
	s.dead.WithLabelValues(j.rt.kind).Inc()
	log.Error("delivery failed for good; dead-lettered", "attempts", rec.Attempts, "reason", reason)
	return outcome{kind: dead, reason: reason}
}

func (s *Service) publishDead(ctx context.Context, dl *DeadLetter, first time.Time) error {
	data, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("notifier: encode dead letter: %w", err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	// The msg id makes a repeated dead-lettering of the same failure (a
	// crash before it was recorded) one record.
	id := fmt.Sprintf("%s:dead:%d", dl.IdempotencyKey, first.UnixNano())
	if _, err := s.b.Publish(pctx, event.DeadSubject(dl.Subscriber), id, data); err != nil {
		return fmt.Errorf("notifier: dead letter: %w", err)
	}
	return nil
}

// backoff is the delay before the attempt after attempt n: the far side's
// Retry-After when it gave one, else exponential with jitter.
func (s *Service) backoff(n int, err error) time.Duration {
	if d, ok := alert.RetryDelay(err); ok {
		return d
	}
	d := s.opts.backoffMin
	for i := 1; i < n && d < s.opts.backoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.backoffMax)
	// Equal jitter: spread retries of many deliveries that failed together.
	return d/2 + s.jitter(d/2)
}

func (s *Service) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits d; false if the service is stopping or ctx ended first.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.stopping.Done():
		return false
	}
}

func (s *Service) load(ctx context.Context, kv jetstream.KeyValue, key string) (record, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, nil
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("notifier: delivered log get: %w", err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		// An unreadable entry is overwritten by the next claim.
		return record{}, e.Revision(), nil
	}
	return rec, e.Revision(), nil
}

func (s *Service) store(ctx context.Context, kv jetstream.KeyValue, key string, rec record, rev uint64) (uint64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("notifier: encode log entry: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	var n uint64
	if rev == 0 {
		n, err = kv.Create(ctx, key, data)
	} else {
		n, err = kv.Update(ctx, key, data, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errConflict
	case err != nil:
		return 0, fmt.Errorf("notifier: delivered log put: %w", err)
	}
	return n, nil
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
