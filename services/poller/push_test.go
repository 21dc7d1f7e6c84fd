package poller

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/services/poller/websub"
	"github.com/feedmon/feedmon/services/poller/websub/hubtest"
)

// pushFeed is a feed whose items can be added mid-test, advertising a hub
// in its Link header.
type pushFeed struct {
	*feedServer
	mu    sync.Mutex
	items int
	hub   string
}

func newPushFeed(t *testing.T, hub string, items int) *pushFeed {
	pf := &pushFeed{items: items, hub: hub}
	pf.feedServer = newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="hub", <%s>; rel="self"`, pf.hub, pf.topic()))
		w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
		w.Write(pf.body())
	})
	return pf
}

func (pf *pushFeed) topic() string { return pf.URL + "/feed.xml" }

func (pf *pushFeed) add() {
	pf.mu.Lock()
	pf.items++
	pf.mu.Unlock()
}

func (pf *pushFeed) body() []byte {
	pf.mu.Lock()
	n := pf.items
	pf.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>push</title><link>https://push.example.org/</link>`)
	for i := n; i >= 1; i-- {
		fmt.Fprintf(&b, `<item><title>Story %d</title><link>https://push.example.org/%d</link><guid>story-%d</guid><pubDate>Thu, 26 Nov 2026 12:00:00 GMT</pubDate></item>`, i, i, i)
	}
	b.WriteString(`</channel></rss>`)
	return b.Bytes()
}

// callbackProxy is the one public callback URL in front of poller
// replicas, alternating between them like a load balancer.
type callbackProxy struct {
	*httptest.Server
	mu      sync.Mutex
	targets []*url.URL
	next    atomic.Int64
	hits    []atomic.Int64
}

func newCallbackProxy(t *testing.T) *callbackProxy {
	p := &callbackProxy{hits: make([]atomic.Int64, 4)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		ts := p.targets
		p.mu.Unlock()
		if len(ts) == 0 {
			http.Error(w, "no replica", http.StatusBadGateway)
			return
		}
		i := int(p.next.Add(1)) % len(ts)
		p.hits[i].Add(1)
		httputil.NewSingleHostReverseProxy(ts[i]).ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *callbackProxy) add(addr string) {
	u, _ := url.Parse("http://" + addr)
	p.mu.Lock()
	p.targets = append(p.targets, u)
	p.mu.Unlock()
}

func pushConfig(proxy string, interval time.Duration, feeds ...string) *config.PollerConfig {
	cfg := fastConfig(interval, feeds...)
	cfg.WebSub = config.WebSub{
		Enabled:      true,
		Listen:       "127.0.0.1:0",
		CallbackURL:  proxy + "/websub",
		Lease:        config.Duration(time.Hour),
		PollInterval: config.Duration(time.Hour),
	}
	return cfg
}

var fastPush = WithWebSubOptions(func(o *websub.Options) {
	o.Tick = 20 * time.Millisecond
	o.HubCheck = 100 * time.Millisecond
	o.RetryMin = 200 * time.Millisecond
	o.VerifyTimeout = 2 * time.Second
})

// startPushPoller runs a poller with push behind proxy.
func startPushPoller(t *testing.T, b *bus.Bus, proxy *callbackProxy, cfg *config.PollerConfig, opts ...Option) *harness {
	t.Helper()
	h := newHarness(t, b, cfg, append([]Option{fastPush, noJitter, WithHostGap(0)}, opts...)...)
	proxy.add(h.svc.WebSubAddr())
	run(t, h.svc)
	return h
}

func waitActive(t *testing.T, hub *hubtest.Hub, topic string) {
	t.Helper()
	bustest.Eventually(t, 10*time.Second, func() bool { return len(hub.Subscriptions(topic)) == 1 }, "never subscribed to %s", topic)
}

// TestPushAndPollPublishOnce: items pushed are published at once, through
// the same ids and seen-set as a poll; the same items polled later, or
// pushed again, publish nothing more.
func TestPushAndPollPublishOnce(t *testing.T) {
	t.Parallel()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	feed := newPushFeed(t, hub.URL(), 2)
	proxy := newCallbackProxy(t)
	h := startPushPoller(t, nil, proxy, pushConfig(proxy.URL, 10*time.Minute, feed.URL))
	waitActive(t, hub, feed.topic())
	bustest.Eventually(t, 5*time.Second, func() bool { return streamCount(t, h.bus) == 2 }, "first poll not published")
	var table bytes.Buffer
	bustest.Eventually(t, 5*time.Second, func() bool {
		table.Reset()
		return ListFeeds(context.Background(), h.bus, &table) == nil && strings.Contains(table.String(), "active until 20")
	}, "feeds table does not show push active:\n%s", &table)
	if !strings.Contains(table.String(), "PUSH") {
		t.Errorf("feeds table has no PUSH column:\n%s", table.String())
	}

	for want := 3; want <= 5; want++ {
		feed.add()
		if st := hub.Publish(feed.topic(), feed.body(), "application/rss+xml"); len(st) != 1 || st[0]/100 != 2 {
			t.Fatalf("delivery: %v", st)
		}
		if n := streamCount(t, h.bus); n != want {
			t.Fatalf("after push %d: %d items on NATS, want %d", want-2, n, want)
		}
	}
	// Pushed again, and polled: nothing new.
	hub.Publish(feed.topic(), feed.body(), "application/rss+xml")
	// A poll still in flight ignores PollNow: ask until a poll that
	// started afterwards has recorded its state.
	asked := time.Now()
	bustest.Eventually(t, 10*time.Second, func() bool {
		st, err := h.svc.store.loadState(context.Background(), feed.URL)
		if err == nil && !st.LastFetch.Before(asked) {
			return true
		}
		h.svc.PollNow(feed.URL)
		return false
	}, "PollNow did not poll")
	if n := streamCount(t, h.bus); n != 5 {
		t.Errorf("%d items on NATS after push and poll of the same items, want 5", n)
	}
	// JetStream's duplicate window would hide a second publish on the
	// stream; the seen-set must not even try one.
	if got := h.published(); got != 5 {
		t.Errorf("%v publishes, want 5", got)
	}
	ids := map[string]int{}
	for _, it := range streamItems(t, h.bus) {
		ids[it.ID]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("item %s published %d times", id, n)
		}
	}
	if got := metricValue(h.svc.pushMet.Notifications.WithLabelValues(websub.ResultOK)); got != 4 {
		t.Errorf("ok notifications = %v, want 4", got)
	}
}

// TestPushPollInterval: while push is active the feed is polled every
// websub.poll_interval; when the hub goes, at once and then at its own
// interval.
func TestPushPollInterval(t *testing.T) {
	t.Parallel()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	feed := newPushFeed(t, hub.URL(), 1)
	proxy := newCallbackProxy(t)
	h := startPushPoller(t, nil, proxy, pushConfig(proxy.URL, 10*time.Minute, feed.URL))
	waitActive(t, hub, feed.topic())

	// The poll after activation is scheduled a poll_interval away. (A
	// poll still in flight ignores PollNow: ask until one happens.)
	bustest.Eventually(t, 5*time.Second, func() bool { return h.svc.push.PollInterval(feed.URL, time.Minute) == time.Hour }, "push never active for the scheduler")
	hits := feed.hits.Load()
	var st feedState
	bustest.Eventually(t, 10*time.Second, func() bool {
		if feed.hits.Load() == hits {
			h.svc.PollNow(feed.URL)
			return false
		}
		var err error
		st, err = h.svc.store.loadState(context.Background(), feed.URL)
		return err == nil && st.NextDue.Sub(st.LastFetch) > 30*time.Minute
	}, "next poll while push is active %s after the last, want about 1h", st.NextDue.Sub(st.LastFetch))

	hits = feed.hits.Load()
	hub.Close()
	bustest.Eventually(t, 10*time.Second, func() bool { return feed.hits.Load() > hits }, "feed not polled when the hub went away")
	bustest.Eventually(t, 5*time.Second, func() bool {
		var err error
		st, err = h.svc.store.loadState(context.Background(), feed.URL)
		d := st.NextDue.Sub(st.LastFetch)
		return err == nil && d > 5*time.Minute && d < 15*time.Minute
	}, "after the hub went, next poll %s after the last, want about 10m", st.NextDue.Sub(st.LastFetch))

	var out bytes.Buffer
	if err := ListFeeds(context.Background(), h.bus, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "failed: websub: hub") {
		t.Errorf("feeds table does not show the failure:\n%s", out.String())
	}
}

// TestPushReplicas: two pollers behind one callback URL that alternates;
// one subscription, each pushed item published once whichever replica
// took it.
func TestPushReplicas(t *testing.T) {
	t.Parallel()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	feed := newPushFeed(t, hub.URL(), 1)
	proxy := newCallbackProxy(t)
	b := bustest.New(t)
	cfg := pushConfig(proxy.URL, 10*time.Minute, feed.URL)
	startPushPoller(t, b, proxy, cfg, WithPollerID("a"))
	startPushPoller(t, b, proxy, cfg, WithPollerID("b"))
	waitActive(t, hub, feed.topic())
	bustest.Eventually(t, 5*time.Second, func() bool { return streamCount(t, b) == 1 }, "first poll not published")
	for want := 2; want <= 7; want++ {
		feed.add()
		hub.Publish(feed.topic(), feed.body(), "application/rss+xml")
		if n := streamCount(t, b); n != want {
			t.Fatalf("%d items on NATS, want %d", n, want)
		}
	}
	subs := 0
	for _, r := range hub.Requests() {
		if r.Mode == "subscribe" {
			subs++
		}
	}
	if subs != 1 {
		t.Errorf("%d subscribe requests from two replicas, want 1", subs)
	}
	if proxy.hits[0].Load() == 0 || proxy.hits[1].Load() == 0 {
		t.Errorf("callbacks per replica: %d, %d", proxy.hits[0].Load(), proxy.hits[1].Load())
	}
}

// TestHubAddressCheck: hub requests go through the poller's address check.
func TestHubAddressCheck(t *testing.T) {
	t.Parallel()
	hub := hubtest.New() // on 127.0.0.1
	t.Cleanup(hub.Close)
	pf := &pushFeed{items: 1, hub: hub.URL()}
	srv := newFeedServerOn(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="hub"`, pf.hub))
		w.Write(pf.body())
	})
	proxy := newCallbackProxy(t)
	cfg := pushConfig(proxy.URL, 10*time.Minute, srv.URL)
	cfg.Poll.AllowNetworks = []string{"127.0.0.2/32"}
	h := startPushPoller(t, nil, proxy, cfg)
	var out bytes.Buffer
	bustest.Eventually(t, 10*time.Second, func() bool {
		out.Reset()
		return ListFeeds(context.Background(), h.bus, &out) == nil && strings.Contains(out.String(), "address not allowed")
	}, "hub on a refused address not reported:\n%s", &out)
	if len(hub.Requests()) != 0 {
		t.Errorf("hub got %d requests through the address check", len(hub.Requests()))
	}
}

// TestSeenSetConcurrentWriters: a push and a poll of one feed (or two
// replicas) writing the seen-set at once both keep their items.
func TestSeenSetConcurrentWriters(t *testing.T) {
	t.Parallel()
	const feedURL = "https://example.org/feed.xml"
	h := newHarness(t, nil, testConfig(feedURL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round, ids := range [][2]string{{"x1", "y1"}, {"x2", "y2"}} {
		a, err := h.svc.store.loadSeen(ctx, feedURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := h.svc.store.loadSeen(ctx, feedURL)
		a.IDs = append([]string{ids[0]}, a.IDs...)
		a.index()
		b.IDs = append([]string{ids[1]}, b.IDs...)
		b.index()
		if err := h.svc.store.saveSeen(ctx, feedURL, a, minSeen); err != nil {
			t.Fatal(err)
		}
		if err := h.svc.store.saveSeen(ctx, feedURL, b, minSeen); err != nil {
			t.Fatal(err)
		}
		got, _ := h.svc.store.loadSeen(ctx, feedURL)
		for _, id := range ids {
			if _, ok := got.ids[id]; !ok {
				t.Errorf("round %d: %s lost: %v", round, id, got.IDs)
			}
		}
	}
}

// TestPushReloadUnsubscribes: a feed removed by a reload (SIGHUP) is
// unsubscribed at its hub.
func TestPushReloadUnsubscribes(t *testing.T) {
	t.Parallel()
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	feed := newPushFeed(t, hub.URL(), 1)
	other := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	proxy := newCallbackProxy(t)
	h := startPushPoller(t, nil, proxy, pushConfig(proxy.URL, 10*time.Minute, feed.URL, other.URL))
	waitActive(t, hub, feed.topic())
	if err := h.svc.Reload(*pushConfig(proxy.URL, 10*time.Minute, other.URL)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return len(hub.Subscriptions(feed.topic())) == 0 }, "removed feed still subscribed")
	var table bytes.Buffer
	if err := ListFeeds(context.Background(), h.bus, &table); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table.String(), "active until") {
		t.Errorf("feeds table after the reload:\n%s", table.String())
	}
}

// TestWebSubMetricsFromStart: the contract's WebSub series exist from
// start-up, with every label value, even with push not configured.
func TestWebSubMetricsFromStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, testConfig("https://example.org/feed.xml"))
	if h.svc.WebSubAddr() != "" {
		t.Errorf("callback server listening without websub.callback_url: %s", h.svc.WebSubAddr())
	}
	want := map[string]int{"feedmon_websub_subscriptions": 3, "feedmon_websub_notifications_total": 4}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n, ok := want[mf.GetName()]; ok {
			if len(mf.GetMetric()) != n {
				t.Errorf("%s: %d series, want %d", mf.GetName(), len(mf.GetMetric()), n)
			}
			delete(want, mf.GetName())
		}
	}
	for name := range want {
		t.Errorf("%s not registered at start-up", name)
	}
}

// TestPushDiscoverySources: a feed is subscribed whether it advertises its
// hub by Link header, by atom:link in RSS or by link in Atom, or names
// none and has hub: in the config.
func TestPushDiscoverySources(t *testing.T) {
	t.Parallel()
	rss := `<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>r</title>%s<item><title>a</title><guid>a</guid></item></channel></rss>`
	atom := `<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>a</title><id>urn:a</id><updated>2026-11-26T12:00:00Z</updated>%s<entry><title>a</title><id>urn:a:1</id><updated>2026-11-26T12:00:00Z</updated></entry></feed>`
	tests := []struct {
		name      string
		serve     func(hub string) http.HandlerFunc
		configHub bool
	}{
		{"link header", func(hub string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="hub"`, hub))
				fmt.Fprintf(w, rss, "")
			}
		}, false},
		{"atom:link in RSS", func(hub string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, rss, fmt.Sprintf(`<atom:link rel="hub" href="%s"/>`, hub))
			}
		}, false},
		{"link in Atom", func(hub string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/atom+xml")
				fmt.Fprintf(w, atom, fmt.Sprintf(`<link rel="hub" href="%s"/>`, hub))
			}
		}, false},
		{"hub in the config", func(string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, rss, "") }
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := hubtest.New()
			t.Cleanup(hub.Close)
			feed := newFeedServer(t, tt.serve(hub.URL()))
			proxy := newCallbackProxy(t)
			cfg := pushConfig(proxy.URL, 10*time.Minute, feed.URL)
			if tt.configHub {
				cfg.WebSub.Enabled = false
				on := true
				cfg.Feeds[0].WebSub, cfg.Feeds[0].Hub = &on, hub.URL()
			}
			startPushPoller(t, nil, proxy, cfg)
			waitActive(t, hub, feed.URL)
			r := hub.Requests()[0]
			if len(r.Secret) == 0 || len(r.Secret) >= 200 {
				t.Errorf("secret of %d bytes", len(r.Secret))
			}
		})
	}
}
