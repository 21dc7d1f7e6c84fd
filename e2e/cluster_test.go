package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

// clusterNotifyWorkers is notify.workers in TestClusterProcesses: the most
// deliveries one notifier has in flight, so the most a crash of one can
// re-send.
const clusterNotifyWorkers = 8

// genFeeds serves feeds at /f/N whose items appear over time once begin is
// called: feed N shows item i once i*step has passed. Before begin every
// feed is empty. Every item is a trade story.
type genFeeds struct {
	*httptest.Server
	mu      sync.Mutex
	start   time.Time
	step    time.Duration
	perFeed int
}

func newGenFeeds(t *testing.T, perFeed int) *genFeeds {
	g := &genFeeds{perFeed: perFeed}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := strings.TrimPrefix(r.URL.Path, "/f/")
		g.mu.Lock()
		visible := 0
		if !g.start.IsZero() {
			visible = min(g.perFeed, int(time.Since(g.start)/g.step)+1)
		}
		g.mu.Unlock()
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>gen ` + n + `</title><link>https://gen.example/</link>`)
		for i := visible - 1; i >= 0; i-- {
			fmt.Fprintf(&b, `<item><title>EU imposes anti-dumping duties on Chinese steel imports, report %s-%d</title><link>%s</link><guid>g-%s-%d</guid><description>The European Commission set provisional duties on steel imports.</description></item>`, n, i, genLink(n, i), n, i)
		}
		b.WriteString(`</channel></rss>`)
		w.Header().Set("Content-Type", "application/rss+xml")
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(g.Close)
	return g
}

func genLink(feed string, i int) string { return fmt.Sprintf("https://gen.example/%s/%d", feed, i) }

// begin starts the clock: all items are visible after over.
func (g *genFeeds) begin(over time.Duration) {
	g.mu.Lock()
	g.start, g.step = time.Now(), over/time.Duration(g.perFeed)
	g.mu.Unlock()
}

// natsNode is one nats-server process of a cluster, restartable on the same
// ports and store.
type natsNode struct {
	name        string
	args        []string
	monitorPort int
	proc        *proc
}

// startNATSCluster starts n nats-server processes with JetStream, routed to
// each other, and waits until every one reports healthy (JetStream current
// with a meta leader). It returns the nodes and the client URL list.
func startNATSCluster(t *testing.T, n int) ([]*natsNode, string) {
	t.Helper()
	var clientPorts, routePorts, monitorPorts []int
	for range n {
		clientPorts = append(clientPorts, freePort(t))
		routePorts = append(routePorts, freePort(t))
		monitorPorts = append(monitorPorts, freePort(t))
	}
	var routes, urls []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	var nodes []*natsNode
	for i := range n {
		nd := &natsNode{
			name:        fmt.Sprintf("n%d", i+1),
			monitorPort: monitorPorts[i],
		}
		nd.args = []string{
			"-js", "-sd", t.TempDir(),
			"--server_name", nd.name,
			"-a", "127.0.0.1", "-p", fmt.Sprint(clientPorts[i]),
			"-m", fmt.Sprint(monitorPorts[i]),
			"--cluster_name", "feedmon-e2e",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]),
			"--routes", strings.Join(routes, ","),
		}
		nd.start(t)
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.waitHealthy(t)
	}
	return nodes, strings.Join(urls, ",")
}

func (nd *natsNode) start(t *testing.T) { nd.proc = startProc(t, "nats-server", nd.args...) }

// waitHealthy waits for the node's /healthz: 200 once JetStream is enabled,
// in contact with a meta leader and current with it.
func (nd *natsNode) waitHealthy(t *testing.T) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", nd.monitorPort)
	bustest.Eventually(t, 60*time.Second, func() bool { return httpStatus(url) == http.StatusOK }, "nats node %s not healthy", nd.name)
}

// metaLeader is the name of the JetStream meta leader as node nd sees it.
func (nd *natsNode) metaLeader() string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", nd.monitorPort))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&jsz) != nil {
		return ""
	}
	return jsz.Meta.Leader
}

func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// service is one feedmon service process with its metrics address.
type service struct {
	name    string
	metrics string
	proc    *proc
}

func startService(t *testing.T, svc, cfg string) *service {
	t.Helper()
	s := &service{name: svc, metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	s.proc = startProc(t, "feedmon", svc, "-config", cfg, "-metrics-listen", s.metrics)
	return s
}

// waitReady waits until every one of svcs answers /readyz with 200, all
// within timeout.
func waitReady(t *testing.T, timeout time.Duration, svcs ...*service) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, s := range svcs {
		bustest.Eventually(t, time.Until(deadline), func() bool {
			return httpStatus("http://"+s.metrics+"/readyz") == http.StatusOK
		}, "%s on %s: /readyz not 200", s.name, s.metrics)
	}
}

// TestClusterProcesses is scale-out as a user runs it: a 3-node cluster of
// nats-server processes, R3, two replicas of each feedmon service as
// separate processes. Midway the JetStream meta leader and one replica of
// each service are killed with SIGKILL; later they are restarted (the node
// on its ports and store). The sink must end with every item exactly once,
// apart from re-sends of the deliveries the killed notifier had in flight,
// which must carry the first delivery's Idempotency-Key.
func TestClusterProcesses(t *testing.T) {
	skipShort(t)
	const feeds, perFeed = 10, 300
	const total = feeds * perFeed
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%5.1fs "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}

	nodes, urls := startNATSCluster(t, 3)
	step("nats cluster healthy: %s", urls)

	gen := newGenFeeds(t, perFeed)
	sink := testkit.NewSink(t, secret)
	var feedList strings.Builder
	for i := range feeds {
		fmt.Fprintf(&feedList, "  - url: %s/f/%d\n", gen.URL, i)
	}
	cfg := writeConfig(t, fmt.Sprintf(`
nats: {url: %q, replicas: 3}
poll: {interval: 1s, timeout: 2s, allow_networks: [127.0.0.0/8], per_host: 8}
notify: {workers: %d}
feeds:
%s
subscribers:
  - name: desk
    topics: [trade]
    webhook: {url: %q, secret: %q}
`, urls, clusterNotifyWorkers, feedList.String(), sink.URL(), secret))

	svcNames := []string{"notifier", "classifier", "poller"}
	var first, all []*service
	for _, svc := range svcNames {
		a, b := startService(t, svc, cfg), startService(t, svc, cfg)
		first = append(first, a)
		all = append(all, a, b)
	}
	// All six start at once, as a deployment does. Replicas creating the
	// same R3 stream at the same moment can wait out feedmon's 5 s setup
	// timeout for a reply nats-server never sends (the stream is created;
	// the next attempt finds it), so readiness may take a few such rounds.
	waitReady(t, 90*time.Second, all...)
	step("6 services ready")
	gen.begin(30 * time.Second)

	unique := func() int { return len(sink.CountByID()) }
	waitItems := func(n int, timeout time.Duration, what string) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for unique() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d items after %s", what, unique(), total, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitItems(total/3, 90*time.Second, "a third of the items")

	// Kill the meta leader: the harshest node to lose.
	victim := nodes[2]
	if leader := nodes[0].metaLeader(); leader != "" {
		for _, nd := range nodes {
			if nd.name == leader {
				victim = nd
			}
		}
	}
	victim.proc.kill9()
	for _, s := range first {
		s.proc.kill9()
	}
	step("killed nats %s (meta leader) and one replica of each service at %d of %d items", victim.name, unique(), total)

	waitItems(2*total/3, 90*time.Second, "two thirds of the items with a node down")
	victim.start(t)
	var restarted, survivors []*service
	for _, svc := range svcNames {
		restarted = append(restarted, startService(t, svc, cfg))
	}
	for _, s := range all {
		if !slices.Contains(first, s) {
			survivors = append(survivors, s)
		}
	}
	step("restarted nats %s and one replica of each service at %d of %d items", victim.name, unique(), total)
	victim.waitHealthy(t)
	waitReady(t, 60*time.Second, restarted...)
	step("restarted node healthy, replicas ready at %d of %d items", unique(), total)

	waitItems(total, 120*time.Second, "every item")
	step("every item delivered")

	// Let redeliveries that are still due play out before counting.
	b := bustest.Connect(t, urls)
	bustest.Eventually(t, 60*time.Second, func() bool { return bustest.PendingWork(b) == 0 }, "consumers still have work pending")
	step("consumers drained")
	waitReady(t, 30*time.Second, append(survivors, restarted...)...)

	checkClusterDeliveries(t, sink, feeds, perFeed)
}

// checkClusterDeliveries checks the sink against the generated feeds: every
// item delivered, each under one id, signed, classified and with a story;
// an item delivered twice only as a crash-window re-send with the same
// Idempotency-Key, and no more such re-sends than one notifier's workers.
func checkClusterDeliveries(t *testing.T, sink *testkit.Sink, feeds, perFeed int) {
	t.Helper()
	want := map[string]bool{}
	for n := range feeds {
		for i := range perFeed {
			want[genLink(fmt.Sprint(n), i)] = true
		}
	}
	deliveries := sink.Deliveries()
	count := map[string]int{}
	keys := map[string]map[string]bool{}
	linkOf := map[string]string{}
	badSig, noStory, noTopic, unexpected, idClash := 0, 0, 0, 0, 0
	for _, d := range deliveries {
		if !d.SignatureOK || !d.StandardOK {
			badSig++
		}
		if d.IdempotencyKey == "" {
			t.Errorf("delivery without Idempotency-Key: %d items", len(d.Items))
		}
		for _, it := range d.Items {
			count[it.ID]++
			if keys[it.ID] == nil {
				keys[it.ID] = map[string]bool{}
			}
			keys[it.ID][d.IdempotencyKey] = true
			if l, ok := linkOf[it.ID]; ok && l != it.Link {
				idClash++
			}
			linkOf[it.ID] = it.Link
			if !want[it.Link] {
				unexpected++
				if unexpected <= 5 {
					t.Errorf("unexpected item %s %q", it.ID, it.Link)
				}
			}
			if it.StoryID == "" {
				noStory++
			}
			if !slices.Contains(it.Topics, "trade") {
				noTopic++
			}
		}
	}
	got := map[string]bool{}
	for _, l := range linkOf {
		got[l] = true
	}
	missing := 0
	for l := range want {
		if !got[l] {
			missing++
			if missing <= 5 {
				t.Errorf("missing item %s", l)
			}
		}
	}
	resent, dups := 0, 0
	for id, n := range count {
		switch {
		case n == 1:
		case n == 2 && len(keys[id]) == 1:
			resent++
		default:
			dups++
			if dups <= 5 {
				t.Errorf("item %s (%s) delivered %d times with %d idempotency keys", id, linkOf[id], n, len(keys[id]))
			}
		}
	}
	t.Logf("%d deliveries, %d distinct items of %d; re-sent with the same Idempotency-Key after the crash: %d",
		len(deliveries), len(count), len(want), resent)
	if missing > 0 {
		t.Errorf("%d of %d items never delivered", missing, len(want))
	}
	if len(got) != len(count) {
		t.Errorf("%d distinct item ids for %d distinct links", len(count), len(got))
	}
	if idClash > 0 {
		t.Errorf("%d deliveries carry an id already seen with another link", idClash)
	}
	if dups > 0 {
		t.Errorf("%d items delivered more than once outside the crash window (or with another Idempotency-Key)", dups)
	}
	if resent > clusterNotifyWorkers {
		t.Errorf("%d items re-sent, more than the %d deliveries the killed notifier had in flight", resent, clusterNotifyWorkers)
	}
	if badSig > 0 {
		t.Errorf("%d deliveries with a bad signature", badSig)
	}
	if noStory > 0 {
		t.Errorf("%d delivered items without a story_id", noStory)
	}
	if noTopic > 0 {
		t.Errorf("%d delivered items without the topic trade", noTopic)
	}
}
