package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestParseManyFeeds bounds what parsing costs per feed: a list of 100,000
// feeds is parsed at start and at every reload, next to the running
// services. Not parallel: it reads the allocations of the whole test
// binary.
func TestParseManyFeeds(t *testing.T) {
	const n = 20_000
	var doc strings.Builder
	doc.WriteString("poll: {interval: 10s}\nfeeds:\n")
	for i := range n {
		fmt.Fprintf(&doc, "  - url: https://news%d.example/feed/%d.xml\n", i%250, i)
	}
	data := []byte(doc.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cfg, err := Parse(data, func(string) (string, bool) { return "", false })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Feeds) != n || cfg.Feeds[n-1].URL != fmt.Sprintf("https://news%d.example/feed/%d.xml", (n-1)%250, n-1) {
		t.Fatalf("parsed %d feeds, the last %+v", len(cfg.Feeds), cfg.Feeds[len(cfg.Feeds)-1])
	}
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per feed", per)
	if per > 3000 {
		t.Errorf("parsing allocated %.0f bytes per feed, want at most 3,000", per)
	}
}
