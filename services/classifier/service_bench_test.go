package classifier

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
)

// serviceBatch is how many items one op of BenchmarkService classifies.
const serviceBatch = 4000

// BenchmarkService measures the classifier service's per-item cost as it
// runs: items waiting on FEEDMON_ITEMS in an embedded JetStream, consumed,
// decoded, classified, given a story (or not), published to their topics
// and acked. cpu-ns/item is the process's CPU time (the NATS server's
// share included) from the service's start until every item is counted in
// feedmon_items_classified_total; publishing the items beforehand is not
// counted.
//
//   - stories=off: no story assignment.
//   - stories=on: story assignment with the stories bucket, as deployed.
//
// The items are the fixture corpus (positives and negatives in five
// languages), repeated with unique ids and numbers, each pass over it
// three days after the previous one (see below).
func BenchmarkService(b *testing.B) {
	fx := loadFixtures(b, "testdata/cases.jsonl")
	set, err := topics.Effective(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, stories := range []bool{false, true} {
		b.Run(fmt.Sprintf("stories=%v", stories), func(b *testing.B) {
			var cpu time.Duration
			items := 0
			// want is the counter's value once every item is done: one
			// per topic, or one ("none") for an item without topics.
			want := 0
			c, err := Compile(set)
			if err != nil {
				b.Fatal(err)
			}
			for i := range serviceBatch {
				f := fx[i%len(fx)]
				want += max(1, len(c.Classify(f.Title, fmt.Sprintf("%s (%d)", f.Summary, i), f.Lang).Topics))
			}
			for b.Loop() {
				b.StopTimer()
				bs := bustest.New(b)
				ctx := context.Background()
				base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
				for i := range serviceBatch {
					f := fx[i%len(fx)]
					// Each pass over the corpus is published three days
					// after the one before: an item meets the corpus's own
					// look-alikes, not dozens of copies of itself.
					at := base.Add(time.Duration(i/len(fx))*72*time.Hour + time.Duration(i%len(fx))*time.Second)
					it := event.Item{
						ID:        fmt.Sprintf("b%d", i),
						FeedURL:   fmt.Sprintf("https://f%d.example/rss", i%100),
						Title:     f.Title,
						Summary:   fmt.Sprintf("%s (%d)", f.Summary, i),
						Lang:      f.Lang,
						Published: event.FormatTime(at),
						FetchedAt: event.FormatTime(at),
					}
					data, err := it.Marshal()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := bs.Publish(ctx, event.ItemsSubject(it.FeedURL), it.ID, data); err != nil {
						b.Fatal(err)
					}
				}
				cfg := config.ClassifierConfig{Topics: set}
				reg := prometheus.NewRegistry()
				m := telemetry.NewMetrics(reg, nil, []string{"rare_earths", "defense", "trade"})
				var opts []Option
				if !stories {
					opts = append(opts, WithoutStories())
				}
				svc, err := New(cfg, bs, m, reg, bustest.Logger(b), opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				c0 := procstat.CPU()
				stop := testkit.Run(b, "classifier", svc.Run)
				bustest.Eventually(b, 5*time.Minute, func() bool { return classifiedCount(b, reg) >= want }, "items classified")
				cpu += procstat.CPU() - c0
				b.StopTimer()
				stop()
				items += serviceBatch
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(items), "cpu-ns/item")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(items), "ns/item")
		})
	}
}

// classifiedCount is the sum of feedmon_items_classified_total over its
// topics.
func classifiedCount(b *testing.B, reg *prometheus.Registry) int {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "feedmon_items_classified_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return int(n)
}
