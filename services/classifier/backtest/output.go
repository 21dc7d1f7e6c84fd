package backtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/feedmon/feedmon/services/classifier"
)

// output writes a report: the changed items as they are found, the
// counts once the window is read.
type output interface {
	change(*Change) error
	finish(*Report) error
	close()
}

// newOutput returns the output opts ask for; rules names the topics of
// the rules backtested.
func newOutput(w io.Writer, opts Options, rules []string) (output, error) {
	if opts.JSON {
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		return &jsonOutput{w: bw, enc: enc, explain: opts.Explain}, nil
	}
	// The table comes first and is known last: the changed items wait in
	// a temporary file, so that memory does not grow with them.
	spool, err := os.CreateTemp("", "feedmon-backtest-*.txt")
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	return &textOutput{w: w, spool: spool, sw: bufio.NewWriterSize(spool, 64<<10), opts: opts, rules: rules}, nil
}

// jsonOutput writes one JSON line per changed item, then the summary.
type jsonOutput struct {
	w       *bufio.Writer
	enc     *json.Encoder
	explain bool
}

type changeJSON struct {
	ID        string                    `json:"id"`
	Title     string                    `json:"title"`
	Link      string                    `json:"link"`
	FeedURL   string                    `json:"feed_url"`
	Published string                    `json:"published"`
	Before    []string                  `json:"before"`
	After     []string                  `json:"after"`
	Matches   map[string][]string       `json:"matches"`
	Explain   []classifier.TopicExplain `json:"explain,omitempty"`
}

type summaryJSON struct {
	Summary map[string]*Counts `json:"summary"`
	Items   int                `json:"items"`
}

func (o *jsonOutput) change(ch *Change) error {
	it := ch.Item
	rec := changeJSON{ID: it.ID, Title: it.Title, Link: it.Link, FeedURL: it.FeedURL, Published: it.Published,
		Before: ch.Before, After: ch.After, Matches: ch.Result.Matches}
	if rec.Matches == nil {
		rec.Matches = map[string][]string{}
	}
	if o.explain {
		rec.Explain = ch.Result.Explain
	}
	if err := o.enc.Encode(rec); err != nil {
		return fmt.Errorf("backtest: write: %w", err)
	}
	return nil
}

func (o *jsonOutput) finish(r *Report) error {
	if err := o.enc.Encode(summaryJSON{Summary: r.Topics, Items: r.Items}); err != nil {
		return fmt.Errorf("backtest: write: %w", err)
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("backtest: write: %w", err)
	}
	return nil
}

func (o *jsonOutput) close() {}

// textOutput writes a header, the table of counts, then the changed items.
type textOutput struct {
	w     io.Writer
	spool *os.File
	sw    *bufio.Writer
	opts  Options
	rules []string
}

func (o *textOutput) change(ch *Change) error {
	w := o.sw
	it := ch.Item
	title := it.Title
	if title == "" {
		title = "(no title)"
	}
	fmt.Fprintf(w, "\n%s\n", title)
	fmt.Fprintf(w, "  link:   %s\n", it.Link)
	fmt.Fprintf(w, "  feed:   %s\n", it.FeedURL)
	fmt.Fprintf(w, "  topics: %s → %s\n", topicList(ch.Before), topicList(ch.After))
	if o.opts.Explain {
		o.explain(ch)
	}
	return nil
}

// explain writes, for each topic the item had or has, why the rules
// decide as they do.
func (o *textOutput) explain(ch *Change) {
	w := o.sw
	var topics []string
	for _, t := range classifier.TopicOrder(append(slices.Clone(ch.Before), ch.After...)) {
		if o.opts.Topic == "" || t == o.opts.Topic {
			topics = append(topics, t)
		}
	}
	for _, t := range topics {
		i := slices.IndexFunc(ch.Result.Explain, func(e classifier.TopicExplain) bool { return e.Topic == t })
		switch {
		case i >= 0:
		case slices.Contains(o.rules, t):
			fmt.Fprintf(w, "  %s: not matched, no term of it in the item\n", t)
			continue
		default:
			fmt.Fprintf(w, "  %s: not in the rules backtested\n", t)
			continue
		}
		e := &ch.Result.Explain[i]
		verdict := "not matched"
		if e.Matched {
			verdict = "matched"
		}
		fmt.Fprintf(w, "  %s: %s, score %g (threshold %g)\n", t, verdict, e.Score, e.Threshold)
		for _, f := range e.Fired {
			where := ""
			if f.InTitle {
				where = " in title"
			}
			fmt.Fprintf(w, "    fired      %s%q as %q%s: %+g\n", groupPrefix(f.Group), f.Term, f.Text, where, f.Weight)
		}
		for _, c := range e.Cancelled {
			fmt.Fprintf(w, "    cancelled  %q as %q by negative %q (%q)\n", c.Term, c.Text, c.Negative, c.NegText)
		}
		for _, u := range e.Unmet {
			fmt.Fprintf(w, "    unmet      %s%q as %q: requires %s\n", groupPrefix(u.Group), u.Term, u.Text, strings.Join(u.Requires, " or "))
		}
	}
}

func groupPrefix(g string) string {
	if g == "" {
		return ""
	}
	return g + ": "
}

func topicList(ts []string) string {
	if len(ts) == 0 {
		return "(none)"
	}
	return strings.Join(ts, ", ")
}

func (o *textOutput) finish(r *Report) error {
	w := bufio.NewWriter(o.w)
	src := o.opts.Source
	if src == "" {
		src = "the config's topics"
	}
	window := "every item FEEDMON_ITEMS keeps"
	if !r.From.IsZero() {
		window = fmt.Sprintf("items stored since %s (last %s)", r.From.UTC().Format(time.RFC3339), o.opts.Since)
	}
	fmt.Fprintf(w, "backtest of %s on %s: %d items read, %d changed\n\n", src, window, r.Items, r.Changed)
	names := r.TopicOrder()
	width := len("topic")
	for _, n := range names {
		width = max(width, len(n))
	}
	fmt.Fprintf(w, "%-*s  %7s  %7s  %7s  %7s\n", width, "topic", "before", "after", "added", "removed")
	for _, n := range names {
		c := r.Topics[n]
		fmt.Fprintf(w, "%-*s  %7d  %7d  %7d  %7d\n", width, n, c.Before, c.After, c.Added, c.Removed)
	}
	if err := o.sw.Flush(); err != nil {
		return fmt.Errorf("backtest: spool: %w", err)
	}
	if _, err := o.spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backtest: spool: %w", err)
	}
	if _, err := io.Copy(w, o.spool); err != nil {
		return fmt.Errorf("backtest: write: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("backtest: write: %w", err)
	}
	return nil
}

func (o *textOutput) close() {
	o.spool.Close()
	os.Remove(o.spool.Name())
}
