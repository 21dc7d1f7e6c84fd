package websub

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/poller/websub/hubtest"
)

const (
	testFeed  = "https://blog.example.org/feed.xml"
	testTopic = "https://blog.example.org/feed.xml?self"
)

// recorder is the poller's side of the Ingester interface, recording what
// the manager hands over.
type recorder struct {
	mu      sync.Mutex
	bodies  []string
	fetches []string
	pollNow []string
	fail    error
}

func (r *recorder) Ingest(_ context.Context, feedURL string, body []byte, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, string(body))
	return r.fail
}

func (r *recorder) Fetch(_ context.Context, feedURL string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetches = append(r.fetches, feedURL)
	return nil
}

func (r *recorder) PollNow(feedURL string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pollNow = append(r.pollNow, feedURL)
}

func (r *recorder) counts() (bodies, fetches, pollNow int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies), len(r.fetches), len(r.pollNow)
}

type env struct {
	t    *testing.T
	kv   jetstream.KeyValue
	hub  *hubtest.Hub
	m    *Manager
	rec  *recorder
	met  *Metrics
	base string // callback base URL
}

type envOption func(*Options)

func withCallback(u string) envOption { return func(o *Options) { o.Config.CallbackURL = u } }
func withKV(kv jetstream.KeyValue) envOption {
	return func(o *Options) { o.KV = kv }
}

// newEnv starts a manager on loopback with a real embedded NATS and a test
// hub, short timings, and runs it until the test ends.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Config: config.WebSub{
			Listen:       ln.Addr().String(),
			CallbackURL:  "http://" + ln.Addr().String() + "/websub",
			Lease:        config.Duration(time.Hour),
			PollInterval: config.Duration(time.Hour),
		},
		MaxBody:       1 << 16,
		Client:        &http.Client{Timeout: 5 * time.Second},
		UserAgent:     "feedmon-test",
		Listener:      ln,
		Log:           bustest.Logger(t),
		Tick:          20 * time.Millisecond,
		VerifyTimeout: 2 * time.Second,
		HubCheck:      100 * time.Millisecond,
		RetryMin:      100 * time.Millisecond,
		RetryMax:      time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.KV == nil {
		b := bustest.New(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if o.KV, err = b.KV(ctx, event.BucketWebSub); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, kv: o.KV, rec: &recorder{}, base: o.Config.CallbackURL}
	o.Ingest = e.rec
	e.met = NewMetrics(prometheus.NewRegistry())
	o.Metrics = e.met
	e.hub = hubtest.New()
	t.Cleanup(e.hub.Close)
	if e.m, err = New(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func push(on bool) *bool { return &on }

// manage makes the manager subscribe testFeed at hub on topic.
func (e *env) manage(hub, topic string) {
	e.m.SetFeeds([]config.Feed{{URL: testFeed, WebSub: push(true)}})
	e.m.Polled(testFeed, &Discovery{Hub: hub, Topic: topic})
}

func (e *env) record() *Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := (&store{kv: e.kv}).get(ctx, Key(testFeed))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) waitState(state string) *Record {
	e.t.Helper()
	var r *Record
	bustest.Eventually(e.t, 10*time.Second, func() bool {
		r = e.record()
		return r != nil && r.State == state
	}, "subscription never %s (last: %+v)", state, r)
	return r
}

func (e *env) callback() string {
	r := e.record()
	return e.base + "/" + Key(testFeed) + "/" + r.Path
}

func (e *env) active() *Record {
	e.t.Helper()
	e.manage(e.hub.URL(), testTopic)
	r := e.waitState(StateActive)
	bustest.Eventually(e.t, 5*time.Second, func() bool { return len(e.hub.Subscriptions(testTopic)) == 1 }, "hub never recorded the subscription")
	return r
}

func (e *env) notifications(result string) float64 {
	return testutil.ToFloat64(e.met.Notifications.WithLabelValues(result))
}

func (e *env) requests(mode string) []hubtest.Request {
	var out []hubtest.Request
	for _, r := range e.hub.Requests() {
		if r.Mode == mode {
			out = append(out, r)
		}
	}
	return out
}

// TestSubscribe is websub.rocks 100's subscription: a form POST with
// callback, mode, topic, lease and a secret under 200 bytes; the hub's
// verification is answered; the lease is recorded and push is active.
func TestSubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if got := e.m.PollInterval(testFeed, time.Minute); got != time.Minute {
		t.Fatalf("PollInterval before subscribing = %s", got)
	}
	r := e.active()
	subs := e.requests("subscribe")
	if len(subs) != 1 {
		t.Fatalf("subscribe requests = %+v", subs)
	}
	s := subs[0]
	if s.Topic != testTopic || s.Lease != 3600 || !strings.HasPrefix(s.Callback, e.base+"/") {
		t.Errorf("request = %+v", s)
	}
	if len(s.Secret) == 0 || len(s.Secret) >= 200 || s.Secret != r.Secret {
		t.Errorf("secret %q (%d bytes)", s.Secret, len(s.Secret))
	}
	if until := time.Until(r.Expires); until < 59*time.Minute || until > time.Hour {
		t.Errorf("lease expires in %s, want about 1h", until)
	}
	if got := e.m.PollInterval(testFeed, time.Minute); got != time.Hour {
		t.Errorf("PollInterval while active = %s, want websub.poll_interval", got)
	}
	bustest.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(e.met.Subscriptions.WithLabelValues(StateActive)) == 1
	}, "gauge never showed the active subscription")
	if v := e.hub.Verifications(); len(v) != 1 || !v[0].OK {
		t.Errorf("verifications = %+v", v)
	}
}

// TestSubscribeSyncVerification: a hub that verifies before it even
// answers the subscription request finds the subscription pending.
func TestSubscribeSyncVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.hub.SetSyncVerify(true)
	e.active()
	if v := e.hub.Verifications(); len(v) != 1 || !v[0].OK {
		t.Errorf("verifications = %+v", v)
	}
}

// TestContent covers websub.rocks 300-302 and the signature algorithms:
// signed content is taken, a wrong or missing signature is dropped with a
// 2xx, an empty body means fetch now, and strangers get 404.
func TestContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	cb := e.callback()
	body := []byte(`<rss version="2.0"><channel><title>x</title></channel></rss>`)

	for i, algo := range []string{"sha1", "sha256", "sha384", "sha512"} {
		e.hub.SetAlgorithm(algo)
		st := e.hub.Publish(testTopic, body, "application/rss+xml")
		if len(st) != 1 || st[0]/100 != 2 {
			t.Fatalf("%s: delivery statuses %v", algo, st)
		}
		if n, _, _ := e.rec.counts(); n != i+1 {
			t.Fatalf("%s: %d bodies taken, want %d", algo, n, i+1)
		}
	}
	if got := e.notifications(ResultOK); got != 4 {
		t.Errorf("ok notifications = %v", got)
	}

	for name, sig := range map[string]string{
		"wrong secret": hubtest.Sign("sha256", "not-the-secret", body),
		"other body":   hubtest.Sign("sha256", e.record().Secret, []byte("other")),
		"missing":      "",
	} {
		st, err := e.hub.Deliver(cb, body, "application/rss+xml", sig)
		if err != nil || st/100 != 2 {
			t.Errorf("%s signature: status %d, %v; want 2xx", name, st, err)
		}
	}
	if n, _, _ := e.rec.counts(); n != 4 {
		t.Errorf("%d bodies taken after bad signatures, want 4", n)
	}
	if got := e.notifications(ResultBadSignature); got != 3 {
		t.Errorf("bad_signature = %v, want 3", got)
	}

	// An empty body: something changed, fetch it.
	st, _ := e.hub.Deliver(cb, nil, "", hubtest.Sign("sha256", e.record().Secret, nil))
	if _, f, _ := e.rec.counts(); st/100 != 2 || f != 1 {
		t.Errorf("empty body: status %d, fetches %d", st, f)
	}

	// Unknown callback paths.
	for _, u := range []string{e.base + "/nope/abc", e.base + "/" + Key(testFeed) + "/wrong", e.base + "/x"} {
		st, _ := e.hub.Deliver(u, body, "", hubtest.Sign("sha256", e.record().Secret, body))
		if st != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", u, st)
		}
	}
	if got := e.notifications(ResultUnknown); got != 3 {
		t.Errorf("unknown = %v, want 3", got)
	}

	// A body over the cap.
	big := bytes.Repeat([]byte("x"), 1<<17)
	if st, _ := e.hub.Deliver(cb, big, "", hubtest.Sign("sha256", e.record().Secret, big)); st != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", st)
	}

	// Content the poller cannot take: counted, and the feed is polled.
	e.rec.mu.Lock()
	e.rec.fail = context.DeadlineExceeded
	e.rec.mu.Unlock()
	e.hub.Publish(testTopic, body, "")
	if _, _, p := e.rec.counts(); p != 1 || e.notifications(ResultError) != 2 {
		t.Errorf("failed ingest: pollNow %d, error count %v", p, e.notifications(ResultError))
	}
}

// TestVerificationRefused is websub.rocks 205 and more: a verification is
// answered only for exactly the mode and topic pending or active on that
// callback path.
func TestVerificationRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	cb := e.callback()
	tests := []struct{ name, mode, topic, callback string }{
		{"205 other topic", "subscribe", "https://blog.example.org/other", cb},
		{"unsubscribe never asked", "unsubscribe", testTopic, cb},
		{"wrong path", "subscribe", testTopic, e.base + "/" + Key(testFeed) + "/0000"},
		{"topic never asked, unknown path", "subscribe", "https://never.example.org/", e.base + "/never-0000/abcd"},
		{"unknown mode", "frobnicate", testTopic, cb},
	}
	for _, tt := range tests {
		st, ok := e.hub.Verify(tt.mode, tt.topic, tt.callback, time.Hour)
		if st != http.StatusNotFound || ok {
			t.Errorf("%s: status %d echoed %v, want 404", tt.name, st, ok)
		}
	}
	// Without a challenge there is nothing to echo.
	resp, err := http.Get(cb + "?hub.mode=subscribe&hub.topic=" + url.QueryEscape(testTopic))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("no challenge: %d", resp.StatusCode)
	}
	// The right one still is answered (a hub re-verifying).
	if st, ok := e.hub.Verify("subscribe", testTopic, cb, time.Hour); !ok {
		t.Errorf("re-verification of the active subscription: %d", st)
	}
}

// TestHubRedirects is websub.rocks 203 and 204: the subscription request
// follows a hub's redirect as a POST; a permanent one moves the hub.
func TestHubRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			old := e.hub.Redirect("/old", status)
			e.manage(old, testTopic)
			r := e.waitState(StateActive)
			subs := e.requests("subscribe")
			if len(subs) != 1 || subs[0].Path != "/hub" || subs[0].Secret == "" {
				t.Fatalf("requests at the hub = %+v", subs)
			}
			want := old
			if status == http.StatusMovedPermanently || status == http.StatusPermanentRedirect {
				want = e.hub.URL()
			}
			bustest.Eventually(t, 5*time.Second, func() bool { r = e.record(); return r.Hub == want }, "hub recorded as %q, want %q", r.Hub, want)
			if r.Advertised != old {
				t.Errorf("advertised hub = %q", r.Advertised)
			}
		})
	}
}

// TestLeaseRenewal: a short lease is renewed before it ends, and push
// stays active throughout.
func TestLeaseRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.hub.GrantLease(2 * time.Second)
	first := e.active()
	bustest.Eventually(t, 10*time.Second, func() bool { return len(e.requests("subscribe")) >= 3 }, "lease never renewed")
	r := e.record()
	if !r.ActiveAt(time.Now()) || !r.Expires.After(first.Expires) {
		t.Errorf("after renewals: %+v (first expired %s)", r, first.Expires)
	}
	if _, _, p := e.rec.counts(); p != 0 {
		t.Errorf("push lapsed %d times during renewals", p)
	}
	if r.Failures != 0 || r.State != StateActive {
		t.Errorf("renewals failed: %+v", r)
	}
	for _, s := range e.requests("subscribe") {
		if s.Secret != first.Secret || s.Topic != testTopic {
			t.Errorf("renewal %+v changed secret or topic", s)
		}
	}
}

// TestHubGone: a hub that stops answering fails the subscription and the
// feed is polled at once; push is tried again later.
func TestHubGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	e.hub.Close()
	bustest.Eventually(t, 10*time.Second, func() bool { _, _, p := e.rec.counts(); return p > 0 }, "feed never handed back to polling")
	r := e.waitState(StateFailed)
	if !strings.Contains(r.Error, "hub") || r.RetryAt.IsZero() {
		t.Errorf("failed record = %+v", r)
	}
	if got := e.m.PollInterval(testFeed, time.Minute); got != time.Minute {
		t.Errorf("PollInterval after the hub went = %s", got)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return e.record().Failures >= 2 }, "subscription never retried")
}

// TestSubscribeRefused: anything but 202/204 fails and is retried with
// backoff until the hub accepts.
func TestSubscribeRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.hub.SetStatus(http.StatusInternalServerError)
	e.manage(e.hub.URL(), testTopic)
	r := e.waitState(StateFailed)
	if !strings.Contains(r.Error, "500") {
		t.Errorf("error = %q", r.Error)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return len(e.requests("subscribe")) >= 2 }, "never retried")
	e.hub.SetStatus(http.StatusAccepted)
	e.waitState(StateActive)
}

func TestDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	st, err := e.hub.Deny(testTopic, e.callback(), "not on this hub")
	if err != nil || st != http.StatusOK {
		t.Fatalf("denial answered %d, %v", st, err)
	}
	r := e.record()
	if r.State != StateFailed || r.Error != "denied by hub: not on this hub" {
		t.Errorf("after denial: %+v", r)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { _, _, p := e.rec.counts(); return p > 0 }, "denied feed not polled")
	if st, _ := e.hub.Deny("https://other.example.org/", e.callback(), "x"); st != http.StatusNotFound {
		t.Errorf("denial of another topic: %d", st)
	}
}

// TestUnsubscribe: a feed leaving the config, or push switched off for it,
// is unsubscribed, the hub's verification answered and the record gone.
func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	for name, feeds := range map[string][]config.Feed{
		"removed":    nil,
		"switch off": {{URL: testFeed, WebSub: push(false)}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.active()
			e.m.SetFeeds(feeds)
			bustest.Eventually(t, 10*time.Second, func() bool { return e.record() == nil }, "record never removed")
			un := e.requests("unsubscribe")
			if len(un) != 1 || un[0].Topic != testTopic {
				t.Fatalf("unsubscribe requests = %+v", un)
			}
			// The hub records its verification once our answer is back.
			bustest.Eventually(t, 5*time.Second, func() bool {
				var ok bool
				for _, v := range e.hub.Verifications() {
					ok = ok || v.Mode == "unsubscribe" && v.OK
				}
				return ok && len(e.hub.Subscriptions(testTopic)) == 0
			}, "unsubscription not verified: %+v", e.hub.Verifications())
		})
	}
}

// TestTopicMoved: a new self URL means leaving the old topic and
// subscribing to the new one, on the same callback.
func TestTopicMoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	const moved = "https://blog.example.org/new-feed.xml"
	e.m.Polled(testFeed, &Discovery{Hub: e.hub.URL(), Topic: moved})
	bustest.Eventually(t, 10*time.Second, func() bool {
		r := e.record()
		return r.Topic == moved && r.State == StateActive && len(r.Unsub) == 0
	}, "topic never moved")
	bustest.Eventually(t, 5*time.Second, func() bool {
		return len(e.hub.Subscriptions(testTopic)) == 0 && len(e.hub.Subscriptions(moved)) == 1
	}, "hub subscriptions: old %d new %d", len(e.hub.Subscriptions(testTopic)), len(e.hub.Subscriptions(moved)))
}

// TestReplicasBehindOneCallback: two managers share KV behind one callback
// URL that alternates between them. One subscribes; whichever the hub
// reaches answers its verification and takes its content.
func TestReplicasBehindOneCallback(t *testing.T) {
	t.Parallel()
	var targets [2]atomic.Pointer[url.URL]
	var hits [2]atomic.Int64
	var next atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := next.Add(1) % 2
		hits[i].Add(1)
		httputil.NewSingleHostReverseProxy(targets[i].Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	a := newEnv(t, withCallback(proxy.URL+"/websub"))
	b := newEnv(t, withCallback(proxy.URL+"/websub"), withKV(a.kv))
	for i, e := range []*env{a, b} {
		u, _ := url.Parse("http://" + e.m.Addr())
		targets[i].Store(u)
	}
	a.active()
	body := []byte("<rss/>")
	for range 6 {
		if st := a.hub.Publish(testTopic, body, ""); len(st) != 1 || st[0]/100 != 2 {
			t.Fatalf("delivery statuses %v", st)
		}
	}
	na, _, _ := a.rec.counts()
	nb, _, _ := b.rec.counts()
	if na+nb != 6 || na == 0 || nb == 0 {
		t.Errorf("bodies taken: a %d b %d, want 6 between both", na, nb)
	}
	if len(a.requests("subscribe")) != 1 || len(b.requests("subscribe")) != 0 {
		t.Errorf("subscribe requests: a's hub %d, b's hub %d", len(a.requests("subscribe")), len(b.requests("subscribe")))
	}
	if hits[0].Load() == 0 || hits[1].Load() == 0 {
		t.Errorf("proxy hits %d/%d", hits[0].Load(), hits[1].Load())
	}
	// b follows a's record through the KV watch.
	bustest.Eventually(t, 5*time.Second, func() bool { return b.m.PollInterval(testFeed, time.Minute) == time.Hour }, "replica b never saw the active subscription")
}

// TestRateLimit: a flood on one callback is refused with 429.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.active()
	cb := e.callback()
	limited := 0
	for range 3 * perCallbackBurst {
		st, _ := e.hub.Deliver(cb, nil, "", "")
		if st == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("no request of a flood was rate-limited")
	}
}
