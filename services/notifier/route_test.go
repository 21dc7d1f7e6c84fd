package notifier

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/config"
)

func TestRouteFilters(t *testing.T) {
	t.Parallel()
	cfg := testConfig(
		config.Subscriber{Name: "all", Topics: []string{"trade", "defense"}, Stdout: &config.Stdout{}},
		config.Subscriber{Name: "feed", Topics: []string{"trade"}, Feeds: []string{"https://other.example/feed"}, Stdout: &config.Stdout{}},
		config.Subscriber{Name: "ja", Topics: []string{"trade"}, Languages: []string{"ja"}, Stdout: &config.Stdout{}},
		config.Subscriber{Name: "strong", Topics: []string{"trade", "defense"}, MinScore: 5, Stdout: &config.Stdout{}},
	)
	s, err := New(*cfg, nil, nil, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		subject string
		lang    string
		scores  map[string]float64
		want    []string
	}{
		{"first wanted topic only", "defense", "en", map[string]float64{"defense": 3, "trade": 3}, []string{"all"}},
		{"second topic message is not routed twice", "trade", "en", map[string]float64{"defense": 3, "trade": 3}, nil},
		{"language filter", "defense", "ja-JP", map[string]float64{"defense": 3, "trade": 3}, []string{"all"}},
		{"unknown language passes", "defense", "", map[string]float64{"defense": 6, "trade": 3}, []string{"all", "strong"}},
		{"min score on another topic decides the message", "trade", "en", map[string]float64{"defense": 2, "trade": 6}, []string{"strong"}},
	}
	for _, tt := range tests {
		it := testItem("x", "defense", "trade")
		it.Lang, it.Scores = tt.lang, tt.scores
		var got []string
		for _, sub := range s.routeItem(tt.subject, it) {
			got = append(got, sub.name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: routed to %v, want %v", tt.name, got, tt.want)
		}
	}
	// The language filter routes a Japanese item on its trade message.
	it := testItem("y", "trade")
	it.Lang = "ja"
	var got []string
	for _, sub := range s.routeItem("trade", it) {
		got = append(got, sub.name)
	}
	if !slices.Equal(got, []string{"all", "ja"}) {
		t.Errorf("japanese trade item routed to %v", got)
	}
}
