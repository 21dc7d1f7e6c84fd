package routing_test

import (
	"testing"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/routing"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	item := func(lang, feed string, scores map[string]float64, topics ...string) *event.Item {
		return &event.Item{ID: "x", FeedURL: feed, Lang: lang, Scores: scores, Topics: topics}
	}
	const feedA, feedB = "https://a.example/feed", "https://b.example/feed"
	tests := []struct {
		name    string
		sub     config.Subscriber
		it      *event.Item
		subject string
		want    bool
	}{
		{"first of its topics", config.Subscriber{Topics: []string{"trade", "defense"}}, item("", feedA, nil, "defense", "trade"), "defense", true},
		{"not again on a later topic", config.Subscriber{Topics: []string{"trade", "defense"}}, item("", feedA, nil, "defense", "trade"), "trade", false},
		{"topic it does not have", config.Subscriber{Topics: []string{"trade"}}, item("", feedA, nil, "defense"), "defense", false},
		{"subject trusted over the item", config.Subscriber{Topics: []string{"trade"}}, item("", feedA, nil), "trade", true},
		{"topic name made a token", config.Subscriber{Topics: []string{"rare earths"}}, item("", feedA, nil, "rare earths"), "rare_earths", true},
		{"feed filter", config.Subscriber{Topics: []string{"trade"}, Feeds: []string{feedB}}, item("", feedA, nil, "trade"), "trade", false},
		{"feed filter passes", config.Subscriber{Topics: []string{"trade"}, Feeds: []string{feedA}}, item("", feedA, nil, "trade"), "trade", true},
		{"language filter", config.Subscriber{Topics: []string{"trade"}, Languages: []string{"ja"}}, item("en-GB", feedA, nil, "trade"), "trade", false},
		{"language subtag passes", config.Subscriber{Topics: []string{"trade"}, Languages: []string{"JA"}}, item("ja-JP", feedA, nil, "trade"), "trade", true},
		{"unknown language passes", config.Subscriber{Topics: []string{"trade"}, Languages: []string{"ja"}}, item("", feedA, nil, "trade"), "trade", true},
		{"min score too low", config.Subscriber{Topics: []string{"trade"}, MinScore: 5}, item("", feedA, map[string]float64{"trade": 4}, "trade"), "trade", false},
		{"min score on the second topic routes there", config.Subscriber{Topics: []string{"trade", "defense"}, MinScore: 5},
			item("", feedA, map[string]float64{"defense": 2, "trade": 6}, "defense", "trade"), "trade", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := routing.New(&tt.sub)
			if got := f.Routes(routing.Topics(tt.it, tt.subject), tt.it, tt.subject); got != tt.want {
				t.Errorf("Routes on %s = %v, want %v", tt.subject, got, tt.want)
			}
		})
	}
}
