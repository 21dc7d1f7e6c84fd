package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/services/notifier"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// cmdReplay sends one subscriber the classified items of a window.
//
// Who sends (see services/notifier/replay.go): a running notifier, asked
// over NATS, with its own config and secrets; this process only when no
// notifier answers or the one that does has no such subscriber, and only
// if this config has every value the receivers need. -dry-run is computed
// here, reading the stream and the ledger without writing.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The subscriber's topics and filters are read first without the
	// receivers' secrets, which may live only with the notifier.
	f := newFlags("replay", stderr, false, config.Classifier)
	name := f.fs.String("subscriber", "", "the subscriber to send to (required)")
	since := f.fs.Duration("since", 0, "only items classified in the last DUR (default: all the stream keeps)")
	until := f.fs.String("until", "", "only items classified up to this time, RFC 3339 (default: now)")
	dry := f.fs.Bool("dry-run", false, "list what would be sent and send nothing")
	if err := f.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return &usageError{msg: "replay: -subscriber is required"}
	}
	if *since < 0 {
		return &usageError{msg: fmt.Sprintf("replay: -since: must not be negative, got %s", *since)}
	}
	req := notifier.ReplayRequest{Subscriber: *name, DryRun: *dry}
	if *since > 0 {
		req.Since = time.Now().Add(-*since)
	}
	if *until != "" {
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("replay: -until: want an RFC 3339 time such as 2026-11-27T10:00:00Z, got %q", *until)}
		}
		req.Until = t
		if !req.Since.IsZero() && req.Since.After(t) {
			return &usageError{msg: "replay: -since reaches back to after -until: the window is empty"}
		}
	}

	cfg, err := f.load()
	if err != nil {
		return err
	}
	// Can this process send itself? Only if the config is complete for
	// the notifier; unset ${NAME}s are not an error here, just a reason to
	// leave the sending to the notifier.
	f.services = []string{config.Notifier}
	full, ferr := f.load()
	cantSend := ""
	switch {
	case ferr == nil:
		cfg = full
	case onlyUnset(ferr):
		cantSend = strings.ReplaceAll(ferr.Error(), "\n", "; ")
		full = nil
	default:
		return ferr
	}
	if !hasSubscriber(cfg, *name) {
		return &config.Error{Key: "-subscriber", Msg: fmt.Sprintf("no subscriber %q in %s (subscribers: %s)", *name, configName(cfg), subscriberNames(cfg))}
	}

	b, err := connect(cfg, stderr)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	print := func(ln notifier.ReplayLine) { printReplayLine(stdout, ln) }
	var rep notifier.ReplayReport
	if *dry {
		rep, err = notifier.Replay(ctx, b, cfg.NotifierConfig(), req, print)
	} else {
		rep, err = notifier.RequestReplay(ctx, b, req, print)
		if errors.Is(err, notifier.ErrNoNotifier) || errors.Is(err, notifier.ErrUnknownSubscriber) {
			if full == nil {
				hint := "start the notifier"
				if errors.Is(err, notifier.ErrUnknownSubscriber) {
					hint = "reload the notifier (SIGHUP) with a config that has it"
				}
				return fmt.Errorf("replay: %w; %s, or give this command the receivers' settings to send itself (%s)", err, hint, cantSend)
			}
			fmt.Fprintf(stderr, "feedmon: replay: %v; sending from this process\n", err)
			rep, err = notifier.Replay(ctx, b, full.NotifierConfig(), req, print)
		}
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	printReplaySummary(stdout, rep)
	if rep.Failed > 0 {
		fmt.Fprintf(stderr, "feedmon: replay: %d deliveries failed and were dead-lettered (feedmon dlq list)\n", rep.Failed)
		return &exitError{code: exitFail}
	}
	return nil
}

// printReplayLine writes one delivery: result, receiver, published,
// title, link, item id.
func printReplayLine(w io.Writer, ln notifier.ReplayLine) {
	res := ln.Result
	if ln.UpdateOf != "" {
		res += " (update)"
	}
	published := ln.Published
	if published == "" {
		published = "-"
	}
	fmt.Fprintf(w, "%-26s %-8s %-20s %q %s id=%s", res, ln.Receiver, published, alert.Sanitize(ln.Title), alert.Sanitize(ln.Link), alert.Sanitize(ln.ItemID))
	if ln.Detail != "" {
		fmt.Fprintf(w, " (%s)", alert.Sanitize(ln.Detail))
	}
	fmt.Fprintln(w)
}

func printReplaySummary(w io.Writer, rep notifier.ReplayReport) {
	verb := "sent"
	if rep.DryRun {
		verb = "would be sent"
	}
	fmt.Fprintf(w, "%d %s, %d skipped (already delivered), %d failed", rep.Sent, verb, rep.Skipped, rep.Failed)
	if rep.Held > 0 {
		fmt.Fprintf(w, ", %d held for the digest, quiet hours or a later retry", rep.Held)
	}
	fmt.Fprintf(w, " (deliveries to %s: %d items of %d messages read", rep.Subscriber, rep.Items, rep.Read)
	if rep.By != "" && !rep.DryRun {
		fmt.Fprintf(w, "; sent by the %s", rep.By)
	}
	fmt.Fprintln(w, ")")
}

// onlyUnset reports whether every error in err is an unset ${NAME}.
func onlyUnset(err error) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *config.Error
		if !errors.As(e, &ce) || !ce.Unset() {
			return false
		}
	}
	return len(errs) > 0
}

func hasSubscriber(cfg *config.Config, name string) bool {
	for _, s := range cfg.Subscribers {
		if s.Name == name {
			return true
		}
	}
	return false
}

func subscriberNames(cfg *config.Config) string {
	if len(cfg.Subscribers) == 0 {
		return "none"
	}
	names := make([]string, len(cfg.Subscribers))
	for i, s := range cfg.Subscribers {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "the built-in defaults"
	}
	return cfg.Path
}
