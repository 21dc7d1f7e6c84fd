package notifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// DeadLetter is the record of a delivery that failed for good, published
// on feedmon.dead.<subscriber>.
type DeadLetter struct {
	Subscriber     string        `json:"subscriber"`
	Receiver       string        `json:"receiver"`
	IdempotencyKey string        `json:"idempotency_key"`
	Items          []*event.Item `json:"items"`
	// Updates: which items are later reports of a story already alerted
	// (item id → first report's id), so that a replay sends them as such.
	Updates  map[string]string `json:"updates,omitempty"`
	Reason   string            `json:"reason"`
	Attempts int               `json:"attempts"`
	Time     string            `json:"time"`
}

// bury dead-letters the job and records it dead in the ledger (rec at
// rev is its entry).
func (p *pipeline) bury(ctx context.Context, l ledger, j *job, rec record, rev uint64, reason string) outcome {
	log := p.jobLog(j)
	now := p.now()
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
	if err := p.publishDead(ctx, &dl, rec.First); err != nil {
		log.Warn("could not dead-letter; will retry", "err", err)
		return outcome{kind: pending, delay: p.opts.backoffMin}
	}
	if err := l.bury(context.WithoutCancel(ctx), j.key, rec, rev, reason, now); err != nil {
		// Already dead-lettered; a later look may attempt it once more.
		log.Warn("dead-lettered, but could not record it", "err", err)
	}
	p.countDead(j.rt.kind)
	log.Error("delivery failed for good; dead-lettered", "attempts", rec.Attempts, "reason", reason)
	return outcome{kind: dead, reason: reason}
}

// buryBatch dead-letters a held batch, records its items dead and removes
// it. If the dead letter cannot be published the batch stays, for the
// next look.
func (p *pipeline) buryBatch(ctx context.Context, l ledger, sub *subscriber, rt route, br *batchRecord, reason string) {
	dl := DeadLetter{
		Subscriber:     sub.name,
		Receiver:       rt.kind,
		IdempotencyKey: br.Key,
		Items:          br.Items,
		Updates:        updatesIn(br.Updates, br.Items),
		Reason:         reason,
		Attempts:       br.Attempts,
		Time:           p.now().UTC().Format(time.RFC3339Nano),
	}
	if err := p.publishDead(ctx, &dl, br.First); err != nil {
		p.log.Warn("could not dead-letter a batch; will retry", "subscriber", sub.name, "receiver", rt.kind, "err", err)
		return
	}
	p.recordBatch(ctx, l, sub, rt, br.Items, stateDead, reason)
	p.dropBatch(ctx, l, sub, rt, br.Items)
	p.countDead(rt.kind)
	p.log.Error("batch delivery failed for good; dead-lettered", "subscriber", sub.name, "receiver", rt.kind, "items", len(br.Items), "attempts", br.Attempts, "reason", reason)
}

func (p *pipeline) countDead(kind string) {
	p.m.Notifications.WithLabelValues(kind, telemetry.NotifyFailed).Inc()
	p.dead.WithLabelValues(kind).Inc()
}

// publishDead publishes a dead letter on feedmon.dead.<subscriber>.
func (p *pipeline) publishDead(ctx context.Context, dl *DeadLetter, first time.Time) error {
	data, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("notifier: encode dead letter: %w", err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	// The msg id makes a repeated dead-lettering of the same failure (a
	// crash before it was recorded) one record.
	id := fmt.Sprintf("%s:dead:%d", dl.IdempotencyKey, first.UnixNano())
	if _, err := p.b.Publish(pctx, event.DeadSubject(dl.Subscriber), id, data); err != nil {
		return fmt.Errorf("notifier: dead letter: %w", err)
	}
	return nil
}

// ListDead writes one line per dead-lettered delivery still in the
// dead-letter stream, oldest first, then a count.
func ListDead(ctx context.Context, b *bus.Bus, w io.Writer) error {
	n := 0
	err := eachDead(ctx, b, func(seq uint64, dl *DeadLetter, derr error) error {
		n++
		if derr != nil {
			_, err := fmt.Fprintf(w, "seq=%d undecodable: %v\n", seq, derr)
			return err
		}
		_, err := fmt.Fprintf(w, "seq=%d time=%s subscriber=%s receiver=%s attempts=%d items=%s reason=%q\n",
			seq, dl.Time, dl.Subscriber, dl.Receiver, dl.Attempts, describeItems(dl.Items), alert.Sanitize(dl.Reason))
		return err
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d dead-lettered deliveries\n", n)
	return err
}

func describeItems(items []*event.Item) string {
	s := ""
	for i, it := range items {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s:%q", it.ID, alert.Sanitize(it.Title))
	}
	return s
}

// ReplayDead sends the dead-lettered deliveries again through the same
// pipeline as the notifier (idempotency log, same Idempotency-Key), one
// attempt each. A delivery that succeeds, or fails permanently again (and
// so is dead-lettered anew), leaves the dead-letter stream; one that still
// fails transiently, or whose subscriber or receiver is no longer
// configured, stays. It writes one line per delivery and a summary, and
// returns an error if any delivery stays.
func ReplayDead(ctx context.Context, b *bus.Bus, cfg config.NotifierConfig, w io.Writer, opts ...Option) error {
	// One attempt per delivery: a receiver still down must not hold the
	// command for its whole backoff.
	opts = append([]Option{WithStdout(w)}, append(opts, WithInlineWait(0))...)
	s, err := New(cfg, b, nil, nil, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		return err
	}
	l, err := openLedger(ctx, b)
	if err != nil {
		return fmt.Errorf("notifier: dlq replay: %w", err)
	}
	st, err := b.EnsureStream(ctx, event.StreamDead)
	if err != nil {
		return fmt.Errorf("notifier: dlq replay: %w", err)
	}
	var replayed, again, stays int
	err = eachDead(ctx, b, func(seq uint64, dl *DeadLetter, derr error) error {
		var line string
		switch res, detail := s.replayOne(ctx, l, dl, derr); res {
		case replayDone:
			replayed++
			line = "replayed"
		case replayAlreadyDone:
			replayed++
			line = "already delivered"
		case replayDeadAgain:
			again++
			line = "failed again (dead-lettered anew): " + detail
		default:
			stays++
			_, err := fmt.Fprintf(w, "seq=%d kept: %s\n", seq, alert.Sanitize(detail))
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, kvTimeout)
		defer cancel()
		if err := st.DeleteMsg(dctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("notifier: dlq replay: remove seq %d: %w", seq, err)
		}
		_, err := fmt.Fprintf(w, "seq=%d %s/%s items=%s %s\n", seq, dl.Subscriber, dl.Receiver, describeItems(dl.Items), alert.Sanitize(line))
		return err
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%d replayed, %d failed again, %d kept\n", replayed, again, stays); err != nil {
		return err
	}
	if stays > 0 {
		return fmt.Errorf("notifier: dlq replay: %d deliveries kept in the dead-letter stream", stays)
	}
	return nil
}

type replayResult int

const (
	replayDone replayResult = iota
	replayAlreadyDone
	replayDeadAgain
	replayKept
)

func (s *Service) replayOne(ctx context.Context, l ledger, dl *DeadLetter, derr error) (replayResult, string) {
	if derr != nil {
		return replayKept, derr.Error()
	}
	if len(dl.Items) == 0 {
		return replayKept, "no items"
	}
	sub, rt, ok := s.lookupRoute(dl.Subscriber, dl.Receiver)
	if !ok {
		return replayKept, fmt.Sprintf("subscriber %q has no %s receiver in this config", dl.Subscriber, dl.Receiver)
	}
	if len(dl.Items) > 1 {
		return s.replayBatch(ctx, l, sub, rt, dl)
	}
	it := dl.Items[0]
	j := newJob(sub, rt, it, dl.Updates[it.ID])

	// Revive a dead entry so the pipeline attempts it again: a fresh
	// budget, the same key.
	for {
		rec, rev, err := l.load(ctx, j.key)
		if err != nil {
			return replayKept, err.Error()
		}
		if rec.State == stateDone {
			return replayAlreadyDone, ""
		}
		if rec.State != stateDead {
			break
		}
		if err := l.revive(ctx, j.key, rev, j.batch.Key, s.pipe.now()); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return replayKept, err.Error()
		}
		break
	}
	o := s.pipe.deliver(ctx, l, j, false)
	switch o.kind {
	case settled:
		return replayDone, ""
	case dead:
		return replayDeadAgain, o.reason
	case owned:
		return replayKept, "another notifier is sending it right now"
	}
	rec, _, _ := l.load(ctx, j.key)
	return replayKept, "still failing: " + rec.Error
}

// replayBatch sends a dead-lettered digest again as it was, in one
// attempt, under its original key. It is kept on any failure.
func (s *Service) replayBatch(ctx context.Context, l ledger, sub *subscriber, rt route, dl *DeadLetter) (replayResult, string) {
	if l.allSettled(ctx, sub.name, rt.kind, dl.Items, true) {
		return replayAlreadyDone, ""
	}
	b := &alert.Batch{Subscriber: sub.name, Receiver: rt.kind, Key: dl.IdempotencyKey, Items: dl.Items, Updates: updatesIn(dl.Updates, dl.Items)}
	if b.Key == "" {
		b.Key = alert.Key(sub.name, rt.kind, dl.Items...)
	}
	if _, err := s.pipe.attempt(ctx, rt, b); err != nil {
		return replayKept, "still failing: " + err.Error()
	}
	s.pipe.recordBatch(context.WithoutCancel(ctx), l, sub, rt, dl.Items, stateDone, "")
	s.pipe.m.Notifications.WithLabelValues(rt.kind, telemetry.NotifySent).Inc()
	if n := b.CountUpdates(); n > 0 {
		s.pipe.storyUpdates.WithLabelValues(rt.kind).Add(float64(n))
	}
	return replayDone, ""
}

// eachDead calls fn for every message in the dead-letter stream at the
// time of the call, oldest first.
func eachDead(ctx context.Context, b *bus.Bus, fn func(seq uint64, dl *DeadLetter, decodeErr error) error) error {
	st, err := b.EnsureStream(ctx, event.StreamDead)
	if err != nil {
		return fmt.Errorf("notifier: dead letters: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("notifier: dead letters: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("notifier: dead letters: %w", err)
	}
	err = readUpTo(c, last, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		var dl DeadLetter
		var derr error
		if err := json.Unmarshal(msg.Data(), &dl); err != nil {
			derr = fmt.Errorf("notifier: decode dead letter: %w", err)
		}
		return fn(md.Sequence.Stream, &dl, derr)
	})
	if err != nil {
		return fmt.Errorf("notifier: dead letters: %w", err)
	}
	return nil
}

// readUpTo hands fn the messages c delivers, in order, up to stream
// sequence last (the last one when the reading started: what comes after
// is not waited for), or until fn returns errStopReading.
func readUpTo(c jetstream.Consumer, last uint64, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	for {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > last {
				return nil
			}
			if err := fn(msg, md); errors.Is(err, errStopReading) {
				return nil
			} else if err != nil {
				return err
			}
			if md.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if got == 0 {
			// The rest was removed while we read.
			return nil
		}
	}
}

// errStopReading ends readUpTo early without an error.
var errStopReading = errors.New("notifier: stop reading")
