package classifier

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/topics"
)

// TestServiceStoryID: two outlets' reports of one story leave the
// classifier with one story_id, a look-alike with its own.
func TestServiceStoryID(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	set, err := topics.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.TopicSet = set
	reg := prometheus.NewRegistry()
	svc, err := NewService(cfg, b, telemetry.NewMetrics(reg, nil, []string{"rare_earths", "defense", "trade"}), reg, bustest.Logger(t), WithStoryWindow(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string]string{} // item id → story id
	sub, err := b.NC.Subscribe(event.ClassifiedAll, func(m *nats.Msg) {
		it, err := event.Unmarshal(m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		got[it.ID] = it.StoryID
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	items := []event.Item{
		{ID: "i1", FeedURL: "https://a.example/rss", Title: "China suspends rare earth export controls for a year",
			Summary: "The commerce ministry said licensing rules for rare earth magnets announced in October are on hold until November next year.", Published: "2026-03-01T10:00:00Z"},
		{ID: "i2", FeedURL: "https://b.example/rss", Title: "Beijing puts rare earth export curbs on hold",
			Summary: "<p>China&#8217;s commerce ministry will suspend October&#8217;s licensing rules on rare earth magnets until November next year.</p>", Published: "2026-03-01T12:00:00Z"},
		{ID: "i3", FeedURL: "https://c.example/rss", Title: "China adds graphite to export control list",
			Summary: "Exporters of synthetic graphite anodes will need licences from December, the commerce ministry said.", Published: "2026-03-01T12:30:00Z"},
	}
	for _, it := range items {
		data, err := it.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, event.ItemsSubject(it.FeedURL), it.ID, data); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(items)
	}, "classified items")
	mu.Lock()
	defer mu.Unlock()
	// Eight workers take i1 and i2 at once: either may name the story.
	if s := got["i1"]; (s != "i1" && s != "i2") || got["i2"] != s || got["i3"] != "i3" {
		t.Errorf("story ids %v, want i1 and i2 in one story named after one of them, i3 in its own", got)
	}
}
