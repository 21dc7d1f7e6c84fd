package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// ListFeeds writes every feed's state, as the pollers recorded it in KV,
// as a table: `feedmon feeds`.
func ListFeeds(ctx context.Context, b *bus.Bus, w io.Writer) error {
	kv, err := b.KV(ctx, event.BucketFeeds)
	if err != nil {
		return fmt.Errorf("poller: list feeds: %w", err)
	}
	states, err := loadStates(ctx, kv)
	if err != nil {
		return err
	}
	sort.Slice(states, func(i, j int) bool { return states[i].URL < states[j].URL })

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tSTATE\tLAST FETCH\tNEXT DUE\tITEMS\tPUBLISHED\tPOLLER\tERROR")
	for _, st := range states {
		state := st.State
		if st.State == stateError && !st.BackoffUntil.IsZero() {
			state = fmt.Sprintf("error (x%d, backing off until %s)", st.Failures, fmtTime(st.BackoffUntil))
		}
		poller := st.Poller
		if poller == "" {
			poller = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			config.Redact(st.URL), state, fmtTime(st.LastFetch), fmtTime(st.NextDue),
			st.ItemsSeen, strconv.FormatInt(st.Published, 10), poller, oneLine(st.Error))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("poller: list feeds: %w", err)
	}
	return nil
}

func loadStates(ctx context.Context, kv jetstream.KeyValue) ([]feedState, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("poller: list feeds: %w", err)
	}
	defer lister.Stop()
	var out []feedState
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, fmt.Errorf("poller: list feeds: %w", err)
		}
		var st feedState
		if json.Unmarshal(e.Value(), &st) != nil || st.URL == "" {
			continue
		}
		out = append(out, st)
	}
	return out, nil
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
