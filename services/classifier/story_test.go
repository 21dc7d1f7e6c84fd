package classifier

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
)

// TestServiceStoryID: two outlets' reports of one story leave the
// classifier with one story_id, a look-alike with its own.
func TestServiceStoryID(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	story := storyIDs(t, b)
	storyService(t, b)
	items := []event.Item{
		{ID: "i1", FeedURL: "https://a.example/rss", Title: "China suspends rare earth export controls for a year",
			Summary: "The commerce ministry said licensing rules for rare earth magnets announced in October are on hold until November next year.", Published: "2026-03-01T10:00:00Z"},
		{ID: "i2", FeedURL: "https://b.example/rss", Title: "Beijing puts rare earth export curbs on hold",
			Summary: "<p>China&#8217;s commerce ministry will suspend October&#8217;s licensing rules on rare earth magnets until November next year.</p>", Published: "2026-03-01T12:00:00Z"},
		{ID: "i3", FeedURL: "https://c.example/rss", Title: "China adds graphite to export control list",
			Summary: "Exporters of synthetic graphite anodes will need licences from December, the commerce ministry said.", Published: "2026-03-01T12:30:00Z"},
	}
	for _, it := range items {
		publishItem(t, b, it)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.ID] = story(it.ID)
	}
	// Several workers take i1 and i2 at once: either may name the story.
	if s := got["i1"]; (s != "i1" && s != "i2") || got["i2"] != s || got["i3"] != "i3" {
		t.Errorf("story ids %v, want i1 and i2 in one story named after one of them, i3 in its own", got)
	}
}

// storyService starts a classifier service on b; it stops when the test
// ends, or when the returned function is called.
func storyService(t *testing.T, b *bus.Bus, opts ...Option) (stop func()) {
	t.Helper()
	_, stop = startStoryService(t, b, opts...)
	return stop
}

// startStoryService is storyService that also returns the service, for
// tests that must know what a replica's story index holds.
func startStoryService(t *testing.T, b *bus.Bus, opts ...Option) (*Service, func()) {
	t.Helper()
	set, err := topics.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.ClassifierConfig{Topics: set}
	reg := prometheus.NewRegistry()
	svc, err := New(cfg, b, telemetry.NewMetrics(reg, nil, []string{"rare_earths", "defense", "trade"}), reg, bustest.Logger(t), append([]Option{WithStoryWindow(24 * time.Hour)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Run(t, "classifier", svc.Run)
	bustest.Eventually(t, 10*time.Second, func() bool { return svc.Ready() == nil }, "classifier ready")
	return svc, stop
}

// storyIDs collects the story id of every classified item.
func storyIDs(t *testing.T, b *bus.Bus) func(id string) string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	nc, _ := bustest.Client(t, b)
	sub, err := nc.Subscribe(event.ClassifiedAll, func(m *nats.Msg) {
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
	return func(id string) string {
		var s string
		bustest.Eventually(t, 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			s = got[id]
			return s != ""
		}, "item %s classified", id)
		return s
	}
}

func publishItem(t *testing.T, b *bus.Bus, it event.Item) {
	t.Helper()
	data, err := it.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), event.ItemsSubject(it.FeedURL), it.ID, data); err != nil {
		t.Fatal(err)
	}
}

// Two reports of one story and a look-alike, as items; round r makes a new
// story of each (other numbers, so that rounds do not meet).
func storyItems(r int) (a, b, other event.Item) {
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	a = event.Item{ID: fmt.Sprintf("a-%d", r), FeedURL: "https://a.example/rss", Published: at,
		Title:   fmt.Sprintf("China suspends rare earth export controls on %d magnet makers", 100+r),
		Summary: fmt.Sprintf("The commerce ministry said licensing rules for %d rare earth magnet exporters are on hold until November.", 100+r)}
	b = event.Item{ID: fmt.Sprintf("b-%d", r), FeedURL: "https://b.example/rss", Published: at,
		Title:   fmt.Sprintf("Beijing puts rare earth export curbs on %d magnet makers on hold", 100+r),
		Summary: fmt.Sprintf("China's commerce ministry will suspend licensing rules for %d rare earth magnet exporters until November.", 100+r)}
	other = event.Item{ID: fmt.Sprintf("c-%d", r), FeedURL: "https://c.example/rss", Published: at,
		Title:   fmt.Sprintf("China adds graphite to export control list from %d December", 1+r),
		Summary: "Exporters of synthetic graphite anodes will need licences from December, the commerce ministry said."}
	return a, b, other
}

// TestStoriesSurviveRestart: a classifier started after another has
// stopped knows the stories of the items it classified (it reloads them
// from the classified stream).
func TestStoriesSurviveRestart(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	story := storyIDs(t, b)
	a, bb, other := storyItems(0)

	stop := storyService(t, b)
	publishItem(t, b, a)
	idA := story(a.ID)
	stop()

	storyService(t, b)
	publishItem(t, b, bb)
	publishItem(t, b, other)
	if got := story(bb.ID); got != idA {
		t.Errorf("after a restart, another outlet's report got story %q, want %q", got, idA)
	}
	if got := story(other.ID); got == idA {
		t.Errorf("the look-alike joined story %q", got)
	}
}

// TestStoriesAcrossReplicas: two classifiers share the work; reports of
// one story get one story id whichever replica takes each (rounds run one
// item at a time, so each replica has seen the other's items by the time
// the next report comes).
func TestStoriesAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	story := storyIDs(t, b)
	one, _ := startStoryService(t, b)
	two, _ := startStoryService(t, b)
	for r := range 12 {
		a, bb, other := storyItems(r)
		publishItem(t, b, a)
		idA := story(a.ID)
		// Whichever replica took a, the other learns it from the classified
		// stream; on a loaded machine that can take longer than the test's
		// own subscription, so wait for both before the next report.
		bustest.Eventually(t, 10*time.Second, func() bool {
			return one.stories.Known(a.ID) && two.stories.Known(a.ID)
		}, "round %d: both replicas know %s", r, a.ID)
		publishItem(t, b, bb)
		if got := story(bb.ID); got != idA {
			t.Fatalf("round %d: the second report got story %q, want %q", r, got, idA)
		}
		publishItem(t, b, other)
		if got := story(other.ID); got == idA {
			t.Fatalf("round %d: the look-alike joined story %q", r, got)
		}
	}
}

// TestStoriesLongHistory: of a classified history longer than the index
// holds, a restarted classifier keeps the latest items (and their story
// ids) and lets the oldest go.
func TestStoriesLongHistory(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx := context.Background()
	const rounds = 14
	for r := range rounds {
		a, _, _ := storyItems(r)
		a.Topics = []string{"rare_earths"}
		a.StoryID = fmt.Sprintf("story-%d", r)
		data, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, event.ClassifiedSubject("rare_earths"), event.ClassifiedMsgID(a.ID, "rare_earths"), data); err != nil {
			t.Fatal(err)
		}
	}
	story := storyIDs(t, b)
	storyService(t, b, WithStoryMaxEntries(4))
	_, latest, _ := storyItems(rounds - 1)
	publishItem(t, b, latest)
	if got, want := story(latest.ID), fmt.Sprintf("story-%d", rounds-1); got != want {
		t.Errorf("a report of the latest story got story %q, want %q", got, want)
	}
	_, oldest, _ := storyItems(0)
	publishItem(t, b, oldest)
	if got := story(oldest.ID); got != oldest.ID {
		t.Errorf("a report of a story past the index's size got story %q, want a new one", got)
	}
}
