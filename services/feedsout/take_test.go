package feedsout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// BenchmarkTake is the cost of one classified message to the process that
// serves the feeds: decoding the item (once for all its topics) and adding
// it to its topic's feed and to the feeds of the subscribers that select
// it (here ten subscribers on the built-in topics, items on two topics).
func BenchmarkTake(b *testing.B) {
	doc := "subscribers:\n"
	for i := range 10 {
		doc += fmt.Sprintf("  - {name: s%d, topics: [trade, defense], stdout: {}}\n", i)
	}
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	s := New(cfg.FeedsOutConfig(), nil, prometheus.NewRegistry(), nil)
	type msg struct {
		subject, id string
		data        []byte
	}
	var msgs []msg
	for i := range 1000 {
		it := &event.Item{
			ID: fmt.Sprintf("%032x", i), FeedURL: "https://wire.example/feed", FeedTitle: "Wire",
			Title: fmt.Sprintf("Tariffs and frigates %d", i), Link: fmt.Sprintf("https://wire.example/%d", i),
			Summary: strings.Repeat("tariff ", 100), Published: "2026-11-24T09:00:00Z", FetchedAt: "2026-11-24T09:00:01.5Z",
			Topics: []string{"trade", "defense"}, Scores: map[string]float64{"trade": 3, "defense": 3}, StoryID: fmt.Sprintf("%032x", i),
		}
		data, _ := it.Marshal()
		for _, t := range it.Topics {
			msgs = append(msgs, msg{event.ClassifiedSubject(t), event.ClassifiedMsgID(it.ID, t), data})
		}
	}
	at := time.Now()
	var prev *event.Item
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := msgs[i%len(msgs)]
		i++
		prev = s.take(m.subject, m.id, m.data, at, prev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
}
