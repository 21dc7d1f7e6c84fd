// Package backtest is `feedmon backtest`: it classifies the items a
// running deployment keeps in FEEDMON_ITEMS with other topic rules and
// compares the result with the topics each item went out with, as
// FEEDMON_CLASSIFIED records them, so that an analyst sees what a change
// of rules would have added and dropped before it goes live. It changes
// nothing in NATS (see scan).
package backtest

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/classifier"
)

// Options configure Run.
type Options struct {
	// Since limits the backtest to the items stored in the last Since;
	// 0 reads every item the stream keeps.
	Since time.Duration
	// Topic limits the table and the changed items to one topic; "" is
	// every topic.
	Topic string
	// JSON writes JSON lines instead of text.
	JSON bool
	// Explain adds to each changed item which terms and rules fired.
	Explain bool
	// Source says where the rules come from, for the text output's
	// first line.
	Source string
	// Now is the clock the window is measured on; nil is time.Now.
	Now func() time.Time
}

// Counts are one topic's numbers: the items of the window that had it
// (Before), that have it with the new rules (After), and the difference.
type Counts struct {
	Before  int `json:"before"`
	After   int `json:"after"`
	Added   int `json:"added"`
	Removed int `json:"removed"`
}

// Report is what a backtest found.
type Report struct {
	// Items is the number of items read.
	Items int
	// Changed is the number of items whose topics changed (the topic's,
	// with Options.Topic).
	Changed int
	// Skipped counts messages of FEEDMON_ITEMS that are not items (the
	// classifier drops them too).
	Skipped int
	// Topics holds the counts of every topic that either the rules or the
	// records name (only Options.Topic's with it).
	Topics map[string]*Counts
	// From is the start of the window; zero when it is all retained.
	From time.Time
	// ClassifiedSince is set when FEEDMON_CLASSIFIED has dropped records
	// older than it (its retention) while the window reaches back beyond
	// it: items of the window stored before then count as never
	// classified.
	ClassifiedSince time.Time
}

// TopicOrder returns the report's topics in output order.
func (r *Report) TopicOrder() []string {
	names := make([]string, 0, len(r.Topics))
	for n := range r.Topics {
		names = append(names, n)
	}
	return classifier.TopicOrder(names)
}

// Change is one item whose topics changed.
type Change struct {
	Item *event.Item
	// Before and After are the item's topics, in output order; never nil.
	Before, After []string
	Result        classifier.Result
}

// Run backtests the rules of c on the items b's deployment keeps, writing
// the report to w as text or JSON lines (opts.JSON).
func Run(ctx context.Context, b *bus.Bus, c *classifier.Classifier, w io.Writer, opts Options) (*Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	items, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		return nil, err
	}
	classified, err := b.Stream(ctx, event.StreamClassified)
	if err != nil {
		return nil, err
	}
	rep := &Report{Topics: map[string]*Counts{}}
	if opts.Since > 0 {
		rep.From = now().Add(-opts.Since)
	}
	for _, t := range c.Topics() {
		if opts.Topic == "" || t == opts.Topic {
			rep.Topics[t] = &Counts{}
		}
	}
	if opts.Topic != "" && rep.Topics[opts.Topic] == nil {
		rep.Topics[opts.Topic] = &Counts{} // a topic the rules drop
	}
	cinfo, err := classified.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	before, err := readClassified(ctx, classified, rep.From)
	if err != nil {
		return nil, err
	}

	out, err := newOutput(w, opts, c.Topics())
	if err != nil {
		return nil, err
	}
	defer out.close()
	pipe := startPipeline(c, opts.Explain, runtime.GOMAXPROCS(0), func(j *job) error {
		if j.it == nil {
			rep.Skipped++
			return nil
		}
		rep.Items++
		was := before.byID[j.it.ID]
		if !rep.count(was, j.res.Topics, opts.Topic) {
			return nil
		}
		rep.Changed++
		return out.change(&Change{Item: j.it, Before: classifier.TopicOrder(was), After: j.res.Topics, Result: j.res})
	})
	first := true
	err = scan(ctx, items, rep.From, false, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		if first {
			first = false
			if cinfo.State.FirstSeq > 1 && md.Timestamp.Before(cinfo.State.FirstTime) {
				rep.ClassifiedSince = cinfo.State.FirstTime
			}
		}
		return pipe.add(msg.Data())
	})
	if perr := pipe.close(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	if err := out.finish(rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// count adds one item to the counts and reports whether its topics
// changed: any of them, or only's when only is set.
func (r *Report) count(before, after []string, only string) bool {
	changed := false
	for _, t := range after {
		if only != "" && t != only {
			continue
		}
		n := r.counts(t)
		n.After++
		if !slices.Contains(before, t) {
			n.Added++
			changed = true
		}
	}
	for _, t := range before {
		if only != "" && t != only {
			continue
		}
		n := r.counts(t)
		n.Before++
		if !slices.Contains(after, t) {
			n.Removed++
			changed = true
		}
	}
	return changed
}

func (r *Report) counts(topic string) *Counts {
	n := r.Topics[topic]
	if n == nil {
		n = &Counts{}
		r.Topics[topic] = n
	}
	return n
}
