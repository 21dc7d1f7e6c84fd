package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/topics"
	"github.com/feedmon/feedmon/services/classifier"
	"github.com/feedmon/feedmon/services/classifier/backtest"
)

// cmdBacktest is `feedmon backtest`: the items a running deployment keeps,
// classified with other rules (-topics) and compared with the topics they
// went out with. It reads and changes nothing in NATS.
func cmdBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("backtest", stderr, false, config.Classifier)
	topicsPath := f.fs.String("topics", "", "YAML file with a top-level topics: map, in the config's format (default: the config's topics)")
	since := f.fs.Duration("since", 0, "only the items stored in this last duration, e.g. 168h (default: all that FEEDMON_ITEMS keeps)")
	topic := f.fs.String("topic", "", "only this topic, in the table and the changed items")
	asJSON := f.fs.Bool("json", false, "one JSON line per changed item, then a summary line")
	explain := f.fs.Bool("explain", false, "say which terms and rules fired for each changed item")
	if err := f.parse(args); err != nil {
		return err
	}
	if *since < 0 {
		return &usageError{msg: "backtest: -since: must not be negative"}
	}
	// Everything that makes exit status 2 is checked before connecting.
	cfg, err := f.load()
	if err != nil {
		return err
	}
	set, source := cfg.TopicSet, "the config's topics"
	if *topicsPath != "" {
		if set, err = config.LoadTopics(*topicsPath, os.LookupEnv); err != nil {
			return err
		}
		source = *topicsPath
	}
	c, err := classifier.Compile(set)
	if err != nil {
		return &config.Error{Key: "topics", Msg: err.Error()}
	}
	if *topic != "" {
		known := append(c.Topics(), names(cfg.TopicSet)...)
		if !slices.Contains(known, *topic) {
			return &usageError{msg: fmt.Sprintf("backtest: -topic: unknown topic %q (known: %s)", *topic, strings.Join(classifier.TopicOrder(known), ", "))}
		}
	}

	b, err := connect(cfg, stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := backtest.Run(ctx, b, c, stdout, backtest.Options{
		Since: *since, Topic: *topic, JSON: *asJSON, Explain: *explain, Source: source,
	})
	if err != nil {
		return err
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(stderr, "feedmon: backtest: %d message(s) of the items stream were not items and were skipped\n", rep.Skipped)
	}
	if !rep.ClassifiedSince.IsZero() {
		fmt.Fprintf(stderr, "feedmon: backtest: FEEDMON_CLASSIFIED keeps records since %s only: older items count as never classified\n",
			rep.ClassifiedSince.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

// names returns the enabled topics of set.
func names(set topics.Set) []string {
	var out []string
	for n, t := range set {
		if t != nil && !t.Disabled {
			out = append(out, n)
		}
	}
	return out
}
