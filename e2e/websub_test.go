package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/services/poller/websub/hubtest"
)

// stories are published one by one; each is on one of the desk's topics
// and unlike the others (no story grouping between them).
var stories = []struct{ title, text string }{
	{"China tightens export controls on rare earth magnets", "Beijing added seven rare earth elements to its export control list, requiring licences for shipments of magnets used in electric vehicles and fighter jets."},
	{"Australia and the United States sign a critical minerals pact", "The two governments will co-finance a rare earth processing plant in Western Australia to reduce dependence on Chinese refining."},
	{"EU imposes anti-dumping duties on Chinese steel imports", "The European Commission set provisional anti-dumping duties of up to 30% on steel imports from China after complaints from EU producers."},
	{"Pentagon awards contract to expand domestic rare earth separation", "The Department of Defense awarded a contract to a Texas company to separate heavy rare earths needed for missile guidance systems."},
	{"Japan and India agree on tariff cuts in a new trade deal", "Tokyo and New Delhi agreed to phase out tariffs on most industrial goods, a trade agreement that also covers export restrictions on critical minerals."},
	{"NATO allies raise defense spending to fund missile production", "Allied defense ministers agreed to expand ammunition and air defense missile production, with new procurement contracts across Europe."},
}

// storyFeed serves the stories published so far, advertising its hub in a
// Link header.
type storyFeed struct {
	*httptest.Server
	hub  string
	mu   sync.Mutex
	n    int
	reqs int
}

func (f *storyFeed) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs
}

func (f *storyFeed) URL() string { return f.Server.URL + "/feed.xml" }

func (f *storyFeed) publish() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *storyFeed) body() []byte {
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Push wire</title><link>https://push.example/</link><language>en</language>`)
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, `<item><title>%s</title><link>https://push.example/%d</link><guid>push-%d</guid><description>%s</description></item>`, stories[i].title, i, i, stories[i].text)
	}
	b.WriteString(`</channel></rss>`)
	return b.Bytes()
}

// TestWebSubFreshness is the acceptance check of push: with poll.interval
// 10m, a story published and pinged reaches the signed webhook within 3 s
// (p50 under 2 s), by fat ping (the feed in the body) and by light ping
// (an empty body: fetch now); bad and missing signatures publish nothing;
// a verification for a topic never asked for gets 404; no item twice;
// when the hub dies, the feed is polled again.
func TestWebSubFreshness(t *testing.T) {
	skipShort(t)
	t.Parallel()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	feed := &storyFeed{hub: hub.URL()}
	feed.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		feed.mu.Lock()
		feed.reqs++
		feed.mu.Unlock()
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="hub", <%s>; rel="self"`, feed.hub, feed.URL()))
		w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
		w.Write(feed.body())
	}))
	t.Cleanup(feed.Close)
	sink := testkit.NewSink(t, secret)
	cbPort, metricsPort := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
nats: {listen: "", store_dir: %q}
poll:
  interval: 10m
  allow_networks: [127.0.0.0/8]
websub:
  enabled: true
  listen: 127.0.0.1:%d
  callback_url: http://127.0.0.1:%d/websub
feeds:
  - url: %s
subscribers:
  - name: desk
    topics: [rare_earths, defense, trade]
    webhook: {url: %q, secret: %q}
`, t.TempDir(), cbPort, cbPort, feed.URL(), sink.URL(), secret))
	p := startProc(t, "feedmon", "run", "-config", cfg, "-metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)

	bustest.Eventually(t, 30*time.Second, func() bool { return len(hub.Subscriptions(feed.URL())) == 1 }, "feed never subscribed")
	sub := hub.Subscriptions(feed.URL())[0]
	if sub.Secret == "" || len(sub.Secret) >= 200 || !strings.HasPrefix(sub.Callback, fmt.Sprintf("http://127.0.0.1:%d/websub/", cbPort)) {
		t.Fatalf("subscription %+v", sub)
	}
	bustest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(httpBody(metrics), `feedmon_websub_subscriptions{state="active"} 1`)
	}, "gauge never active")

	// Bad and missing signatures publish nothing (the body is a story the
	// feed itself never shows).
	forged := []byte(strings.Replace(string(feed.body()), "<channel>", "<channel><item><title>Forged rare earth export ban</title><guid>forged</guid></item>", 1))
	for _, sig := range []string{"", hubtest.Sign("sha256", "guess", forged)} {
		if st, err := hub.Deliver(sub.Callback, forged, "application/rss+xml", sig); err != nil || st/100 != 2 {
			t.Fatalf("forged delivery: %d %v", st, err)
		}
	}
	if m := httpBody(metrics); !strings.Contains(m, `feedmon_websub_notifications_total{result="bad_signature"} 2`) || !strings.Contains(m, "feedmon_items_published_total 0") {
		t.Errorf("after forged deliveries:\n%s", grep(m, "feedmon_websub_notifications_total", "feedmon_items_published_total"))
	}
	// A verification for a topic never asked for.
	if st, ok := hub.Verify("subscribe", "https://never.example/feed", sub.Callback, time.Hour); st != http.StatusNotFound || ok {
		t.Errorf("verification of a topic never asked for: %d", st)
	}

	var lat []time.Duration
	for i := range stories {
		feed.publish()
		start := time.Now()
		var body []byte // light ping: "something changed"
		if i%2 == 0 {
			body = feed.body() // fat ping: the feed itself
		}
		if st := hub.Publish(feed.URL(), body, "application/rss+xml"); len(st) != 1 || st[0]/100 != 2 {
			t.Fatalf("story %d: delivery statuses %v", i, st)
		}
		link := fmt.Sprintf("https://push.example/%d", i)
		bustest.Eventually(t, 10*time.Second, func() bool {
			return slices.ContainsFunc(sink.Items(), func(it *event.Item) bool { return it.Link == link })
		}, "story %d (%s) never delivered", i, stories[i].title)
		lat = append(lat, time.Since(start))
	}
	t.Logf("publication -> webhook: %v", lat)
	for i, d := range lat {
		if d > 3*time.Second {
			t.Errorf("story %d took %s, want < 3s", i, d)
		}
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	if p50 := sorted[len(sorted)/2]; p50 > 2*time.Second {
		t.Errorf("p50 %s, want < 2s", p50)
	}
	for id, n := range sink.CountByID() {
		if n != 1 {
			t.Errorf("item %s delivered %d times", id, n)
		}
	}
	for _, d := range sink.Deliveries() {
		if !d.SignatureOK {
			t.Error("webhook signature does not verify")
		}
	}

	// The hub dies: the feed is polled again at once, not 10 minutes on.
	polls := feed.requests()
	hub.Close()
	bustest.Eventually(t, 60*time.Second, func() bool { return feed.requests() > polls }, "feed not polled after the hub died")
	if m := httpBody(metrics); !strings.Contains(m, `feedmon_websub_subscriptions{state="failed"} 1`) {
		t.Errorf("after the hub died:\n%s", grep(m, "feedmon_websub_subscriptions"))
	}

	if code, took := p.stop(t); code != 0 || took > 10*time.Second {
		t.Errorf("exit %d after %s", code, took)
	}
}

func httpBody(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
