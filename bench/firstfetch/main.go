// Command firstfetch times `feedmon run`'s first fetch the way an operator
// sees it: a local feed server carries N feeds × M items (RSS, HTML
// descriptions of about 600 characters) on many loopback hosts, feedmon
// starts with all three services and no subscribers, and the clock runs
// from the moment /readyz answers 200 until every item is in
// FEEDMON_ITEMS. In the same run, before feedmon starts, it times a plain
// HTTP GET + gofeed parse of the same feeds at the same concurrency as
// feedmon's poll.workers, the floor any poller could reach on this machine.
//
// Several binaries given to -feedmon run interleaved (a, b, a, b, ...), so a
// before/after comparison sees the same machine load:
//
//	go build -o /tmp/feedmon-after ./cmd/feedmon
//	go run ./bench/firstfetch -feedmon /tmp/feedmon-before,/tmp/feedmon-after -runs 5
//
// Feeds are on -hosts distinct hosts (127.0.x.y addresses, one listener
// each), feed n on host n mod hosts, so the poller's per-host politeness
// (poll.per_host, the gap between requests to one host) applies as it
// would on the internet.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "firstfetch:", err)
		os.Exit(1)
	}
}

type options struct {
	binaries []string
	runs     int
	feeds    int
	items    int
	hosts    int
	workers  int
	timeout  time.Duration
	keep     bool
}

func run() error {
	var o options
	bins := flag.String("feedmon", "./feedmon", "feedmon binaries to time, comma-separated; runs alternate between them")
	flag.IntVar(&o.runs, "runs", 1, "runs of each binary")
	flag.IntVar(&o.feeds, "feeds", 1000, "feeds on the local feed server")
	flag.IntVar(&o.items, "items", 50, "items per feed")
	flag.IntVar(&o.hosts, "hosts", 250, "distinct hosts the feeds are spread over (feed n on host n mod hosts)")
	flag.IntVar(&o.workers, "workers", 64, "poll.workers, and the concurrency of the plain fetch+parse")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up on one run after this long")
	flag.BoolVar(&o.keep, "keep", false, "keep each run's directory (config, store, log)")
	flag.Parse()
	if o.feeds < 1 || o.items < 1 || o.hosts < 1 || o.hosts > 250*250 || o.runs < 1 || o.workers < 1 {
		return errors.New("-feeds, -items, -runs, -workers must be at least 1, -hosts within 1..62500")
	}
	for _, b := range strings.Split(*bins, ",") {
		abs, err := filepath.Abs(b)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return err
		}
		o.binaries = append(o.binaries, abs)
	}

	srv, err := newFeedServer(o.feeds, o.items, o.hosts)
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Printf("%d feeds × %d items = %d items on %d hosts, %.0f KiB per feed; load average %s\n",
		o.feeds, o.items, o.feeds*o.items, o.hosts, float64(srv.bytes)/float64(o.feeds)/1024, loadavg())

	results := map[string][]result{}
	for r := 0; r < o.runs; r++ {
		for _, bin := range o.binaries {
			raw, err := srv.fetchAll(o.workers)
			if err != nil {
				return err
			}
			res, err := timeRun(bin, srv, o)
			if err != nil {
				return fmt.Errorf("%s: %w", bin, err)
			}
			res.raw = raw
			results[bin] = append(results[bin], res)
			fmt.Printf("run %d %s: %s\n", r+1, filepath.Base(bin), res)
		}
	}
	fmt.Printf("medians of %d runs; load average %s\n", o.runs, loadavg())
	for _, bin := range o.binaries {
		rs := results[bin]
		fmt.Printf("  %-24s %s\n", filepath.Base(bin), median(rs))
	}
	return nil
}

// result is one run of one binary.
type result struct {
	ready time.Duration // process start → /readyz 200
	all   time.Duration // /readyz 200 → every item in FEEDMON_ITEMS
	// fromStart is process start → every item in FEEDMON_ITEMS.
	fromStart time.Duration
	msgs      uint64        // messages in FEEDMON_ITEMS at the end (exactly the items: each once)
	cpu       time.Duration // the feedmon process's CPU until then
	peakRSS   int64         // bytes
	// classifiedThen is how many items the classifier had acknowledged
	// when the last one reached FEEDMON_ITEMS: a poller that finishes
	// sooner because the classifier lags has not done the work sooner.
	classifiedThen uint64
	// drained is /readyz 200 → the classifier has acknowledged every
	// item; drainCPU and drainRSS are the process's CPU and peak RSS then.
	drained  time.Duration
	drainCPU time.Duration
	drainRSS int64
	total    int
	raw      rawResult
	loadavg1 float64
}

func (r result) String() string {
	return fmt.Sprintf("ready %s, all %d items in FEEDMON_ITEMS %s after /readyz (%.0f items/s; %d messages; %s after start), CPU %.2f s (%.3f ms/item), peak RSS %.0f MiB, %d classified by then; all classified %s after /readyz, CPU %.2f s (%.3f ms/item), peak RSS %.0f MiB; plain fetch+parse %s (%.0f items/s, CPU %.3f ms/item incl. the feed server); load %.2f",
		r.ready.Round(time.Millisecond), r.total, r.all.Round(time.Millisecond), float64(r.total)/r.all.Seconds(), r.msgs, r.fromStart.Round(time.Millisecond),
		r.cpu.Seconds(), 1000*r.cpu.Seconds()/float64(r.total), float64(r.peakRSS)/(1<<20), r.classifiedThen,
		r.drained.Round(time.Millisecond), r.drainCPU.Seconds(), 1000*r.drainCPU.Seconds()/float64(r.total), float64(r.drainRSS)/(1<<20),
		r.raw.wall.Round(time.Millisecond), float64(r.raw.items)/r.raw.wall.Seconds(), 1000*r.raw.cpu.Seconds()/float64(r.raw.items), r.loadavg1)
}

func median(rs []result) string {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	all := med(func(r result) float64 { return r.all.Seconds() })
	return fmt.Sprintf("all items after /readyz %.2f s (%.0f items/s), after start %.2f s, CPU %.3f ms/item, peak RSS %.0f MiB, %.0f classified by then; all classified after /readyz %.2f s, CPU %.3f ms/item, peak RSS %.0f MiB; plain fetch+parse %.0f items/s",
		all, float64(rs[0].total)/all, med(func(r result) float64 { return r.fromStart.Seconds() }),
		med(func(r result) float64 { return 1000 * r.cpu.Seconds() / float64(r.total) }),
		med(func(r result) float64 { return float64(r.peakRSS) / (1 << 20) }),
		med(func(r result) float64 { return float64(r.classifiedThen) }),
		med(func(r result) float64 { return r.drained.Seconds() }),
		med(func(r result) float64 { return 1000 * r.drainCPU.Seconds() / float64(r.total) }),
		med(func(r result) float64 { return float64(r.drainRSS) / (1 << 20) }),
		med(func(r result) float64 { return float64(r.raw.items) / r.raw.wall.Seconds() }))
}

// timeRun starts bin as `feedmon run` against srv's feeds and waits for
// every item to be in FEEDMON_ITEMS.
func timeRun(bin string, srv *feedServer, o options) (result, error) {
	res := result{total: o.feeds * o.items, loadavg1: loadavg1()}
	dir, err := os.MkdirTemp("", "feedmon-firstfetch-")
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	var feeds strings.Builder
	for n := 0; n < o.feeds; n++ {
		fmt.Fprintf(&feeds, "  - url: %s\n", srv.url(n))
	}
	// Defaults everywhere else: poll.interval 5m, per_host 2 (and its gap
	// between requests to one host), the built-in topics, no subscribers.
	cfg := fmt.Sprintf(`nats: {listen: %q, store_dir: %q}
metrics: {listen: %q}
poll: {workers: %d, allow_networks: [127.0.0.0/8]}
feeds:
%s`, natsAddr, filepath.Join(dir, "store"), metricsAddr, o.workers, feeds.String())
	cfgPath := filepath.Join(dir, "feedmon.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return res, err
	}
	logf, err := os.Create(filepath.Join(dir, "feedmon.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// waitUntil polls cond every 5 ms until it holds, feedmon exits or the
	// run's time is up; what names the wait in the error.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	waitUntil := func(what string, cond func() bool) error {
		for !cond() {
			select {
			case err := <-exited:
				return fmt.Errorf("feedmon exited before %s: %v (log in %s)", what, err, dir)
			case <-ctx.Done():
				return fmt.Errorf("not %s within %s (log in %s)", what, o.timeout, dir)
			case <-tick.C:
			}
		}
		return nil
	}

	hc := &http.Client{Timeout: time.Second}
	err = waitUntil("/readyz 200", func() bool {
		resp, err := hc.Get("http://" + metricsAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return res, err
	}
	ready := time.Now()
	res.ready = ready.Sub(start)

	// A /readyz that says ready before the embedded NATS listens (as
	// feedmon did before 2026-12) must not fail the run: connect with retries.
	nc, err := nats.Connect("nats://"+natsAddr, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", natsAddr, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stored := func() uint64 {
		st, err := js.Stream(ctx, "FEEDMON_ITEMS")
		if err != nil {
			return 0
		}
		info, err := st.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	err = waitUntil("every item in FEEDMON_ITEMS", func() bool {
		if res.msgs = stored(); res.msgs < uint64(res.total) {
			return false
		}
		res.all = time.Since(ready)
		res.fromStart = time.Since(start)
		res.cpu, res.peakRSS = procStats(cmd.Process.Pid)
		res.classifiedThen, _ = classified(ctx, js)
		return true
	})
	if err != nil {
		return res, err
	}
	err = waitUntil("every item classified", func() bool {
		if n, done := classified(ctx, js); !done || n < uint64(res.total) {
			return false
		}
		res.drained = time.Since(ready)
		res.drainCPU, res.drainRSS = procStats(cmd.Process.Pid)
		return true
	})
	if err != nil {
		return res, err
	}
	// Anything published twice would show up here (Nats-Msg-Id dedupe):
	// by now the poller has long finished.
	res.msgs = stored()
	return res, nil
}

// classified is how many items the classifier's consumer has acknowledged
// (its ack floor, a stream sequence: FEEDMON_ITEMS holds nothing else), and
// whether nothing is pending or awaiting acknowledgement.
func classified(ctx context.Context, js jetstream.JetStream) (n uint64, done bool) {
	c, err := js.Consumer(ctx, "FEEDMON_ITEMS", "classifier")
	if err != nil {
		return 0, false
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.AckFloor.Stream, info.NumPending == 0 && info.NumAckPending == 0
}

// feedServer serves feed n at /f/n on host n mod hosts.
type feedServer struct {
	bodies [][]byte
	bytes  int
	hosts  []string
	srvs   []*http.Server
	client *http.Client
}

func newFeedServer(feeds, items, hosts int) (*feedServer, error) {
	fs := &feedServer{bodies: make([][]byte, feeds)}
	for n := range feeds {
		fs.bodies[n] = body(n, items)
		fs.bytes += len(fs.bodies[n])
	}
	h := http.HandlerFunc(fs.serve)
	for i := range hosts {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.%d:0", i/250, i%250+1))
		if err != nil {
			fs.close()
			return nil, fmt.Errorf("feed server: %w", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		fs.srvs = append(fs.srvs, srv)
		fs.hosts = append(fs.hosts, ln.Addr().String())
	}
	fs.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return fs, nil
}

func (fs *feedServer) close() {
	for _, s := range fs.srvs {
		s.Close()
	}
}

func (fs *feedServer) url(n int) string {
	return fmt.Sprintf("http://%s/f/%d", fs.hosts[n%len(fs.hosts)], n)
}

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/f/"))
	if err != nil || n < 0 || n >= len(fs.bodies) {
		http.NotFound(w, r)
		return
	}
	etag := `"` + strconv.Itoa(n) + `"`
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
	w.Header().Set("ETag", etag)
	w.Write(fs.bodies[n])
}

// rawResult is a plain GET + parse of every feed.
type rawResult struct {
	wall  time.Duration
	cpu   time.Duration // this process: the fetching and the serving
	items int
}

// fetchAll GETs and parses every feed, workers at once.
func (fs *feedServer) fetchAll(workers int) (rawResult, error) {
	var (
		next, items atomic.Int64
		wg          sync.WaitGroup
		errOnce     sync.Once
		firstErr    error
	)
	cpu0 := selfCPU()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := gofeed.NewParser()
			for {
				n := int(next.Add(1)) - 1
				if n >= len(fs.bodies) {
					return
				}
				f, err := fs.fetch(p, fs.url(n))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				items.Add(int64(len(f.Items)))
			}
		}()
	}
	wg.Wait()
	// Up to workers idle connections per host would stay open (file
	// descriptors this process needs for the run that follows).
	fs.client.CloseIdleConnections()
	if firstErr != nil {
		return rawResult{}, firstErr
	}
	return rawResult{wall: time.Since(start), cpu: selfCPU() - cpu0, items: int(items.Load())}, nil
}

func (fs *feedServer) fetch(p *gofeed.Parser, u string) (*gofeed.Feed, error) {
	resp, err := fs.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return p.Parse(bytes.NewReader(b))
}

// body is feed n with its items, newest first; each description is HTML of
// about 600 characters.
func body(n, items int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Feed %d</title><link>https://news%d.example/</link><description>News desk %d</description>`, n, n, n)
	for i := items - 1; i >= 0; i-- {
		fmt.Fprintf(&b, `<item><title>Ministers agree on new export rules for critical minerals, report %d-%d</title><link>https://news%d.example/%d</link><guid isPermaLink="false">n%d-i%d</guid><pubDate>%s</pubDate>`,
			n, i, n, i, n, i, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
		fmt.Fprintf(&b, `<description><![CDATA[<p>Trade ministers meeting in <b>Brussels</b> on day %d agreed on a framework for export licences covering lithium, cobalt and rare earth elements, according to a statement seen by reporters (item %d of feed %d).</p><p>The <a href="https://news%d.example/%d/background">background</a> to the talks: supply chains for batteries and defence electronics depend on a handful of refiners, and officials want <em>early warning</em> when shipments slow down.</p><p>Industry groups welcomed the move but asked for clear timelines and a single application portal.</p>]]></description></item>`,
			i, i, n, n, i)
	}
	b.WriteString(`</channel></rss>`)
	return b.Bytes()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// procStats reads a process's CPU time (user+system) and peak RSS from /proc.
func procStats(pid int) (cpu time.Duration, peak int64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				peak = kb << 10
			}
		}
	}
	return cpu, peak
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func loadavg1() float64 {
	v, _ := strconv.ParseFloat(strings.Fields(loadavg() + " ")[0], 64)
	return v
}
