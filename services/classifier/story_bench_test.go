package classifier_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/internal/story"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
	"github.com/feedmon/feedmon/services/classifier"
)

// BenchmarkClassifyStory compares the classifier's per-item cost alone
// with classification plus story assignment (in-memory index), on the
// story fixtures: 38 items in five languages, headline plus a one- or
// two-sentence summary, as plain text (as the classifier service gets
// them from the poller).
//
//   - classify: Classify only.
//   - classify+story: Classify, then Assign for every item.
//   - classify+story-topical: Assign only for items with topics, as the
//     classifier service does (items without topics are not published).
//
// The index is warmed first with 5,000 unique items in the window
// (FEEDMON_STORY_WARM=50000 for the cap, the worst case). Each op is a new batch of ids published
// three days after the one before, so each item meets the fixture's own
// near-duplicates (13 pairs, 12 look-alikes: denser than a real stream)
// and not copies of itself. cpu-ns/item is process CPU time (getrusage),
// which stays meaningful on a loaded machine.
//
// It lives beside the classifier, which does both per item, and reads the
// story package's fixtures: internal/story stays below the services, its
// tests included.
func BenchmarkClassifyStory(b *testing.B) {
	set, err := topics.Effective(nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := classifier.Compile(set)
	if err != nil {
		b.Fatal(err)
	}
	items := storyItems(b)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// warm is how many items the index holds: 5,000 is two days of
	// topical items from a few hundred feeds; the cap (50,000) is the
	// worst case.
	warm := 5000
	if w := os.Getenv("FEEDMON_STORY_WARM"); w != "" {
		warm, _ = strconv.Atoi(w)
	}
	for _, mode := range []string{"classify", "classify+story", "classify+story-topical"} {
		b.Run(mode, func(b *testing.B) {
			idx := story.New(story.Options{})
			n, batch := 0, 0
			assign := func(it [3]string, i int) {
				n++
				at := t0.Add(time.Duration(batch)*72*time.Hour + time.Duration(i)*time.Minute)
				idx.Assign(story.Doc{ID: strconv.Itoa(n), Title: it[0], Text: it[1], Lang: it[2], At: at})
			}
			if mode != "classify" {
				// Warm up: a full index, every item unique and in window.
				for n < warm {
					it := items[n%len(items)]
					n++
					idx.Assign(story.Doc{ID: strconv.Itoa(n), Title: it[0] + " " + strconv.Itoa(n), Text: strconv.Itoa(n) + " " + it[1], Lang: it[2], At: t0})
				}
				batch = 1
			}
			b.ReportAllocs()
			cpu0 := procstat.CPU()
			for b.Loop() {
				batch++
				for i, it := range items {
					res := c.Classify(it[0], it[1], it[2])
					switch {
					case mode == "classify+story":
						assign(it, i)
					case mode == "classify+story-topical" && len(res.Topics) > 0:
						assign(it, i)
					}
				}
			}
			per := float64(b.N * len(items))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/item")
			if d := procstat.CPU() - cpu0; d > 0 {
				b.ReportMetric(float64(d.Nanoseconds())/per, "cpu-ns/item")
			}
		})
	}
}

func storyItems(b *testing.B) [][3]string {
	var items [][3]string
	for _, it := range testkit.ReadJSONL[struct{ Title, Summary, Lang string }](b, "../../internal/story/testdata/stories.jsonl") {
		items = append(items, [3]string{htmltext.ToText(it.Title), htmltext.ToText(it.Summary), it.Lang})
	}
	return items
}
