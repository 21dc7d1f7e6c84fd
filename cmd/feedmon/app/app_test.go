package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/services/feedsout"
)

const secret = "test-secret"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testConfig is a config for one in-process pipeline: embedded NATS in
// storeDir, one feed, one webhook subscriber.
func testConfig(t *testing.T, storeDir, feedURL, hookURL string) *config.Config {
	t.Helper()
	doc := fmt.Sprintf(`
nats:
  listen: ""
  store_dir: %q
metrics:
  listen: 127.0.0.1:0
poll:
  interval: 1s
  allow_networks: [127.0.0.0/8]
feeds:
  - url: %q
subscribers:
  - name: desk
    topics: [rare_earths, defense, trade]
    webhook: {url: %q, secret: %q}
`, storeDir, feedURL, hookURL, secret)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config, stdout io.Writer) *app.Main {
	t.Helper()
	m := &app.Main{Config: cfg, Log: bustest.Logger(t), Stdout: stdout}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func closeMain(t *testing.T, m *app.Main) {
	t.Helper()
	start := time.Now()
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %s, want < 10s", d)
	}
}

// TestPipeline is the reference story end to end: feed → poller →
// classifier → notifier → signed webhook, with the traps filtered out.
func TestPipeline(t *testing.T) {
	t.Parallel()
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	sink := testkit.NewSink(t, secret)
	cfg := testConfig(t, t.TempDir(), feed.URL(), sink.URL())
	m := start(t, cfg, io.Discard)
	defer closeMain(t, m)

	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) >= 1 }, "no delivery")
	bustest.Eventually(t, 10*time.Second, func() bool { return m.Ready() == nil }, "not ready: %v", m.Ready())

	// Several more polls and a moment for anything spurious to arrive.
	polls := feed.Requests()
	bustest.Eventually(t, 10*time.Second, func() bool { return feed.Requests() >= polls+2 }, "feed not polled again")
	bustest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(m.Metrics.ItemsClassified.WithLabelValues("none")) >= 2
	}, "traps not classified")

	items := sink.Items()
	if len(items) != 1 {
		for _, it := range items {
			t.Logf("delivered: %q %v", it.Title, it.Topics)
		}
		t.Fatalf("delivered %d items, want exactly the reference story", len(items))
	}
	it := items[0]
	if !strings.HasPrefix(it.Title, "EU and Japan agree") {
		t.Errorf("delivered %q", it.Title)
	}
	if want := []string{"rare_earths", "defense", "trade"}; !slices.Equal(it.Topics, want) {
		t.Errorf("topics = %v, want %v", it.Topics, want)
	}
	d := sink.Deliveries()[0]
	if !d.SignatureOK {
		t.Error("signature does not verify")
	}
	if !d.StandardOK {
		t.Error("Standard Webhooks signature does not verify with the reference library")
	}
	if d.Subscriber != "desk" || d.IdempotencyKey == "" {
		t.Errorf("delivery = subscriber %q, idempotency key %q", d.Subscriber, d.IdempotencyKey)
	}
	if it.ID == "" || it.FeedURL != feed.URL() || it.Link != "https://wire.example/eu-japan-rare-earths" || it.Published != "2026-11-24T09:00:00Z" || it.FetchedAt == "" {
		t.Errorf("item fields = %+v", it)
	}
	if strings.Contains(it.Summary, "<p>") {
		t.Errorf("summary still has markup: %q", it.Summary)
	}

	// What anyone can subscribe to: the stream holds the reference story
	// once on each of its three topics, and nothing else.
	got := classifiedSubjects(t, m)
	if want := []string{"defense", "rare_earths", "trade"}; !slices.Equal(got, want) {
		t.Errorf("classified subjects = %v, want %v", got, want)
	}

	// The contract's metrics moved.
	if v := testutil.ToFloat64(m.Metrics.ItemsPublished); v != 3 {
		t.Errorf("items published = %v, want 3", v)
	}
	if v := testutil.ToFloat64(m.Metrics.Notifications.WithLabelValues("webhook", "sent")); v != 1 {
		t.Errorf("webhook sent = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(m.Metrics.PipelineLatency); n != 1 {
		t.Errorf("pipeline latency series = %d", n)
	}
	body := httpGet(t, "http://"+m.Telemetry.Addr()+"/metrics")
	for _, name := range []string{"feedmon_poll_requests_total", "feedmon_items_published_total", "feedmon_items_classified_total", "feedmon_notifications_total", "feedmon_pipeline_latency_seconds"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if got := httpGet(t, "http://"+m.Telemetry.Addr()+"/readyz"); !strings.Contains(got, "ready") {
		t.Errorf("/readyz = %q", got)
	}

	// The alert is in its topics' feeds and the subscriber's, on the
	// metrics listener, as a feed reader reads them.
	for _, path := range []string{"/feeds/topics/defense.atom", "/feeds/topics/trade.json", "/feeds/subscribers/desk.atom", "/feeds/subscribers/desk.json"} {
		feed, err := gofeed.NewParser().ParseString(httpGet(t, "http://"+m.Telemetry.Addr()+path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want := it.ID
		if strings.HasSuffix(path, ".atom") {
			want = feedsout.AtomID(it.ID)
		}
		if len(feed.Items) != 1 || feed.Items[0].GUID != want || feed.Items[0].Link != it.Link {
			t.Errorf("%s: %d entries, want the reference story (%s)", path, len(feed.Items), want)
		}
	}
}

// TestFeedsServedWithTheNotifier: the topic and subscriber feeds are served
// by the processes that run the notifier, which have the subscribers'
// config; a classifier alone does not serve them.
func TestFeedsServedWithTheNotifier(t *testing.T) {
	t.Parallel()
	_, url := bustest.NewListening(t)
	for _, tc := range []struct {
		services []string
		want     int
	}{
		{[]string{app.Classifier}, http.StatusNotFound},
		{[]string{app.Notifier}, http.StatusOK},
	} {
		cfg := testConfig(t, t.TempDir(), "http://127.0.0.1:1/feed.xml", "http://127.0.0.1:1/hook")
		cfg.NATS.URL = url
		m := &app.Main{Config: cfg, Services: tc.services, Log: bustest.Logger(t), Stdout: io.Discard}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		bustest.Eventually(t, 10*time.Second, func() bool { return m.Ready() == nil }, "%v not ready: %v", tc.services, m.Ready())
		resp, err := http.Get("http://" + m.Telemetry.Addr() + "/feeds/topics/trade.atom")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%v: /feeds/topics/trade.atom: %d, want %d", tc.services, resp.StatusCode, tc.want)
		}
		closeMain(t, m)
	}
}

// TestRestartDeliversNothingTwice stops feedmon and starts it again on the
// same store while the feed still serves the old items plus a new one.
func TestRestartDeliversNothingTwice(t *testing.T) {
	t.Parallel()
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	sink := testkit.NewSink(t, secret)
	store := t.TempDir()

	m := start(t, testConfig(t, store, feed.URL(), sink.URL()), io.Discard)
	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) == 1 }, "first delivery")
	closeMain(t, m)

	// A second on-topic story appears while feedmon is down.
	more := bytes.Replace(readFixture(t, "reference.xml"), []byte("<item>"), []byte(`<item>
    <title>Beijing tightens export licences for gallium and germanium</title>
    <link>https://wire.example/gallium</link>
    <guid>wire-0004</guid>
    <description>China's commerce ministry added new licensing rules for exports of gallium and germanium, critical minerals used in chips.</description>
  </item>
  <item>`), 1)
	feed.SetBody(more)
	polled := feed.Requests()

	m2 := start(t, testConfig(t, store, feed.URL(), sink.URL()), io.Discard)
	defer closeMain(t, m2)
	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) >= 2 }, "new item after restart")
	bustest.Eventually(t, 10*time.Second, func() bool { return feed.Requests() >= polled+3 }, "polls after restart")
	bustest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(m2.Metrics.ItemsClassified.WithLabelValues("none"))+
			testutil.ToFloat64(m2.Metrics.ItemsClassified.WithLabelValues("rare_earths")) >= 1
	}, "classifier idle")

	for id, n := range sink.CountByID() {
		if n != 1 {
			t.Errorf("item %s delivered %d times", id, n)
		}
	}
	if got := len(sink.Items()); got != 2 {
		t.Errorf("delivered %d items, want 2", got)
	}
	if v := testutil.ToFloat64(m2.Metrics.ItemsPublished); v != 1 {
		t.Errorf("after restart published %v items, want only the new one", v)
	}
}

// TestStdoutDefaultSubscriber runs the default subscriber's receiver.
func TestStdoutReceiver(t *testing.T) {
	t.Parallel()
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	doc := fmt.Sprintf(`
nats: {listen: "", store_dir: %q}
metrics: {listen: ""}
poll: {interval: 1s, allow_networks: [127.0.0.0/8]}
feeds: [{url: %q}]
subscribers: [{name: console, topics: [rare_earths, defense, trade], stdout: {}}]
`, t.TempDir(), feed.URL())
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	out := &testkit.SyncBuffer{}
	m := start(t, cfg, out)
	defer closeMain(t, m)
	bustest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "\n") }, "no stdout line")
	line := strings.TrimSpace(out.String())
	for _, want := range []string{"rare_earths", "defense", "trade", "EU and Japan agree", "https://wire.example/eu-japan-rare-earths"} {
		if !strings.Contains(line, want) {
			t.Errorf("stdout line %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 0 {
		t.Errorf("want one line, got %q", line)
	}
}

// classifiedSubjects reads the classified stream from the start and
// returns the topic of every message, sorted.
func classifiedSubjects(t *testing.T, m *app.Main) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := m.Bus.Stream(ctx, event.StreamClassified)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		it, err := event.Unmarshal(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(it.Title, "EU and Japan agree") {
			t.Errorf("classified %q on %s", it.Title, msg.Subject)
		}
		topics = append(topics, strings.TrimPrefix(msg.Subject, event.ClassifiedPrefix))
	}
	return slices.Sorted(slices.Values(topics))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestPollerAloneCreatesStreams starts only a poller against an empty NATS:
// it must create the streams itself (no start-up order) and publish.
func TestPollerAloneCreatesStreams(t *testing.T) {
	t.Parallel()
	ns := bustest.NewCluster(t, 1)
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	doc := fmt.Sprintf(`
nats: {url: %q}
metrics: {listen: ""}
poll: {interval: 1s, allow_networks: [127.0.0.0/8]}
feeds: [{url: %q}]
`, ns.URLs(), feed.URL())
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	m := &app.Main{Config: cfg, Services: []string{app.Poller}, Log: bustest.Logger(t)}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer closeMain(t, m)
	bustest.Eventually(t, 30*time.Second, func() bool {
		return testutil.ToFloat64(m.Metrics.ItemsPublished) == 3
	}, "poller alone published %v items, want 3", testutil.ToFloat64(m.Metrics.ItemsPublished))
	bustest.Eventually(t, 10*time.Second, func() bool { return m.Ready() == nil }, "not ready: %v", m.Ready())
}
