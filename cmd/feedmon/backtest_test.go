package main

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
)

// A bad topics file is refused with exit 2 and the messages `feedmon
// check` gives for the same topics in a config, before any connection.
func TestBacktestBadTopicsExit2LikeCheck(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, yaml, key string }{
		{"bad name", "topics:\n  Weather: {terms: [rain]}\n", "topics.Weather"},
		{"misspelt key", "topics:\n  mining: {terms: [lithium], treshold: 2}\n", "topics.mining.treshold"},
		{"undefined group", "topics:\n  mining:\n    groups:\n      - {terms: [lithium], requires: [nowhere]}\n", "topics.mining"},
		{"not YAML", "topics: [\n", "invalid YAML"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.yaml)
			code, _, want := runCmd(t, "", "check", "-config", path)
			if code != 2 || !strings.Contains(want, tt.key) {
				t.Fatalf("check: exit %d, stderr %q; want 2 naming %s", code, want, tt.key)
			}
			// Nothing listens on the config's NATS: the file is refused first.
			cfg := writeFile(t, "nats:\n  url: nats://"+refusedAddr(t)+"\n")
			code, _, got := runCmd(t, "", "backtest", "-config", cfg, "-topics", path)
			if code != 2 || got != want {
				t.Errorf("backtest: exit %d, stderr\n%s\nwant 2 and check's\n%s", code, got, want)
			}
		})
	}

	t.Run("no topics key", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runCmd(t, "", "backtest", "-topics", writeFile(t, "feeds: []\n"))
		if code != 2 || !strings.Contains(stderr, "config: topics: missing") {
			t.Errorf("exit %d, stderr %q; want 2 naming topics", code, stderr)
		}
	})
	t.Run("unknown -topic", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runCmd(t, "", "backtest", "-topic", "weather")
		if code != 2 || !strings.Contains(stderr, `-topic: unknown topic "weather"`) {
			t.Errorf("exit %d, stderr %q; want 2 naming -topic", code, stderr)
		}
	})
	t.Run("negative -since", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runCmd(t, "", "backtest", "-since", "-1h")
		if code != 2 || !strings.Contains(stderr, "-since") {
			t.Errorf("exit %d, stderr %q; want 2 naming -since", code, stderr)
		}
	})
}

// The command against a running deployment: the built-in rules against
// a topics file that drops trade, in JSON.
func TestBacktestCommandJSON(t *testing.T) {
	t.Parallel()
	b, url := bustest.NewListening(t)
	items := []event.Item{
		{ID: "x1", FeedURL: "https://a.example/rss", Title: "EU imposes anti-dumping duties on Chinese steel", Link: "https://a.example/x1",
			Summary: "Brussels set provisional tariffs of up to 30% on steel imports from China."},
		{ID: "x2", FeedURL: "https://a.example/rss", Title: "Sunny weekend ahead", Link: "https://a.example/x2", Summary: "Mild temperatures."},
	}
	for _, it := range items {
		publish(t, b, event.ItemsSubject(it.FeedURL), it.ID, it)
	}
	// x1 went out on trade, as the classifier would have published it.
	x1 := items[0]
	x1.Topics = []string{"trade"}
	publish(t, b, event.ClassifiedSubject("trade"), event.ClassifiedMsgID(x1.ID, "trade"), x1)

	cfg := writeFile(t, "nats:\n  url: "+url+"\n")
	rules := writeFile(t, "topics:\n  trade: {disabled: true}\n")
	code, stdout, stderr := runCmd(t, "", "backtest", "-config", cfg, "-topics", rules, "-json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one changed item and the summary, got:\n%s", stdout)
	}
	var ch struct {
		ID      string              `json:"id"`
		Title   string              `json:"title"`
		Link    string              `json:"link"`
		FeedURL string              `json:"feed_url"`
		Before  []string            `json:"before"`
		After   []string            `json:"after"`
		Matches map[string][]string `json:"matches"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &ch); err != nil {
		t.Fatal(err)
	}
	if ch.ID != "x1" || ch.Title != x1.Title || ch.Link != x1.Link || ch.FeedURL != x1.FeedURL ||
		!slices.Equal(ch.Before, []string{"trade"}) || ch.After == nil || len(ch.After) != 0 || ch.Matches == nil {
		t.Errorf("changed item %+v", ch)
	}
	var sum struct {
		Summary map[string]map[string]int `json:"summary"`
		Items   int                       `json:"items"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &sum); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"before": 1, "after": 0, "added": 0, "removed": 1}
	if sum.Items != 2 || !maps.Equal(sum.Summary["trade"], want) || len(sum.Summary["defense"]) != 4 {
		t.Errorf("summary %s", lines[1])
	}
}

func publish(t *testing.T, b *bus.Bus, subject, id string, it event.Item) {
	t.Helper()
	data, err := it.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), subject, id, data); err != nil {
		t.Fatal(err)
	}
}
