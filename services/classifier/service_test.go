package classifier

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
)

// TestItemAckedOnceStored: while the classified stream cannot store an
// item's publication the item stays unacknowledged and comes back; once
// the stream is there it is stored once and acknowledged.
func TestItemAckedOnceStored(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	_, js := bustest.Client(t, b)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, event.StreamClassified); err != nil {
		t.Fatal(err)
	}
	it := event.Item{ID: "steel-1", FeedURL: "https://a.example/rss", Title: "Washington raises tariffs on steel imports",
		Summary: "The anti-dumping duties start in May.", Published: "2026-03-01T10:00:00Z"}
	publishItem(t, b, it)

	set, err := topics.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := telemetry.NewMetrics(reg, nil, []string{"rare_earths", "defense", "trade"})
	// Without stories: the story follower would create the stream.
	svc, err := New(config.ClassifierConfig{Topics: set}, b, m, reg, bustest.Logger(t), WithoutStories())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "classifier", svc.Run)

	bustest.Eventually(t, 20*time.Second, func() bool {
		return testutil.ToFloat64(svc.errors.WithLabelValues("publish")) >= 1
	}, "publication failed")
	c, err := js.Consumer(ctx, event.StreamItems, event.ConsumerClassifier)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.AckFloor.Stream != 0 {
		t.Fatalf("item acknowledged (ack floor %d) although its publication failed", ci.AckFloor.Stream)
	}
	if got := testutil.ToFloat64(m.ItemsClassified.WithLabelValues("trade")); got != 0 {
		t.Fatalf("counted %v classified items before any was stored", got)
	}

	if _, err := b.EnsureStream(ctx, event.StreamClassified); err != nil {
		t.Fatal(err)
	}
	bustest.WaitConsumed(t, b, event.StreamItems, event.ConsumerClassifier, 30*time.Second)
	st, err := js.Stream(ctx, event.StreamClassified)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("classified stream holds %d messages, want 1", info.State.Msgs)
	}
	msg, err := st.GetLastMsgForSubject(ctx, event.ClassifiedSubject("trade"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := event.Unmarshal(msg.Data); got == nil || got.ID != it.ID {
		t.Errorf("classified message %s, want item %s", msg.Data, it.ID)
	}
	if got := testutil.ToFloat64(m.ItemsClassified.WithLabelValues("trade")); got != 1 {
		t.Errorf("feedmon_items_classified_total{topic=trade} = %v, want 1", got)
	}
}
