package backtest

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
	"github.com/feedmon/feedmon/services/classifier"
)

// benchItems is how many items the benchmark's deployment keeps.
const benchItems = 100_000

// BenchmarkBacktest: a backtest of 100,000 stored items in an embedded
// NATS server (the classifier's fixture corpus in five languages, cycled,
// each with its classified records as the built-in rules gave them),
// with rules that drop trade. One op reads the whole window, joins it with
// the records, classifies every item and writes the JSON report.
//
//	go test -run='^$' -bench=Backtest -count=5 ./services/classifier/backtest/
func BenchmarkBacktest(b *testing.B) {
	_, url := bustest.NewListening(b)
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	deployed, err := classifier.Compile(topics.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	cases := testkit.ReadJSONL[event.Item](b, "../testdata/cases.jsonl")
	ctx := context.Background()
	for i := range benchItems {
		if i%1000 == 0 {
			// In steps, well below the async window: a loaded machine
			// would otherwise stall the publisher into an error.
			settle(b, js)
		}
		it := cases[i%len(cases)]
		it.ID = fmt.Sprintf("%032x", i)
		it.FeedURL = fmt.Sprintf("https://feed%d.example/rss", i%500)
		it.Link = fmt.Sprintf("https://news.example/%d", i)
		it.Summary = htmltext.ToText(it.Summary)
		it.FetchedAt = event.FormatTime(time.Now())
		it.Topics = nil
		publishAsync(b, js, event.ItemsSubject(it.FeedURL), it.ID, &it)
		// The records the classifier published for it.
		res := deployed.ClassifyItem(&it, false)
		it.Topics, it.Scores, it.Matches = res.Topics, res.Scores, res.Matches
		for _, topic := range res.Topics {
			publishAsync(b, js, event.ClassifiedSubject(topic), event.ClassifiedMsgID(it.ID, topic), &it)
		}
	}
	settle(b, js)
	rules := topics.Set{topics.Trade: {Disabled: true}}
	set, err := topics.Effective(rules)
	if err != nil {
		b.Fatal(err)
	}
	c, err := classifier.Compile(set)
	if err != nil {
		b.Fatal(err)
	}
	reader := bustest.Connect(b, url)

	b.ReportAllocs()
	cpu0 := procstat.CPU()
	for b.Loop() {
		rep, err := Run(ctx, reader, c, io.Discard, Options{JSON: true})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Items != benchItems || rep.Changed == 0 {
			b.Fatalf("read %d items, %d changed; want %d and some", rep.Items, rep.Changed, benchItems)
		}
	}
	b.ReportMetric(float64(benchItems*b.N)/b.Elapsed().Seconds(), "items/s")
	// Per second of CPU of the whole process, the embedded NATS server's
	// included: what the machine's load does not change.
	if d := procstat.CPU() - cpu0; d > 0 {
		b.ReportMetric(float64(benchItems*b.N)/d.Seconds(), "items/cpu-s")
	}
}

// settle waits for every async publish to be acknowledged.
func settle(b *testing.B, js jetstream.JetStream) {
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing 1,000 items took over a minute")
	}
}

func publishAsync(b *testing.B, js jetstream.JetStream, subject, id string, it *event.Item) {
	data, err := it.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.PublishAsync(subject, data, jetstream.WithMsgID(id)); err != nil {
		b.Fatal(err)
	}
}
