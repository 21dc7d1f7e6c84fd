package poller

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
)

func TestPublishOnce(t *testing.T) {
	t.Parallel()
	// No ETag: every poll is a full fetch, so dedup is the seen-set's job.
	srv := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	b := bustest.New(t)
	cfg := testConfig(srv.URL)
	h := newHarness(t, b, cfg, WithClock(fixedClock{fixedNow}.Now))

	h.poll(srv.URL)
	h.poll(srv.URL)
	if got := streamCount(t, b); got != 3 {
		t.Fatalf("after two polls: %d items in the stream, want 3", got)
	}
	if h.published() != 3 {
		t.Errorf("items_published %v, want 3", h.published())
	}
	items := streamItems(t, b)
	// Oldest first, on the feed's subject.
	if items[0].Title != "Untitled bulletin" || items[2].Title != "EU & Japan agree to jointly mine rare earths" {
		t.Errorf("order: %q ... %q", items[0].Title, items[2].Title)
	}
	for _, it := range items {
		if it.FeedURL != srv.URL || it.FetchedAt != "2026-11-27T12:00:00Z" {
			t.Errorf("item %+v", it)
		}
	}

	// A restarted poller (new Service, same NATS, an hour later) remembers.
	h.stop()
	h2 := newHarness(t, b, cfg, WithClock(fixedClock{fixedNow.Add(time.Hour)}.Now))
	h2.poll(srv.URL)
	if got := streamCount(t, b); got != 3 {
		t.Fatalf("after restart: %d items, want 3", got)
	}
	if h2.published() != 0 {
		t.Errorf("restarted poller published %v", h2.published())
	}

	// A new item is published, once.
	withNew := bytes.Replace(fixture(t, "rss.xml"), []byte("<item>"), []byte(`<item><title>Fresh</title><guid>urn:example:2002</guid></item><item>`), 1)
	srv.set(serveXML(withNew, "", ""))
	h2.poll(srv.URL)
	h2.poll(srv.URL)
	items = streamItems(t, b)
	if len(items) != 4 || items[3].Title != "Fresh" {
		t.Fatalf("after a new item: %d items", len(items))
	}
	if items[3].ID != event.ItemID(srv.URL, "urn:example:2002") {
		t.Errorf("id %s", items[3].ID)
	}
}

func TestGUIDChurn(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	h := newHarness(t, nil, testConfig(srv.URL))
	h.poll(srv.URL)
	// Same link and title, new GUIDs: a CMS that regenerates ids.
	churned := bytes.Replace(fixture(t, "rss.xml"), []byte("urn:example:1001"), []byte("urn:example:regenerated-77"), 1)
	srv.set(serveXML(churned, "", ""))
	h.poll(srv.URL)
	if got := streamCount(t, h.bus); got != 3 {
		t.Fatalf("%d items after GUID churn, want 3", got)
	}
	// A new title on the same link is news (a correction, a new story).
	retitled := bytes.Replace(churned, []byte("EU &amp; Japan agree"), []byte("EU &amp; Japan sign"), 1)
	retitled = bytes.Replace(retitled, []byte("urn:example:regenerated-77"), []byte("urn:example:1003"), 1)
	srv.set(serveXML(retitled, "", ""))
	h.poll(srv.URL)
	if got := streamCount(t, h.bus); got != 4 {
		t.Fatalf("%d items after a retitled item with a new GUID, want 4", got)
	}
}

func TestSeenSetBounded(t *testing.T) {
	t.Parallel()
	old := &seenSet{}
	for i := range 1000 {
		old.IDs = append(old.IDs, fmt.Sprintf("old%d", i))
	}
	old.index()
	var cur []entry
	for i := range 10 {
		cur = append(cur, entry{item: event.Item{ID: fmt.Sprintf("new%d", i)}, alt: fmt.Sprintf("alt%d", i)})
	}
	// The first of the old ids is still in the feed: it moves to the front.
	cur = append(cur, entry{item: event.Item{ID: "old999"}})
	pub := map[string]bool{}
	for i := range 9 { // new9 failed to publish
		pub[fmt.Sprintf("new%d", i)] = true
	}
	next := old.rebuild(cur, pub, 200)
	if len(next.IDs) != 200 {
		t.Fatalf("%d ids, want 200", len(next.IDs))
	}
	if next.IDs[0] != "new0" || next.IDs[9] != "old999" || next.IDs[10] != "old0" {
		t.Errorf("order: %v", next.IDs[:12])
	}
	if next.has(&entry{item: event.Item{ID: "new9"}}) {
		t.Error("unpublished item recorded as seen")
	}
	if !next.has(&entry{item: event.Item{ID: "x"}, alt: "alt3"}) {
		t.Error("alt key lost")
	}
}

func TestBackoffAfterErrors(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	cfg := testConfig(srv.URL)
	cfg.Poll.Interval = configDuration(time.Minute)
	cfg.Poll.MaxBackoff = configDuration(10 * time.Minute)
	h := newHarness(t, nil, cfg, WithClock(fixedClock{fixedNow}.Now), WithRand(func() float64 { return 0.5 }))

	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		st := h.poll(srv.URL)
		if st.State != stateError || st.Failures != i+1 || !strings.Contains(st.Error, "500") {
			t.Fatalf("poll %d: %+v", i, st)
		}
		if got := st.NextDue.Sub(st.LastFetch); got != w {
			t.Errorf("poll %d: next in %s, want %s", i, got, w)
		}
		if !st.BackoffUntil.Equal(st.NextDue) {
			t.Errorf("poll %d: backoff_until %v", i, st.BackoffUntil)
		}
	}
	if n := h.logs.get(slog.LevelWarn); n != 1 {
		t.Errorf("%d warnings for one failing feed, want 1", n)
	}
	if h.count(telemetry.PollError) != 6 {
		t.Errorf("error count %v", h.count(telemetry.PollError))
	}

	// The fixture's <ttl>15</ttl> stretches the 1m interval to its cap, 4m.
	srv.set(serveXML(fixture(t, "rss.xml"), "", ""))
	st := h.poll(srv.URL)
	if st.State != stateOK || st.Failures != 0 || !st.BackoffUntil.IsZero() || st.NextDue.Sub(st.LastFetch) != 4*time.Minute {
		t.Fatalf("after recovery: %+v", st)
	}
	if n := h.logs.get(slog.LevelInfo); n < 1 {
		t.Error("recovery not logged")
	}
	if n := h.logs.get(slog.LevelWarn); n != 1 {
		t.Errorf("%d warnings after recovery", n)
	}
}

func TestNextDelay(t *testing.T) {
	t.Parallel()
	mid := func() float64 { return 0.5 }
	lo := func() float64 { return 0 }
	hi := func() float64 { return 0.999999 }
	min5 := 5 * time.Minute
	tests := []struct {
		name     string
		interval time.Duration
		failures int
		h        hints
		idle     time.Duration
		rnd      func() float64
		want     time.Duration
	}{
		{"plain", min5, 0, hints{}, 0, mid, min5},
		{"jitter low", min5, 0, hints{}, 0, lo, 270 * time.Second},
		{"jitter high", min5, 0, hints{}, 0, hi, 330 * time.Second},
		{"ttl longer", min5, 0, hints{feedTTL: 15 * time.Minute}, 0, mid, 15 * time.Minute},
		{"ttl capped", min5, 0, hints{feedTTL: 24 * time.Hour}, 0, mid, 20 * time.Minute},
		{"ttl shorter ignored", min5, 0, hints{feedTTL: time.Minute}, 0, mid, min5},
		{"max-age", min5, 0, hints{cacheLifetime: 10 * time.Minute}, 0, mid, 10 * time.Minute},
		{"idle stretches", min5, 0, hints{}, 16 * min5, mid, 10 * time.Minute},
		{"idle capped", min5, 0, hints{}, 1000 * min5, mid, 20 * time.Minute},
		{"long interval not stretched", 2 * time.Hour, 0, hints{}, 1000 * time.Hour, mid, 2 * time.Hour},
		{"backoff 1", min5, 1, hints{}, 0, mid, min5},
		{"backoff 3", min5, 3, hints{}, 0, mid, 20 * time.Minute},
		{"backoff capped", min5, 30, hints{}, 0, mid, time.Hour},
		// Feeds that keep failing together stay spread at the cap instead
		// of coming back in lockstep.
		{"backoff capped jitter low", min5, 30, hints{}, 0, lo, 54 * time.Minute},
		{"backoff capped jitter high", min5, 30, hints{}, 0, hi, time.Hour},
		{"retry-after", min5, 1, hints{retryAfter: 30 * time.Minute}, 0, mid, 30 * time.Minute},
		{"retry-after capped", min5, 1, hints{retryAfter: 48 * time.Hour}, 0, mid, time.Hour},
	}
	for _, tc := range tests {
		if got := nextDelay(tc.interval, time.Hour, tc.failures, tc.h, tc.idle, tc.rnd); (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestSpreadDelay: the poll after a feed's first is spread over a whole
// interval, half before to half after, so feeds started together drift
// apart at once instead of by ±10% per poll.
func TestSpreadDelay(t *testing.T) {
	t.Parallel()
	min5 := 5 * time.Minute
	for _, tc := range []struct {
		r    float64
		want time.Duration
	}{{0, 150 * time.Second}, {0.5, min5}, {0.999, 449700 * time.Millisecond}} {
		if got := spreadDelay(min5, func() float64 { return tc.r }); (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("rnd %v: %s, want %s", tc.r, got, tc.want)
		}
	}
}

func TestFeedTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		doc  string
		want time.Duration
	}{
		{`<rss version="2.0"><channel><title>t</title><ttl>15</ttl></channel></rss>`, 15 * time.Minute},
		{`<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel><title>t</title><sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency></channel></rss>`, 30 * time.Minute},
		{`<rss version="2.0"><channel><title>t</title></channel></rss>`, 0},
		{`<rss version="2.0"><channel><title>t</title><ttl>soon</ttl></channel></rss>`, 0},
	}
	for _, tc := range tests {
		f, _, err := parseFeed([]byte(tc.doc), "")
		if err != nil {
			t.Fatal(err)
		}
		if got := feedTTL(f); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.doc, got, tc.want)
		}
	}
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1800")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	h := newHarness(t, nil, testConfig(srv.URL), WithClock(fixedClock{fixedNow}.Now), WithRand(func() float64 { return 0.5 }))
	h.poll(srv.URL)
	f := h.feeds[srv.URL]
	if f.state.State != stateError || f.state.NextDue.Sub(fixedNow) != 30*time.Minute {
		t.Errorf("state %+v", f.state)
	}
	// The host is paused briefly, not for the feed's Retry-After.
	if got := f.pauseUntil.Sub(fixedNow); got != defaultHostPolicy().pause {
		t.Errorf("host paused for %s, want %s", got, defaultHostPolicy().pause)
	}
}

// TestNATSOutage: when publishing fails the feed is not to blame: the poll
// counts as an error, but no backoff builds up, and the items go out once
// NATS is back.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", `"e1"`))
	b := bustest.New(t)
	h := newHarness(t, b, testConfig(srv.URL), WithClock(fixedClock{fixedNow}.Now), WithRand(func() float64 { return 0.5 }))
	h.svc.publishTimeout = 300 * time.Millisecond
	ctx := context.Background()
	_, js := bustest.Client(t, b)
	if err := js.DeleteStream(ctx, event.StreamItems); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		st := h.poll(srv.URL)
		if st.State != stateError || st.Failures != 0 || st.ETag != "" {
			t.Fatalf("state %+v", st)
		}
		// Full interval, stretched by the feed's ttl as usual: no backoff.
		if d := st.NextDue.Sub(st.LastFetch); d != 4*time.Minute {
			t.Errorf("next poll in %s", d)
		}
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	st := h.poll(srv.URL)
	if st.State != stateOK || streamCount(t, b) != 3 || h.published() != 3 {
		t.Fatalf("after recovery: %+v, %d items", st, streamCount(t, b))
	}
}

// TestLeaseExpiry: a poller that crashed (no release) holds its feeds
// until its lease expires; then another takes them over, reloading the
// state the first one left.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	srv := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", `"e1"`))
	b := bustest.New(t)
	cfg := testConfig(srv.URL)
	crashed := newHarness(t, b, cfg, WithPollerID("a"), WithClock(fixedClock{fixedNow}.Now))
	if st := crashed.poll(srv.URL); st.State != stateOK {
		t.Fatalf("first poller: %+v", st)
	}
	lease := crashed.feeds[srv.URL].lease

	// Before expiry: hands off.
	early := newHarness(t, b, cfg, WithPollerID("b"), WithClock(fixedClock{lease.Expires.Add(-time.Second)}.Now))
	early.poll(srv.URL)
	f := early.feeds[srv.URL]
	if f.loaded || srv.hits.Load() != 1 {
		t.Fatalf("took a live lease: loaded=%v hits=%d", f.loaded, srv.hits.Load())
	}
	if !f.due.Equal(lease.Expires) {
		t.Errorf("next look at %v, want the lease's expiry %v", f.due, lease.Expires)
	}

	// After expiry: takes over, with the first poller's ETag (so a 304).
	late := newHarness(t, b, cfg, WithPollerID("b"), WithClock(fixedClock{lease.Expires.Add(time.Second)}.Now))
	st := late.poll(srv.URL)
	if st.State != stateNotModified || st.Poller != "b" {
		t.Fatalf("takeover: %+v", st)
	}
	if streamCount(t, b) != 3 {
		t.Errorf("%d items after takeover", streamCount(t, b))
	}
}
