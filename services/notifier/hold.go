package notifier

import (
	"context"
	"time"

	"github.com/feedmon/feedmon/services/notifier/slack"
)

// Holding: a delivery that is not to go out now. An update of a story
// whose receiver does not send updates is recorded as done (suppressed); an
// item that its subscriber's schedule holds (a digest, quiet hours) is
// queued in the ledger and sent later in a batch by the flusher
// (flush.go); a delivery whose next attempt is far off is parked in the
// ledger and attempted again by the parker (park.go).

// Schedule says when one subscriber's alerts go out, if not at once.
// Held items wait in the ledger (acked on NATS, so a long night cannot
// fill the consumer's ack window) and go out as one batch per receiver.
// The nats receiver is never held: it feeds machines.
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

// held reports whether the job waits for its subscriber's schedule at now.
func (j *job) held(now time.Time) bool {
	sch := j.sub.sched
	if sch == nil || j.rt.kind == KindNATS {
		return false
	}
	return sch.Digest > 0 || (sch.Quiet != nil && sch.Quiet.Contains(now))
}

// enqueue holds the job's item for its subscriber's schedule; the message
// may then be acked (a long night cannot fill the consumer's ack window).
func (p *pipeline) enqueue(ctx context.Context, l ledger, j *job) outcome {
	if err := l.hold(ctx, j.key, queued{Item: j.item, Queued: p.now(), First: j.first}); err != nil {
		p.log.Warn("could not hold item for its schedule; will retry", "subscriber", j.sub.name, "receiver", j.rt.kind, "err", err)
		return outcome{kind: pending, delay: p.opts.backoffMin}
	}
	return outcome{kind: settled, how: settledHeld}
}

// suppressed reports whether the job is an update that its receiver does
// not send: a per-item email subscriber gets a mail per story, not per
// report (a digest lists the later reports under the first one instead).
func (j *job) suppressed() bool {
	return j.first != "" && j.rt.kind == KindEmail && (j.sub.sched == nil || j.sub.sched.Digest <= 0)
}

// suppress records a suppressed update (whose entry, rec at rev, is empty)
// as done, so that it is handled once like any delivery, and counts it.
func (p *pipeline) suppress(ctx context.Context, l ledger, j *job, rec record, rev uint64) error {
	if err := l.skip(ctx, j.key, rec, rev, j.batch.Key, p.now()); err != nil {
		return err
	}
	p.storyUpdates.WithLabelValues(j.rt.kind).Inc()
	p.log.Debug("update of an alerted story not mailed", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "first_item_id", j.first)
	return nil
}
