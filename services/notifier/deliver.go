package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
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
	key   string // the log key (deliveredKey)
	// fresh: the message is on its first delivery by NATS, so a log
	// entry for the delivery is unlikely (it may be claimed without a
	// read first).
	fresh bool
	// role, when set, is the story role still being decided: first (and
	// the batch's updates) are set from it before anything depends on them.
	role *roleWait
}

// newJob is the delivery of it to one receiver of sub; first is the id of
// its story's first report when it is a later report, else "".
func newJob(sub *subscriber, rt route, it *event.Item, first string) *job {
	b := alert.NewBatch(sub.name, rt.kind, it)
	if first != "" {
		b.Updates = map[string]string{it.ID: first}
	}
	return &job{sub: sub, rt: rt, item: it, first: first, batch: b, key: deliveredKey(sub.name, rt.kind, it.ID)}
}

// claimsBlind reports whether, with no log entry, the job goes straight to
// its claim: it is not held for a schedule, not a suppressed update and
// not paced. For such a job a create of the claim decides as much as a
// read followed by the create would (see delivery.look).
func (j *job) claimsBlind() bool {
	if j.rt.lim != nil || j.suppressed() {
		return false
	}
	return j.sub.sched == nil || j.rt.kind == KindNATS
}

// outcome is how one job ended for now.
type outcome struct {
	kind   outcomeKind
	delay  time.Duration // pending, owned: when to look again
	reason string        // dead: why
	// waiting: pending only because the next attempt is not due yet (so
	// the delivery may be parked rather than handed back).
	waiting bool
	// how: settled, what happened (a replay reports it).
	how settledHow
}

// settledHow tells what settled a delivery.
type settledHow int

const (
	settledBefore     settledHow = iota // done or dead already (by anyone): nothing sent now
	settledSent                         // sent now
	settledHeld                         // held for a schedule, or parked for a later retry
	settledSuppressed                   // an update its receiver does not send, recorded as done
)

type outcomeKind int

const (
	settled outcomeKind = iota // done now or earlier (or held for its schedule)
	pending                    // to be tried again later
	owned                      // another sender holds it; nothing for us to do but look again
	dead                       // dead-lettered now

	// Between the steps of a delivery only:
	next  // go on to the next step
	again // the entry changed (a lost compare-and-set, a wait): look again
)

// pipeline is what every delivery shares, whichever way it comes (the
// consumer, the flusher of held items, the parker, dlq replay): the
// attempt budget, backoff and pacing, the dead-letter stream and the
// counters.
type pipeline struct {
	notify config.Notify
	opts   *options
	log    *slog.Logger
	b      *bus.Bus
	m      *telemetry.Metrics

	duration     *prometheus.HistogramVec
	dead         *prometheus.CounterVec
	storyUpdates *prometheus.CounterVec
}

func (p *pipeline) now() time.Time { return p.opts.now() }

// deliver takes one job as far as it can now, through its steps in
// order: each goes on to the next, ends the delivery for now with an
// outcome, or (having lost a compare-and-set or waited) starts over from
// look. last says the message will not be delivered again, so a delivery
// still waiting must be dead-lettered now.
func (p *pipeline) deliver(ctx context.Context, l ledger, j *job, last bool) outcome {
	steps := [...]func(*delivery, context.Context) outcome{
		(*delivery).look,    // read the job's log entry
		(*delivery).hold,    // not now: a suppressed update, a held item
		(*delivery).due,     // done, someone else's, not due yet, or out of budget
		(*delivery).pace,    // shutting down, or the receiver's rate limit
		(*delivery).claim,   // make it ours in the ledger
		(*delivery).attempt, // send it through the receiver
		(*delivery).record,  // done, retry later, or dead-lettered
	}
	d := &delivery{p: p, l: l, j: j, last: last, blind: j.fresh && j.claimsBlind()}
	for {
		var o outcome
		for _, step := range steps {
			if o = step(d, ctx); o.kind != next {
				break
			}
		}
		if o.kind != again {
			return o
		}
	}
}

// delivery is one job on its way through the steps.
type delivery struct {
	p     *pipeline
	l     ledger
	j     *job
	last  bool
	blind bool // the next look may skip the read (see look)

	// The job's log entry and its revision as the steps go, and the time
	// of the last look.
	rec record
	rev uint64
	now time.Time

	// The attempt's result, for record.
	retry   bool
	sendErr error

	lg *slog.Logger
}

// log is the logger of the delivery, made when first used: the usual
// delivery logs nothing.
func (d *delivery) log() *slog.Logger {
	if d.lg == nil {
		d.lg = d.p.jobLog(d.j)
	}
	return d.lg
}

// jobLog is the logger of one job.
func (p *pipeline) jobLog(j *job) *slog.Logger {
	return p.log.With("subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID)
}

// unavailable ends the delivery for now because the ledger could not be
// read or written.
func (d *delivery) unavailable(err error) outcome {
	d.log().Warn("delivered log unavailable; will retry", "err", err)
	return outcome{kind: pending, delay: d.p.opts.backoffMin}
}

// look reads the job's log entry. On the first look at a message NATS
// delivers for the first time there is almost never an entry yet, so a
// job that claimsBlind skips the read and claims with a create (as for a
// missing entry): the create succeeds only where the read would have found
// nothing, and if there is an entry it fails with a conflict and the next
// look reads it.
func (d *delivery) look(ctx context.Context) outcome {
	if d.blind && !grace.Stopping(ctx) {
		d.blind = false
		d.rec, d.rev = record{}, 0
		d.now = d.p.now()
		return outcome{kind: next}
	}
	d.blind = false
	if !d.j.awaitRole() {
		return outcome{kind: pending, delay: d.p.opts.backoffMin}
	}
	rec, rev, err := d.l.load(ctx, d.j.key)
	if err != nil {
		return d.unavailable(err)
	}
	d.rec, d.rev, d.now = rec, rev, d.p.now()
	return outcome{kind: next}
}

// hold takes a job that has no entry yet out of the way of sending: an
// update its receiver does not send is recorded as done, and an item its
// subscriber's schedule holds is queued for a digest (hold.go).
func (d *delivery) hold(ctx context.Context) outcome {
	if d.rec.State != "" {
		return outcome{kind: next}
	}
	if d.j.suppressed() {
		err := d.p.suppress(ctx, d.l, d.j, d.rec, d.rev)
		switch {
		case errors.Is(err, errConflict):
			return outcome{kind: again}
		case err != nil:
			return d.unavailable(err)
		}
		return outcome{kind: settled, how: settledSuppressed}
	}
	if d.j.held(d.now) {
		return d.p.enqueue(ctx, d.l, d.j)
	}
	return outcome{kind: next}
}

// due decides from the entry whether an attempt is due now: not when the
// delivery is over, another sender holds it, or its retry is not due yet
// (waited for in place when the wait is short); and not when it is out of
// attempts or too old, which dead-letters it.
func (d *delivery) due(ctx context.Context) outcome {
	rec, now := &d.rec, d.now
	switch rec.State {
	case stateDone, stateDead:
		return outcome{kind: settled}
	case stateSending:
		if now.Before(rec.Lease) {
			// Another worker or replica is sending it right now.
			return outcome{kind: owned, delay: rec.Lease.Sub(now) + leaseJitter.Spread(time.Second, nil)}
		}
		d.log().Warn("resending a delivery interrupted mid-send (same idempotency key)", "key", d.j.batch.Key, "attempt", rec.Attempts+1)
	case stateRetry:
		if wait := rec.Next.Sub(now); wait > 0 {
			if d.last {
				return d.p.bury(ctx, d.l, d.j, *rec, d.rev, fmt.Sprintf("gave up after %d attempts (redeliveries exhausted): %s", rec.Attempts, rec.Error))
			}
			if wait > d.p.opts.inlineWait || !d.p.sleep(ctx, wait) {
				return outcome{kind: pending, delay: wait, waiting: true}
			}
			return outcome{kind: again}
		}
	}
	if rec.Attempts >= d.p.notify.MaxAttempts {
		return d.p.bury(ctx, d.l, d.j, *rec, d.rev, fmt.Sprintf("gave up after %d attempts: %s", rec.Attempts, rec.Error))
	}
	if maxAge := d.p.notify.MaxAge.D(); !rec.First.IsZero() && now.Sub(rec.First) >= maxAge {
		return d.p.bury(ctx, d.l, d.j, *rec, d.rev, fmt.Sprintf("gave up after %s and %d attempts: %s", maxAge, rec.Attempts, rec.Error))
	}
	return outcome{kind: next}
}

// pace starts nothing new while the service stops, and waits for the
// receiver's rate limit when the wait is short (else hands the job back).
func (d *delivery) pace(ctx context.Context) outcome {
	if grace.Stopping(ctx) {
		return outcome{kind: pending}
	}
	if wait := d.p.waitTurn(ctx, d.j.rt.lim); wait > 0 {
		return outcome{kind: pending, delay: wait}
	}
	return outcome{kind: next}
}

// claim makes the delivery ours in the ledger: of several senders only
// one wins the compare-and-set. A job claimed before its story role was
// known waits for it here; if it cannot be known the claim is given back
// unsent, for the redelivery.
func (d *delivery) claim(ctx context.Context) outcome {
	rec, rev, err := d.l.claim(ctx, d.j.key, d.rec, d.rev, d.j.batch.Key, d.now, d.p.opts.lease)
	switch {
	case errors.Is(err, errConflict):
		return outcome{kind: again}
	case err != nil:
		return d.unavailable(err)
	}
	d.rec, d.rev = rec, rev
	if !d.j.awaitRole() {
		if err := d.l.release(ctx, d.j.key, rev); err != nil {
			// The claim stays until its lease runs out and is then taken
			// over (with the same idempotency key, although nothing was
			// sent).
			d.log().Warn("could not give back an unsent claim; it is taken over when its lease runs out", "err", err)
		}
		return outcome{kind: pending, delay: d.p.opts.backoffMin}
	}
	return outcome{kind: next}
}

// attempt sends the job's batch through its receiver once.
func (d *delivery) attempt(ctx context.Context) outcome {
	d.retry, d.sendErr = d.p.attempt(ctx, d.j.rt, d.j.batch)
	return outcome{kind: next}
}

// record writes the attempt's result to the ledger and counts it: done; a
// retryable failure, looked at again at once (it is waited for in place
// or handed back by due); or a permanent one, dead-lettered. It runs even
// if the consume loop's grace has run out: the send is over either way.
func (d *delivery) record(ctx context.Context) outcome {
	ctx = context.WithoutCancel(ctx)
	p, j, now := d.p, d.j, d.p.now()
	if d.sendErr == nil {
		if err := d.l.complete(ctx, j.key, d.rec, d.rev, now); err != nil {
			// The receiver has it; if the mark is lost the delivery is
			// sent once more with the same key (the contract's window).
			d.log().Warn("delivered, but could not record it", "err", err)
		}
		updates := 0
		if j.first != "" {
			updates = 1
		}
		p.countSent(j.rt.kind, j.batch.Items, updates, now)
		if p.log.Enabled(ctx, slog.LevelDebug) {
			d.log().Debug("delivered", "attempt", d.rec.Attempts)
		}
		return outcome{kind: settled, how: settledSent}
	}
	if !d.retry {
		return p.bury(ctx, d.l, j, d.rec, d.rev, d.sendErr.Error())
	}
	p.m.Notifications.WithLabelValues(j.rt.kind, telemetry.NotifyRetried).Inc()
	delay := p.backoff(d.rec.Attempts, d.sendErr)
	if err := d.l.retryAt(ctx, j.key, d.rec, d.rev, now.Add(delay), d.sendErr.Error(), now); err != nil {
		// Our lease ran out and someone took over, or the log is away;
		// either way look again later.
		d.log().Warn("could not record a failed attempt", "err", err)
		return outcome{kind: pending, delay: delay}
	}
	d.log().Info("delivery failed, will retry", "attempt", d.rec.Attempts, "delay", delay, "err", d.sendErr)
	return outcome{kind: again}
}
