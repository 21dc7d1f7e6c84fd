package classifier

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/internal/topics"
)

// benchItems is the benchmark corpus: the fixture items (all five
// languages, positives and hard negatives), as plain text.
func benchItems(b *testing.B) (items [][3]string, bytes int64) {
	for _, f := range loadFixtures(b, "testdata/cases.jsonl") {
		it := [3]string{f.Title, htmltext.ToText(f.Summary), f.Lang}
		items = append(items, it)
		bytes += int64(len(it[0]) + len(it[1]))
	}
	return items, bytes
}

func benchClassify(b *testing.B, c *Classifier) {
	items, n := benchItems(b)
	b.SetBytes(n)
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := procstat.CPU()
	for b.Loop() {
		for _, it := range items {
			c.Classify(it[0], it[1], it[2])
		}
	}
	reportCPU(b, cpu0, n)
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N*len(items)), "allocs/item")
}

// reportCPU adds "MB/cpu-s": bytes classified per second of CPU time used
// (all threads, GC included), which stays meaningful on a loaded machine.
func reportCPU(b *testing.B, cpu0 time.Duration, bytesPerOp int64) {
	if d := procstat.CPU() - cpu0; d > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/d.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkClassifyBuiltin: the built-in topics over the fixture corpus.
func BenchmarkClassifyBuiltin(b *testing.B) {
	benchClassify(b, builtin(b))
}

// BenchmarkClassifyUser10k: the built-ins plus a user topic of 10,000
// generated terms (one to three pseudo-words each, some NEAR terms).
func BenchmarkClassifyUser10k(b *testing.B) {
	set, err := topics.Effective(topics.Set{"generated": {Terms: generatedTerms(10000)}})
	if err != nil {
		b.Fatal(err)
	}
	c, err := Compile(set)
	if err != nil {
		b.Fatal(err)
	}
	benchClassify(b, c)
}

// BenchmarkClassifyLong: one 2,000-character English summary (the
// poller's cap) dense with topic words.
func BenchmarkClassifyLong(b *testing.B) {
	c := builtin(b)
	summary := strings.Repeat("Beijing tightened export controls on rare earth magnets while NATO allies raised defence spending and the WTO warned about tariffs. ", 16)[:2000]
	b.SetBytes(int64(len(summary)))
	b.ReportAllocs()
	cpu0 := procstat.CPU()
	for b.Loop() {
		c.Classify("Rare earths, tariffs and defence", summary, "en")
	}
	reportCPU(b, cpu0, int64(len(summary)))
}

func generatedTerms(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz"
		w := make([]byte, 4+r.IntN(7))
		for i := range w {
			w[i] = letters[r.IntN(len(letters))]
		}
		return string(w)
	}
	terms := make([]string, 0, n)
	for i := range n {
		switch {
		case i%50 == 0:
			terms = append(terms, fmt.Sprintf("%s NEAR/5 %s", word(), word()))
		case i%3 == 0:
			terms = append(terms, word()+" "+word())
		default:
			terms = append(terms, word())
		}
	}
	return terms
}

// TestAllocsPerItem bounds the allocations of one classification: the
// working memory is pooled, so what is left is the Result (the Scores and
// Matches maps, and one array holding Topics and every matched string),
// however long the text and however many terms match.
func TestAllocsPerItem(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	c := builtin(t)
	long := strings.Repeat("Beijing tightened export controls on rare earth magnets while NATO allies raised defence spending and the WTO warned about tariffs. ", 16)[:2000]
	for _, tt := range []struct{ title, summary, lang string }{
		{"Schools plant trees for Earth Day", "Pupils planted saplings.", "en"},
		{"EU and Japan agree to jointly mine rare earths abroad", "They will counter economic coercion and open a defense-industry dialogue.", "en"},
		{"稀土出口管制新规发布", "商务部宣布对部分中重稀土相关物项实施出口管制。", "zh"},
		{"Rare earths, tariffs and defence", long, "en"},
	} {
		c.Classify(tt.title, tt.summary, tt.lang) // warm the pool
		n := testing.AllocsPerRun(50, func() { c.Classify(tt.title, tt.summary, tt.lang) })
		t.Logf("%q: %.1f allocations", tt.title, n)
		if n > maxAllocsPerItem {
			t.Errorf("%q: %.1f allocations per item, want at most %d", tt.title, n, maxAllocsPerItem)
		}
	}
}

// maxAllocsPerItem: two small maps (two allocations each) and one array
// measure 5; the bound leaves room for a runtime that allocates maps
// differently.
const maxAllocsPerItem = 8
