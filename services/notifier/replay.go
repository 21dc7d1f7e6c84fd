package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/routing"
)

// Replay: `feedmon replay -subscriber NAME` sends one subscriber the
// classified items of a window of FEEDMON_CLASSIFIED that its topics and
// filters select, through the pipeline every delivery takes (story roles,
// hold, pace, claim in the ledger, attempt, record, dead letters). The
// ledger makes it exactly once: a delivery already done is skipped, and of
// a replay and a notifier that reach the same delivery at once only one
// wins the claim, while the other finds it done.
//
// Who sends. Receivers' secrets (webhook secrets, Slack URLs, SMTP
// passwords) may live only where the notifier runs, so the command first
// asks a running notifier to do the replay (a call on
// event.ReplaySubject, taken by one notifier of the queue group): that
// notifier reads the window, delivers with its own config, secrets and rate
// limiters (shared with the live traffic, so a Slack receiver is not paced
// twice over) and reports each delivery back. Only when no notifier
// answers, or the one that answers has no such subscriber, does the
// command deliver itself, and only if its own config holds everything the
// receivers need (no unset ${NAME}). -dry-run is always computed by the
// command, reading the stream and the ledger without writing.

// ReplayRequest asks for a replay.
type ReplayRequest struct {
	Subscriber string `json:"subscriber"`
	// Since and Until bound the window by the time each message was
	// stored in FEEDMON_CLASSIFIED (when the item was classified); zero:
	// from the oldest kept, up to the newest at the start.
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	DryRun bool      `json:"dry_run,omitempty"`
}

// ReplayLine is the result of one delivery (one item to one receiver).
type ReplayLine struct {
	ItemID    string `json:"item_id"`
	Title     string `json:"title"`
	Link      string `json:"link"`
	Published string `json:"published,omitempty"`
	Receiver  string `json:"receiver"`
	// Result is one of the Replay* results below.
	Result string `json:"result"`
	// UpdateOf is the id of the story's first report when the item goes
	// out as an update of it.
	UpdateOf string `json:"update_of,omitempty"`
	// Detail says why a delivery failed.
	Detail string `json:"detail,omitempty"`
}

// Results of a delivery in a replay.
const (
	ReplaySent       = "sent"
	ReplayWouldSend  = "would send"
	ReplayDelivered  = "already delivered"
	ReplayDeadBefore = "dead-lettered earlier"
	ReplayInFlight   = "being delivered"
	ReplayHeld       = "held"
	ReplayWouldHold  = "would hold"
	ReplayNotMailed  = "update not mailed"
	ReplayFailed     = "failed"
)

// ReplayReport counts what a replay did (or, dry, would do), per delivery.
type ReplayReport struct {
	Subscriber string `json:"subscriber"`
	DryRun     bool   `json:"dry_run,omitempty"`
	// By names who delivered: a notifier ("notifier on HOST") or this
	// process.
	By string `json:"by,omitempty"`
	// Read: messages read in the window; Items: items the subscriber
	// selects among them.
	Read  int `json:"read"`
	Items int `json:"items"`
	// Sent: delivered now (dry: would be). Skipped: delivered before, or
	// dead-lettered before, or being delivered by someone else, or an
	// update its receiver does not send. Held: waiting in the ledger for
	// the subscriber's digest or quiet hours, or for a retry far off
	// (the notifier's flusher and parker send them). Failed:
	// dead-lettered now.
	Sent    int `json:"sent"`
	Skipped int `json:"skipped"`
	Held    int `json:"held"`
	Failed  int `json:"failed"`
}

func (r *ReplayReport) count(result string) {
	switch result {
	case ReplaySent, ReplayWouldSend:
		r.Sent++
	case ReplayHeld, ReplayWouldHold:
		r.Held++
	case ReplayFailed:
		r.Failed++
	default:
		r.Skipped++
	}
}

// ErrUnknownSubscriber: the config has no subscriber of the requested name.
var ErrUnknownSubscriber = errors.New("notifier: no such subscriber")

// ErrNoNotifier: no running notifier took the replay.
var ErrNoNotifier = errors.New("notifier: no notifier answered")

// Replay runs req from this process with cfg: it reads the window and,
// unless req.DryRun, delivers through cfg's receivers. emit gets each
// delivery's line (one goroutine at a time).
func Replay(ctx context.Context, b *bus.Bus, cfg config.NotifierConfig, req ReplayRequest, emit func(ReplayLine), opts ...Option) (ReplayReport, error) {
	s, err := New(cfg, b, nil, nil, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		return ReplayReport{}, err
	}
	l, err := openLedger(ctx, b)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("notifier: replay: %w", err)
	}
	rep, err := s.replay(ctx, l, req, emit)
	rep.By = "this process"
	return rep, err
}

// replay runs req with s's config.
func (s *Service) replay(ctx context.Context, l ledger, req ReplayRequest, emit func(ReplayLine)) (ReplayReport, error) {
	rep := ReplayReport{Subscriber: req.Subscriber, DryRun: req.DryRun}
	sub := s.subscriberNamed(req.Subscriber)
	if sub == nil {
		return rep, fmt.Errorf("%w %q", ErrUnknownSubscriber, req.Subscriber)
	}
	var mu sync.Mutex
	done := func(ln ReplayLine) {
		mu.Lock()
		defer mu.Unlock()
		rep.count(ln.Result)
		if emit != nil {
			emit(ln)
		}
	}

	// Jobs go to workers in the order of the stream; each item's story
	// role is decided before its jobs go, so that the earliest report of
	// a story in the window is the first, as it would have been live.
	jobs := make(chan *job)
	var wg sync.WaitGroup
	for range max(s.notify.Workers, 1) {
		wg.Go(func() {
			for j := range jobs {
				if req.DryRun {
					done(s.dryRun(ctx, l, j))
				} else {
					done(s.replayJob(ctx, l, j))
				}
			}
		})
	}
	dryFirsts := map[string]string{} // story → first report seen in this dry run
	seen := map[string]bool{}
	read, err := readClassified(ctx, s.b, req.Since, req.Until, func(subjTopic string, it *event.Item) error {
		if seen[it.ID] || !selects(sub.filter, it, subjTopic) {
			return nil
		}
		seen[it.ID] = true
		mu.Lock()
		rep.Items++
		mu.Unlock()
		first := ""
		if sub.groupsStories(it) {
			var err error
			if req.DryRun {
				first, err = dryStoryRole(ctx, l, sub, it, dryFirsts)
			} else {
				first, err = s.storyRole(ctx, l, sub, it)
			}
			if err != nil {
				return err
			}
		}
		for _, rt := range sub.receivers {
			select {
			case jobs <- newJob(sub, rt, it, first):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	rep.Read = read
	if err != nil {
		return rep, fmt.Errorf("notifier: replay: %w", err)
	}
	return rep, ctx.Err()
}

// selects reports whether f takes it on any of its topics. The item was
// published once per topic: whichever of its messages comes first in the
// window brings it (the live consumer takes it from one chosen message
// only, which the window may have cut off).
func selects(f *routing.Filter, it *event.Item, subjTopic string) bool {
	for _, t := range routing.Topics(it, subjTopic) {
		if f.Selects(it, t) {
			return true
		}
	}
	return false
}

// replayJob delivers j through the pipeline as the consumer would, waiting
// where the consumer would hand its message back: for a retry or the rate
// limit, and for another sender that holds the delivery (the running
// notifier), until it is over.
func (s *Service) replayJob(ctx context.Context, l ledger, j *job) ReplayLine {
	ln := lineOf(j)
	for {
		o := s.pipe.deliver(ctx, l, j, false)
		o = s.pipe.parkFar(ctx, l, j, o)
		switch o.kind {
		case settled:
			switch o.how {
			case settledSent:
				ln.Result = ReplaySent
			case settledHeld:
				ln.Result = ReplayHeld
			case settledSuppressed:
				ln.Result = ReplayNotMailed
			default:
				ln.Result = ReplayDelivered
				if rec, _, err := l.load(ctx, j.key); err == nil && rec.State == stateDead {
					ln.Result, ln.Detail = ReplayDeadBefore, rec.Error
				}
			}
			return ln
		case dead:
			ln.Result, ln.Detail = ReplayFailed, o.reason
			return ln
		}
		wait := o.delay
		if o.kind == owned {
			// Another sender (the running notifier) is at it: its lease
			// is the bound for a crash, but it is usually done in
			// milliseconds.
			wait = min(wait, ownedPoll)
		}
		if !s.pipe.sleep(ctx, max(wait, 50*time.Millisecond)) {
			ln.Result, ln.Detail = ReplayFailed, "interrupted; run the replay again"
			return ln
		}
	}
}

// ownedPoll is how often a replay looks again at a delivery another
// sender holds.
const ownedPoll = 250 * time.Millisecond

// dryRun says what replayJob would do with j, reading the ledger only.
func (s *Service) dryRun(ctx context.Context, l ledger, j *job) ReplayLine {
	ln := lineOf(j)
	rec, _, err := l.load(ctx, j.key)
	switch {
	case err != nil:
		ln.Result, ln.Detail = ReplayFailed, err.Error()
	case rec.State == stateDone:
		ln.Result = ReplayDelivered
	case rec.State == stateDead:
		ln.Result, ln.Detail = ReplayDeadBefore, rec.Error
	case rec.State != "":
		ln.Result = ReplayInFlight
	case j.suppressed():
		ln.Result = ReplayNotMailed
	case j.held(s.pipe.now()):
		ln.Result = ReplayWouldHold
	default:
		ln.Result = ReplayWouldSend
	}
	return ln
}

// dryStoryRole is storyRole without writing: the story's entry if there
// is one, else the first report met in this dry run.
func dryStoryRole(ctx context.Context, l ledger, sub *subscriber, it *event.Item, firsts map[string]string) (string, error) {
	first, ok := firsts[it.StoryID]
	if !ok {
		var err error
		if first, err = l.storyFirst(ctx, sub.name, it.StoryID); err != nil {
			return "", err
		}
		if first == "" {
			first = it.ID
		}
		firsts[it.StoryID] = first
	}
	if first == it.ID {
		return "", nil
	}
	return first, nil
}

func lineOf(j *job) ReplayLine {
	return ReplayLine{ItemID: j.item.ID, Title: j.item.Title, Link: j.item.Link, Published: j.item.Published, Receiver: j.rt.kind, UpdateOf: j.first}
}

func (s *Service) subscriberNamed(name string) *subscriber {
	for _, sub := range s.subs {
		if sub.name == name {
			return sub
		}
	}
	return nil
}

// readClassified hands fn the items stored in FEEDMON_CLASSIFIED between
// since and until (zero: no bound), oldest first, with the topic of their
// message's subject, and returns how many messages it read. It reads with
// an ordered consumer (ephemeral, nothing acked, nothing left behind) up
// to the newest message at the start, so that items classified meanwhile
// do not keep it going.
func readClassified(ctx context.Context, b *bus.Bus, since, until time.Time, fn func(subjTopic string, it *event.Item) error) (int, error) {
	sctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	st, err := b.Stream(sctx, event.StreamClassified)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // nothing was ever classified
	}
	if err != nil {
		return 0, err
	}
	info, err := st.Info(sctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", event.StreamClassified, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.ClassifiedAll}}
	if !since.IsZero() {
		occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		occ.OptStartTime = &since
	}
	// Should this process die mid-read, the server removes the consumer
	// soon after.
	occ.InactiveThreshold = 30 * time.Second
	c, err := st.OrderedConsumer(ctx, occ)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", event.StreamClassified, err)
	}
	defer func() {
		// Leave nothing behind once done.
		if ci := c.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
			defer cancel()
			_ = st.DeleteConsumer(dctx, ci.Name)
		}
	}()
	read := 0
	err = readUpTo(c, info.State.LastSeq, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !until.IsZero() && md.Timestamp.After(until) {
			return errStopReading
		}
		read++
		it, err := event.Unmarshal(msg.Data())
		if err != nil {
			return nil // the consumer dropped it too
		}
		return fn(strings.TrimPrefix(msg.Subject(), event.ClassifiedPrefix), it)
	})
	return read, err
}

// ---- The call between the command and a running notifier ----

// replayReply is one reply of a notifier to a replay call: first accepted
// (or an error), then a line per delivery, then the report.
type replayReply struct {
	Accepted bool          `json:"accepted,omitempty"`
	By       string        `json:"by,omitempty"`
	Line     *ReplayLine   `json:"line,omitempty"`
	Report   *ReplayReport `json:"report,omitempty"`
	Error    string        `json:"error,omitempty"`
	// Unknown: the notifier has no such subscriber.
	Unknown bool `json:"unknown_subscriber,omitempty"`
}

// replayQueue is the queue group of the notifiers that take replay calls:
// each call goes to one of them.
const replayQueue = "feedmon-notifier"

// RequestReplay has a running notifier run req and reports as it goes:
// emit gets each delivery's line. It fails with ErrNoNotifier when none
// answers (at once when none listens, else within a few seconds, or when
// the one that took it falls silent), and with ErrUnknownSubscriber when
// the notifier that answers has no such subscriber.
func RequestReplay(ctx context.Context, b *bus.Bus, req ReplayRequest, emit func(ReplayLine)) (ReplayReport, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("notifier: replay request: %w", err)
	}
	var rep ReplayReport
	by := ""
	err = b.Call(ctx, event.ReplaySubject, data, bus.CallOptions{}, func(raw []byte) (bool, error) {
		var r replayReply
		if err := json.Unmarshal(raw, &r); err != nil {
			return false, fmt.Errorf("notifier: replay: undecodable reply: %w", err)
		}
		switch {
		case r.Unknown:
			return false, fmt.Errorf("%w %q in the config of the %s", ErrUnknownSubscriber, req.Subscriber, r.By)
		case r.Error != "":
			return false, fmt.Errorf("notifier: replay by the %s: %s", by, r.Error)
		case r.Accepted:
			by = r.By
		case r.Line != nil:
			if emit != nil {
				emit(*r.Line)
			}
		case r.Report != nil:
			rep = *r.Report
			return true, nil
		}
		return false, nil
	})
	switch {
	case errors.Is(err, bus.ErrNoResponders):
		return rep, fmt.Errorf("%w: no notifier listens on %s", ErrNoNotifier, event.ReplaySubject)
	case errors.Is(err, bus.ErrCallSilent) && by == "":
		return rep, fmt.Errorf("%w on %s: %w", ErrNoNotifier, event.ReplaySubject, err)
	case errors.Is(err, bus.ErrCallSilent):
		return rep, fmt.Errorf("notifier: replay: the %s stopped answering (run the replay again: what was delivered is skipped): %w", by, err)
	}
	return rep, err
}

// serveReplays takes replay calls until ctx ends.
func (s *Service) serveReplays(ctx context.Context, l ledger) {
	host, _ := os.Hostname()
	by := fmt.Sprintf("notifier on %s (pid %d)", host, os.Getpid())
	err := bus.Retry(ctx, s.log, "replay service", func(context.Context) error {
		return s.b.Serve(ctx, event.ReplaySubject, replayQueue, &s.serving, func(ctx context.Context, data []byte, reply func([]byte) error) {
			s.serveReplay(ctx, l, by, data, reply)
		})
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("replay service stopped", "err", err)
	}
}

func (s *Service) serveReplay(ctx context.Context, l ledger, by string, data []byte, reply func([]byte) error) {
	send := func(r replayReply) {
		out, err := json.Marshal(r)
		if err == nil {
			err = reply(out)
		}
		if err != nil {
			s.log.Warn("replay: could not reply", "err", err)
		}
	}
	var req ReplayRequest
	if err := json.Unmarshal(data, &req); err != nil {
		send(replayReply{By: by, Error: "undecodable request: " + err.Error()})
		return
	}
	if s.subscriberNamed(req.Subscriber) == nil {
		send(replayReply{By: by, Unknown: true})
		return
	}
	send(replayReply{Accepted: true, By: by})
	s.log.Info("replay started", "subscriber", req.Subscriber, "since", req.Since, "until", req.Until)
	rep, err := s.replay(ctx, l, req, func(ln ReplayLine) { send(replayReply{Line: &ln}) })
	rep.By = by
	s.log.Info("replay done", "subscriber", req.Subscriber, "sent", rep.Sent, "skipped", rep.Skipped, "held", rep.Held, "failed", rep.Failed, "err", err)
	if err != nil {
		send(replayReply{By: by, Error: err.Error()})
		return
	}
	send(replayReply{Report: &rep})
}
