package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
)

// Stage is one leg of fetch → delivery, over every delivered item.
type Stage struct {
	Name          string
	P50, P99, Max time.Duration
	Items         int
}

// stages splits each delivered item's fetch → delivery time at the
// moments the items stream and the classified stream stored it (each
// message's stored time, on the process's own clock): fetch → stored
// (the poller), stored → classified (the classifier), classified →
// delivered (the notifier and the webhook). Read after the run, so it
// costs the run nothing.
func stages(ctx context.Context, b *bus.Bus, arrived map[string]time.Time) ([]Stage, error) {
	at := make(map[string]*itemTimes, len(arrived))
	err := readStream(ctx, b, event.StreamItems, func(it *stageItem, stored time.Time) {
		if _, ok := arrived[it.ID]; ok {
			at[it.ID] = &itemTimes{fetched: it.fetched(), stored: stored, delivered: arrived[it.ID]}
		}
	})
	if err != nil {
		return nil, err
	}
	err = readStream(ctx, b, event.StreamClassified, func(it *stageItem, stored time.Time) {
		// An item matching several topics is classified once per topic:
		// its first copy counts.
		if t := at[it.ID]; t != nil && t.classified.IsZero() {
			t.classified = stored
		}
	})
	if err != nil {
		return nil, err
	}
	return split(at), nil
}

// itemTimes are the moments one item passed.
type itemTimes struct{ fetched, stored, classified, delivered time.Time }

// split gives the percentiles of each leg over the items with every
// moment known.
func split(at map[string]*itemTimes) []Stage {
	var poll, classify, deliver []time.Duration
	for _, t := range at {
		if t.fetched.IsZero() || t.stored.IsZero() || t.classified.IsZero() || t.delivered.IsZero() {
			continue
		}
		poll = append(poll, t.stored.Sub(t.fetched))
		classify = append(classify, t.classified.Sub(t.stored))
		deliver = append(deliver, t.delivered.Sub(t.classified))
	}
	out := make([]Stage, 0, 3)
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"fetch→stored", poll}, {"stored→classified", classify}, {"classified→delivered", deliver}} {
		slices.Sort(s.d)
		st := Stage{Name: s.name, Items: len(s.d)}
		st.P50, st.P99, st.Max = percentiles(s.d)
		out = append(out, st)
	}
	return out
}

// stageItem is what stages reads of a stored item.
type stageItem struct {
	ID        string `json:"id"`
	FetchedAt string `json:"fetched_at"`
}

func (it *stageItem) fetched() time.Time {
	return (&event.Item{FetchedAt: it.FetchedAt}).FetchedTime()
}

// readStream hands fn every message in stream, in order, with the time it
// was stored.
func readStream(ctx context.Context, b *bus.Bus, stream string, fn func(*stageItem, time.Time)) error {
	st, err := b.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("bench: stages: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("bench: stages: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("bench: stages: %w", err)
	}
	msgs, err := c.Messages()
	if err != nil {
		return fmt.Errorf("bench: stages: %w", err)
	}
	defer msgs.Stop()
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("bench: stages: %s: %w", stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("bench: stages: %w", err)
		}
		var it stageItem
		if err := json.Unmarshal(msg.Data(), &it); err == nil {
			fn(&it, md.Timestamp)
		}
		if md.Sequence.Stream >= info.State.LastSeq {
			return nil
		}
	}
}

func printStages(w io.Writer, ss []Stage) {
	for _, s := range ss {
		fmt.Fprintf(w, "  %-21s p50 %s  p99 %s  max %s\n", s.Name, s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), s.Max.Round(100*time.Microsecond))
	}
}
