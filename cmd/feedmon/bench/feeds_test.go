package bench

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestFeedServerKeepsNoBodies: the feed server runs in the measured
// process, so whatever it holds counts in feedmon's peak RSS. Keeping each
// feed's rendered body held about 500 bytes per feed, 50 MB of heap at
// 100,000 feeds (twice that in RSS), that feedmon never had. Not
// parallel: it reads the process's live heap.
func TestFeedServerKeepsNoBodies(t *testing.T) {
	const feeds = 20000
	fs, err := newFeedServer(Options{Feeds: feeds, Items: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(n int, etag string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, fs.topic(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// One fetch first: the client's and server's connection state is
	// then in place before the heap is read.
	get(0, "")
	before := liveHeap()
	for n := range feeds {
		resp := get(n, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("feed %d: %s", n, resp.Status)
		}
		if n == feeds-1 {
			// The body is the same until an item appears: a re-poll
			// with its ETag is answered 304.
			if again := get(n, resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
				t.Fatalf("re-poll with the ETag: %s, want 304", again.Status)
			}
		}
	}
	after := liveHeap()
	if per := (int64(after) - int64(before)) / feeds; per > 100 {
		t.Errorf("the feed server holds %d bytes per feed served (%d → %d), want none kept", per, before, after)
	}
	t.Logf("live heap %d → %d bytes over %d feeds", before, after, feeds)
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
