package feedsout_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
)

// benchFeeds serves a trade feed full at the default max_items (100
// entries, 2,000 characters of summary each).
func benchFeeds(b *testing.B) *feeds {
	bs := bustest.New(b)
	var ids []string
	for i := range 100 {
		it := &event.Item{
			ID: fmt.Sprintf("%032x", i), FeedURL: "https://wire.example/feed", FeedTitle: "Wire",
			Title: fmt.Sprintf("Tariffs on item %d", i), Link: fmt.Sprintf("https://wire.example/%d", i),
			Summary:   strings.Repeat("tariff ", 285),
			Published: time.Date(2026, 11, 24, 9, 0, i, 0, time.UTC).Format(time.RFC3339),
			Topics:    []string{"trade"}, StoryID: fmt.Sprintf("%032x", i),
		}
		publish(b, bs, it)
		ids = append(ids, it.ID)
	}
	f, _ := start(b, bs, loadConfig(b, subscribersYAML))
	f.waitFor(b, "/feeds/topics/trade.json", ids...)
	return f
}

// BenchmarkServe measures one request for an unchanged feed through the
// handler (no network): a full answer from the cached bytes, and a 304.
func BenchmarkServe(b *testing.B) {
	f := benchFeeds(b)
	h := f.svc.Handler()
	for _, format := range []string{"atom", "json"} {
		path := "/feeds/topics/trade." + format
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		etag := rec.Header().Get("ETag")
		b.Run(format+"/200", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(rec.Body.Len()))
			req := httptest.NewRequest(http.MethodGet, path, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
		b.Run(format+"/304", func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("If-None-Match", etag)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusNotModified {
					b.Fatal(w.Code)
				}
			}
		})
		// A different Host renders anew every time: the cost of a
		// render, which a feed change also costs once.
		b.Run(format+"/render", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Host = fmt.Sprintf("h%d.example", i%2)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
