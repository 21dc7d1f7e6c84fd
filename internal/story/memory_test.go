package story

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestMemoryPerItem bounds what the index holds per item, the items
// themselves included: the classifier keeps up to MaxEntries of them (50,000
// by default), and a first fetch of a big feed list fills it at once. Not
// parallel: it reads the heap of the whole test binary.
func TestMemoryPerItem(t *testing.T) {
	const n = 20_000
	// An item of a feed: a headline and a summary with a figure.
	doc := func(i int) Doc {
		return Doc{
			ID:    fmt.Sprintf("https://news.example/%d/item-%d", i%97, i),
			Title: fmt.Sprintf("Brussels imposes anti-dumping duties on imports of Chinese steel, report %d-%d", i%97, i),
			Text:  fmt.Sprintf("The European Commission set provisional anti-dumping duties of up to %d%% on steel imports from China after complaints from EU producers.", 10+i%50),
			Lang:  "en",
			At:    t0.Add(time.Duration(i) * time.Second),
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	x := New(Options{MaxEntries: n})
	for i := range n {
		x.Assign(doc(i))
	}
	per := float64(heap()-before) / n
	runtime.KeepAlive(x)
	if x.Len() != n {
		t.Fatalf("index holds %d items, want %d", x.Len(), n)
	}
	t.Logf("%.0f bytes per item", per)
	// An item's ring slot (its links, anchors and strings' headers), its
	// tokens, its id and its share of the tables.
	if per > 900 {
		t.Errorf("the index holds %.0f bytes per item, want at most 900", per)
	}
}

func TestLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		seq, older, want uint64
	}{
		{seq: 10, older: 0, want: 0},                              // none
		{seq: 10, older: 3, want: 3},                              // a live item
		{seq: 1 << 40, older: 1<<40 - 1<<31, want: 1<<40 - 1<<31}, // as far back as MaxEntries allows
		{seq: 1 << 40, older: 1, want: 0},                         // farther than any live item: evicted
	}
	for _, tt := range tests {
		if got := linkTo(tt.seq, tt.older).from(tt.seq); got != tt.want {
			t.Errorf("link from %d to %d leads to %d, want %d", tt.seq, tt.older, got, tt.want)
		}
	}
}
