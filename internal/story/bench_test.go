package story

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkAssign: in-memory assignment of the fixture items (13 pairs of
// one story, 12 look-alikes). Each op is a new batch of ids, published
// three days after the one before: the earlier batch has left the window
// and is evicted, so each op meets the fixture's own duplicates only.
func BenchmarkAssign(b *testing.B) {
	fx := readJSONL(b, "testdata/stories.jsonl")
	x := New(Options{})
	b.ReportAllocs()
	n, batch := 0, 0
	for b.Loop() {
		batch++
		for i, f := range fx {
			n++
			at := t0.Add(time.Duration(batch)*72*time.Hour + time.Duration(i)*time.Minute)
			x.Assign(Doc{ID: strconv.Itoa(n), Title: f.Title, Text: f.Summary, Lang: f.Lang, At: at})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fx)), "ns/item")
}

// BenchmarkSign: the signature alone.
func BenchmarkSign(b *testing.B) {
	fx := readJSONL(b, "testdata/stories.jsonl")
	var scratch [128]token
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range fx {
			sign(f.Title, f.Summary, f.Lang, scratch[:])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fx)), "ns/item")
}

// BenchmarkAnchors: the anchors alone (see extractAnchors), to compare
// with BenchmarkSign.
func BenchmarkAnchors(b *testing.B) {
	fx := readJSONL(b, "testdata/stories.jsonl")
	b.ReportAllocs()
	var figs [maxFigs]figure // as the index's scratch
	for b.Loop() {
		for _, f := range fx {
			extractAnchors(f.Title, f.Summary, f.Lang, figs[:])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fx)), "ns/item")
}
