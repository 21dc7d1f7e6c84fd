package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/poller/websub"
)

// ListFeeds writes every feed's state, as the pollers recorded it in KV,
// as a table, then the hosts slowed down by a rate-limit answer and why:
// `feedmon feeds`.
func ListFeeds(ctx context.Context, b *bus.Bus, w io.Writer) error {
	return listFeeds(ctx, b, w, time.Now())
}

func listFeeds(ctx context.Context, b *bus.Bus, w io.Writer, now time.Time) error {
	kv, err := b.KV(ctx, event.BucketFeeds)
	if err != nil {
		return fmt.Errorf("poller: list feeds: %w", err)
	}
	states, slow, err := loadStates(ctx, kv, now)
	if err != nil {
		return err
	}
	sort.Slice(states, func(i, j int) bool { return states[i].URL < states[j].URL })
	sort.Slice(slow, func(i, j int) bool { return slow[i].Host < slow[j].Host })
	slowed := make(map[string]bool, len(slow))
	for _, sd := range slow {
		slowed[sd.Host] = true
	}
	wkv, err := b.KV(ctx, event.BucketWebSub)
	if err != nil {
		return fmt.Errorf("poller: list feeds: %w", err)
	}
	subs, err := websub.LoadAll(ctx, wkv)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tSTATE\tLAST FETCH\tNEXT DUE\tITEMS\tPUBLISHED\tPOLLER\tPUSH\tERROR")
	for _, st := range states {
		state := st.State
		if st.State == stateError && !st.BackoffUntil.IsZero() {
			state = fmt.Sprintf("error (x%d, backing off until %s)", st.Failures, fmtTime(st.BackoffUntil))
		}
		if slowed[hostOf(st.URL)] {
			state += ", host slowed"
		}
		poller := st.Poller
		if poller == "" {
			poller = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			config.Redact(st.URL), state, fmtTime(st.LastFetch), fmtTime(st.NextDue),
			st.ItemsSeen, strconv.FormatInt(st.Published, 10), poller,
			oneLine(config.Redact(websub.Describe(subs[st.URL], now))), oneLine(st.Error))
	}
	if len(slow) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "SLOWED HOST\tPHASE\tSINCE\tPAUSED UNTIL\tSLOWED UNTIL\tFULL PACE AT\tWHY")
		for _, sd := range slow {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sd.Host, sd.phase(now), fmtTime(sd.Since),
				fmtTime(sd.PauseUntil), fmtTime(sd.HoldUntil), fmtTime(sd.Until), sd.why())
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("poller: list feeds: %w", err)
	}
	return nil
}

// loadStates reads the feeds bucket: the feeds' states, and the host
// slow-downs still running at now.
func loadStates(ctx context.Context, kv jetstream.KeyValue, now time.Time) ([]feedState, []slowdown, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("poller: list feeds: %w", err)
	}
	defer lister.Stop()
	var (
		out  []feedState
		slow []slowdown
	)
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, nil, fmt.Errorf("poller: list feeds: %w", err)
		}
		if strings.HasPrefix(key, slowdownPrefix) {
			var sd slowdown
			// A record outlives its slow-down when no feed of the host
			// was polled after the end (the feeds were removed).
			if json.Unmarshal(e.Value(), &sd) == nil && sd.Host != "" && now.Before(sd.Until) {
				slow = append(slow, sd)
			}
			continue
		}
		var st feedState
		if json.Unmarshal(e.Value(), &st) != nil || st.URL == "" {
			continue
		}
		out = append(out, st)
	}
	return out, slow, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func oneLine(s string) string {
	b := []rune(s)
	for i, r := range b {
		if r == '\n' || r == '\t' || r == '\r' {
			b[i] = ' '
		}
	}
	if len(b) > 120 {
		b = append(b[:119], '…')
	}
	return string(b)
}
