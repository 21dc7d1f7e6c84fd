package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/testkit"
)

// genFeeds serves feeds whose items appear over time: feed n shows item i
// once i*step has passed since start. Every item is on topic (trade).
type genFeeds struct {
	*httptest.Server
	start   time.Time
	step    time.Duration
	perFeed int
}

func newGenFeeds(t *testing.T, perFeed int, over time.Duration) *genFeeds {
	g := &genFeeds{start: time.Now(), step: over / time.Duration(perFeed), perFeed: perFeed}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := strings.TrimPrefix(r.URL.Path, "/f/")
		visible := min(g.perFeed, int(time.Since(g.start)/g.step)+1)
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>gen ` + n + `</title><link>https://gen.example/</link>`)
		for i := visible - 1; i >= 0; i-- {
			fmt.Fprintf(&b, `<item><title>EU imposes anti-dumping duties on Chinese steel imports, report %s-%d</title><link>https://gen.example/%s/%d</link><guid>g-%s-%d</guid><description>The European Commission set provisional duties on steel imports.</description></item>`, n, i, n, i, n, i)
		}
		b.WriteString(`</channel></rss>`)
		w.Header().Set("Content-Type", "application/rss+xml")
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(g.Close)
	return g
}

// TestClusterReplicasExactlyOnce runs two replicas of each service on a
// 3-node R3 cluster. Midway one NATS node and one replica of each service
// die (the services as a crash would: no drain, no acks); later they come
// back. The sink must hold every item exactly once.
func TestClusterReplicasExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster with six service replicas")
	}
	feeds, perFeed := 20, 500 // 10,000 items
	if v, err := strconv.Atoi(os.Getenv("FEEDMON_CLUSTER_ITEMS")); err == nil && v > 0 {
		perFeed = max(1, v/feeds)
	}
	total := feeds * perFeed

	cluster := bustest.NewCluster(t, 3)
	gen := newGenFeeds(t, perFeed, 20*time.Second)
	sink := testkit.NewSink(t, secret)

	var feedList strings.Builder
	for i := 0; i < feeds; i++ {
		fmt.Fprintf(&feedList, "  - url: %s/f/%d\n", gen.URL, i)
	}
	doc := fmt.Sprintf(`
nats: {url: %q, replicas: 3}
metrics: {listen: ""}
poll: {interval: 1s, timeout: 2s, allow_networks: [127.0.0.0/8], per_host: 8}
feeds:
%s
subscribers:
  - name: desk
    topics: [trade]
    webhook: {url: %q, secret: %q}
`, cluster.URLs(), feedList.String(), sink.URL(), secret)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var mains []*app.Main
	startSvc := func(svc string, n int) *app.Main {
		m := &app.Main{Config: cfg, Services: []string{svc}, Log: bustest.Logger(t), Name: fmt.Sprintf("%s-%d", svc, n)}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		mains = append(mains, m)
		mu.Unlock()
		return m
	}
	t.Cleanup(func() {
		for _, m := range mains {
			m.Close()
		}
	})
	first := map[string]*app.Main{}
	for _, svc := range app.All {
		first[svc] = startSvc(svc, 1)
		startSvc(svc, 2)
	}

	unique := func() int { return len(sink.CountByID()) }
	bustest.Eventually(t, 120*time.Second, func() bool { return unique() >= total/3 }, "a third of the items (have %d of %d)", unique(), total)

	cluster.Stop(2)
	for _, svc := range app.All {
		first[svc].Abort()
	}
	t.Logf("killed node 3 and one replica of each service at %d of %d items", unique(), total)
	bustest.Eventually(t, 180*time.Second, func() bool { return unique() >= 2*total/3 }, "two thirds of the items with a node down (have %d of %d)", unique(), total)

	cluster.Start(2)
	for _, svc := range app.All {
		startSvc(svc, 3)
	}
	t.Logf("restarted at %d of %d items", unique(), total)
	bustest.Eventually(t, 300*time.Second, func() bool { return unique() >= total }, "every item (have %d of %d)", unique(), total)

	// Let redeliveries that are still due play out before counting.
	mu.Lock()
	live := append([]*app.Main(nil), mains...)
	mu.Unlock()
	bustest.Eventually(t, 60*time.Second, func() bool { return allPending(live) == 0 }, "consumers still have work pending")

	// A crash can always cost one re-send of what was in flight at that
	// moment (the receiver had it, feedmon had not yet recorded it): the
	// contract's one open window. Such a re-send carries the same
	// Idempotency-Key, and there can be no more of them than the killed
	// notifier had deliveries in flight.
	resent, dups := 0, 0
	keys := map[string]map[string]bool{}
	for _, d := range sink.Deliveries() {
		for _, it := range d.Items {
			if keys[it.ID] == nil {
				keys[it.ID] = map[string]bool{}
			}
			keys[it.ID][d.IdempotencyKey] = true
		}
	}
	for id, n := range sink.CountByID() {
		if n == 1 {
			continue
		}
		if n == 2 && len(keys[id]) == 1 {
			resent++
			continue
		}
		dups++
		if dups < 10 {
			t.Errorf("item %s delivered %d times with %d idempotency keys", id, n, len(keys[id]))
		}
	}
	t.Logf("re-sent after the notifier crash with the same Idempotency-Key: %d", resent)
	if max := cfg.Notify.Workers; resent > max {
		t.Errorf("%d items re-sent, more than the %d deliveries a notifier has in flight", resent, max)
	}
	if dups > 0 {
		t.Errorf("%d items delivered more than once outside the crash window", dups)
	}
	if got := unique(); got != total {
		t.Errorf("delivered %d distinct items, want %d", got, total)
	}
}

// allPending sums the consumers' pending and unacknowledged messages, read
// from NATS through a live replica.
func allPending(mains []*app.Main) int {
	for _, m := range mains {
		if m.Bus != nil && m.Bus.Connected() {
			return bustest.PendingWork(m.Bus)
		}
	}
	return -1
}

// TestNATSRestartDuringDelivery restarts a single NATS server (file store)
// while items flow: readiness drops while NATS is away, the services
// reconnect and resume on their own, and nothing is lost or sent twice.
func TestNATSRestartDuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server mid-run")
	}
	t.Parallel()
	ns := bustest.NewCluster(t, 1)
	feeds, perFeed := 4, 500
	total := feeds * perFeed
	gen := newGenFeeds(t, perFeed, 10*time.Second)
	sink := testkit.NewSink(t, secret)
	var feedList strings.Builder
	for i := 0; i < feeds; i++ {
		fmt.Fprintf(&feedList, "  - url: %s/f/%d\n", gen.URL, i)
	}
	doc := fmt.Sprintf(`
nats: {url: %q}
metrics: {listen: ""}
poll: {interval: 1s, timeout: 2s, allow_networks: [127.0.0.0/8], per_host: 4}
feeds:
%s
subscribers:
  - name: desk
    topics: [trade]
    webhook: {url: %q, secret: %q}
`, ns.URLs(), feedList.String(), sink.URL(), secret)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	m := start(t, cfg, nil)
	defer closeMain(t, m)

	unique := func() int { return len(sink.CountByID()) }
	bustest.Eventually(t, 60*time.Second, func() bool { return unique() >= total/3 }, "a third of the items (have %d of %d)", unique(), total)
	bustest.Eventually(t, 30*time.Second, func() bool { return m.Ready() == nil }, "not ready before the restart: %v", m.Ready())
	ns.Stop(0)
	bustest.Eventually(t, 10*time.Second, func() bool { return m.Ready() != nil }, "still ready with NATS down")
	ns.Start(0)
	ns.WaitReady()
	bustest.Eventually(t, 120*time.Second, func() bool { return unique() >= total }, "every item after the restart (have %d of %d)", unique(), total)
	bustest.Eventually(t, 30*time.Second, func() bool { return m.Ready() == nil }, "not ready after the restart: %v", m.Ready())
	bustest.Eventually(t, 60*time.Second, func() bool { return allPending([]*app.Main{m}) == 0 }, "consumers still have work pending")
	for id, n := range sink.CountByID() {
		if n != 1 {
			t.Errorf("item %s delivered %d times", id, n)
		}
	}
}
