// Package bench measures the whole pipeline on this machine: a local feed
// server with N feeds × M items, feedmon (all services, embedded NATS) and a
// local webhook sink. It reports how long everything takes, items/s at each
// stage, fetch → delivery latency, CPU time and peak memory. `feedmon bench`
// runs it.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/services/poller"
	"github.com/feedmon/feedmon/services/poller/websub/hubtest"
)

// Options says what to run.
type Options struct {
	Feeds int // feeds on the local server
	Items int // items per feed
	// Rate is the offered load in items/s across all feeds: items appear
	// over time at this rate. 0 serves every item from the first fetch.
	Rate float64
	// Timeout bounds the whole run.
	Timeout time.Duration
	// StoreDir holds the embedded JetStream store (a temporary directory
	// when empty; removed afterwards).
	StoreDir string
	Log      *slog.Logger
	// AtEnd runs once everything is delivered, before anything is shut
	// down (the command writes a heap profile there).
	AtEnd func() error
	// Interval overrides poll.interval (default 1s with a rate, else 10s).
	Interval time.Duration
	// Push subscribes every feed through a local WebSub hub, which pings
	// feedmon with the feed as each item is published (needs a rate).
	Push bool
	// Stages splits fetch → delivery at the moments the items and the
	// classified streams stored each item (read after the run).
	Stages bool
}

// Result is what one run measured.
type Result struct {
	Feeds, Items, Total int
	Rate                float64
	// Time from start until the last item was published, classified and
	// delivered.
	Published, Classified, Delivered time.Duration
	// Items per second at each stage over the run.
	PublishRate, ClassifyRate, DeliverRate float64
	// Fetch → delivery latency.
	LatencyP50, LatencyP99, LatencyMax time.Duration
	// Publication → delivery (with a rate: each item is published at a
	// known time on the feed server).
	FreshP50, FreshP99, FreshMax time.Duration
	Push                         bool
	Interval                     time.Duration
	CPUSeconds                   float64
	PeakRSSMiB                   float64
	// Stages, with Options.Stages: where fetch → delivery goes.
	Stages []Stage
}

// Run runs one benchmark.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Feeds < 1 || o.Items < 1 {
		return nil, fmt.Errorf("bench: feeds and items must be at least 1")
	}
	if o.Push && o.Rate <= 0 {
		return nil, fmt.Errorf("bench: push needs a rate (items are published over time)")
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	total := o.Feeds * o.Items

	store := o.StoreDir
	if store == "" {
		dir, err := os.MkdirTemp("", "feedmon-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		store = dir
	}

	start := time.Now()
	feeds, err := newFeedServer(o, start)
	if err != nil {
		return nil, err
	}
	defer feeds.Close()
	sink, err := newSink(total, feeds.publishedAt, o.Stages)
	if err != nil {
		return nil, err
	}
	defer sink.Close()

	// Re-polls should find something new when items trickle in, and
	// should not dominate when everything is there from the start.
	interval := time.Second
	if o.Rate == 0 {
		interval = 10 * time.Second
	}
	if o.Interval > 0 {
		interval = o.Interval
	}
	var fl strings.Builder
	for i := 0; i < o.Feeds; i++ {
		fmt.Fprintf(&fl, "  - url: %s/f/%d\n", feeds.url, i)
	}
	push := ""
	if o.Push {
		hub := hubtest.New()
		defer hub.Close()
		feeds.hub = hub
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		push = fmt.Sprintf("websub: {enabled: true, listen: %q, callback_url: \"http://%s/websub\"}", addr, addr)
		// Nothing is published until every feed is subscribed.
		feeds.restart(time.Now().Add(24 * time.Hour))
	}
	doc := fmt.Sprintf(`
nats: {listen: "", store_dir: %q}
metrics: {listen: ""}
poll: {interval: %s, workers: 64, per_host: 64, allow_networks: [127.0.0.0/8], max_items: %d}
notify: {workers: 64}
%s
feeds:
%s
subscribers:
  - name: bench
    topics: [trade]
    webhook: {url: %q}
`, store, interval, max(o.Items, 1), push, fl.String(), sink.url)
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}

	cpu0 := procstat.CPU()
	start = time.Now()
	if !o.Push {
		feeds.restart(start)
	}
	// Every feed is on one local host: the poller's politeness gap
	// between requests to a host would measure itself, not the pipeline.
	m := &app.Main{Config: cfg, Log: o.Log, Stdout: io.Discard, Name: "feedmon-bench", PollerOptions: []poller.Option{poller.WithHostGap(0)}}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	defer m.Close()
	if o.Push {
		if err := feeds.awaitSubscribed(ctx); err != nil {
			return nil, err
		}
		start = time.Now()
		feeds.restart(start)
		go feeds.ping(ctx, start)
	}

	res := &Result{Feeds: o.Feeds, Items: o.Items, Total: total, Rate: o.Rate, Push: o.Push, Interval: interval}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// Each stage counts an item after handing it on (the classifier after
	// its publication is acked), so the notifier can deliver the last item
	// a moment before the classifier counts it: wait until every stage has
	// counted them all, and date a stage no later than the stage after it.
	for res.Delivered == 0 || res.Classified == 0 || res.Published == 0 {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: timed out with %d of %d items delivered", sink.count.Load(), total)
		case <-tick.C:
		}
		el := time.Since(start)
		if res.Published == 0 && testutil.ToFloat64(m.Metrics.ItemsPublished) >= float64(total) {
			res.Published = el
		}
		if res.Classified == 0 && testutil.ToFloat64(m.Metrics.ItemsClassified.WithLabelValues("trade")) >= float64(total) {
			res.Classified = el
		}
		if res.Delivered == 0 && sink.count.Load() >= int64(total) {
			res.Delivered = el
		}
	}
	res.Classified = min(res.Classified, res.Delivered)
	res.Published = min(res.Published, res.Classified)
	res.CPUSeconds = (procstat.CPU() - cpu0).Seconds()
	if o.AtEnd != nil {
		if err := o.AtEnd(); err != nil {
			return nil, err
		}
	}
	res.PeakRSSMiB = float64(procstat.PeakRSS()) / (1 << 20)
	res.PublishRate = float64(total) / res.Published.Seconds()
	res.ClassifyRate = float64(total) / res.Classified.Seconds()
	res.DeliverRate = float64(total) / res.Delivered.Seconds()
	lat, fresh := sink.latencies()
	res.LatencyP50, res.LatencyP99, res.LatencyMax = percentiles(lat)
	res.FreshP50, res.FreshP99, res.FreshMax = percentiles(fresh)
	if o.Stages {
		if res.Stages, err = stages(ctx, m.Bus, sink.arrivals()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// percentiles of sorted durations: p50, p99, max.
func percentiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	return d[len(d)/2], d[min(len(d)-1, len(d)*99/100)], d[len(d)-1]
}

// Print writes r as a small table.
func (r *Result) Print(w io.Writer) {
	load := "all items present at the first fetch"
	if r.Rate > 0 {
		load = fmt.Sprintf("offered load %.0f items/s", r.Rate)
	}
	how := fmt.Sprintf("polled every %s", r.Interval)
	if r.Push {
		how = fmt.Sprintf("pushed by a local WebSub hub (safety poll every %s)", r.Interval)
	}
	fmt.Fprintf(w, "feeds %d × items %d = %d items; %s; %s\n", r.Feeds, r.Items, r.Total, load, how)
	fmt.Fprintf(w, "  %-11s %10s %12s\n", "stage", "done after", "items/s")
	fmt.Fprintf(w, "  %-11s %10s %12.0f\n", "published", r.Published.Round(time.Millisecond), r.PublishRate)
	fmt.Fprintf(w, "  %-11s %10s %12.0f\n", "classified", r.Classified.Round(time.Millisecond), r.ClassifyRate)
	fmt.Fprintf(w, "  %-11s %10s %12.0f\n", "delivered", r.Delivered.Round(time.Millisecond), r.DeliverRate)
	fmt.Fprintf(w, "  fetch→delivery latency p50 %s  p99 %s  max %s\n",
		r.LatencyP50.Round(time.Millisecond), r.LatencyP99.Round(time.Millisecond), r.LatencyMax.Round(time.Millisecond))
	if r.Rate > 0 {
		fmt.Fprintf(w, "  publication→delivery latency p50 %s  p99 %s  max %s\n",
			r.FreshP50.Round(time.Millisecond), r.FreshP99.Round(time.Millisecond), r.FreshMax.Round(time.Millisecond))
	}
	printStages(w, r.Stages)
	fmt.Fprintf(w, "  CPU %.1f s (%.2f ms per item), peak RSS %.0f MiB\n", r.CPUSeconds, 1000*r.CPUSeconds/float64(r.Total), r.PeakRSSMiB)
}

// feedServer serves feed n at /f/n with conditional GET. With a rate,
// item i of feed n appears at start + (i*feeds+n)/rate.
type feedServer struct {
	srv   *http.Server
	url   string
	o     Options
	start atomic.Int64
	// hub, in push mode, is advertised by every feed and pinged as each
	// item is published.
	hub *hubtest.Hub
	// bufs are the buffers feed bodies are rendered into. Bodies are not
	// kept: the server is part of the measured process, and at 100,000
	// feeds they would be 50 MB of its heap that feedmon does not hold. A
	// re-poll with the feed's ETag is answered 304 without rendering, so
	// a body is rendered once per change of its feed, as it would be kept.
	bufs sync.Pool
}

func newFeedServer(o Options, start time.Time) (*feedServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: feed server: %w", err)
	}
	fs := &feedServer{o: o, url: "http://" + ln.Addr().String(), bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	fs.start.Store(start.UnixNano())
	fs.srv = &http.Server{Handler: http.HandlerFunc(fs.serve), ReadHeaderTimeout: 10 * time.Second}
	go fs.srv.Serve(ln)
	return fs, nil
}

func (fs *feedServer) restart(t time.Time) { fs.start.Store(t.UnixNano()) }

func (fs *feedServer) Close() { fs.srv.Close() }

func (fs *feedServer) visible(n int) int {
	if fs.o.Rate == 0 {
		return fs.o.Items
	}
	el := time.Since(time.Unix(0, fs.start.Load())).Seconds()
	// Items appear round-robin across feeds at the offered rate.
	if el < 0 {
		return 0
	}
	k := int(el*fs.o.Rate) + 1 // items visible in all
	v := k / fs.o.Feeds
	if n < k%fs.o.Feeds {
		v++
	}
	return min(fs.o.Items, v)
}

// publishedAt is when the item linked as link appeared on its feed: item
// i of feed n at start + (i*feeds+n)/rate. False without a rate.
func (fs *feedServer) publishedAt(link string) (time.Time, bool) {
	if fs.o.Rate == 0 {
		return time.Time{}, false
	}
	var n, i int
	if _, err := fmt.Sscanf(link, "https://bench.example/%d/%d", &n, &i); err != nil {
		return time.Time{}, false
	}
	j := float64(i*fs.o.Feeds + n)
	return time.Unix(0, fs.start.Load()).Add(time.Duration(j / fs.o.Rate * float64(time.Second))), true
}

// awaitSubscribed waits until the hub has verified a subscription of
// every feed.
func (fs *feedServer) awaitSubscribed(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		done := 0
		for n := 0; n < fs.o.Feeds; n++ {
			if len(fs.hub.Subscriptions(fs.topic(n))) > 0 {
				done++
			}
		}
		if done == fs.o.Feeds {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %d of %d feeds subscribed", done, fs.o.Feeds)
		case <-t.C:
		}
	}
}

// ping plays the publisher: as each item appears, the hub distributes
// its feed to the subscriber (a fat ping).
func (fs *feedServer) ping(ctx context.Context, start time.Time) {
	total := fs.o.Feeds * fs.o.Items
	for j := 0; j < total; j++ {
		at := start.Add(time.Duration(float64(j) / fs.o.Rate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		n := j % fs.o.Feeds
		buf := fs.render(n, fs.visible(n))
		fs.hub.Publish(fs.topic(n), buf.Bytes(), "application/rss+xml; charset=utf-8")
		fs.bufs.Put(buf)
	}
}

func (fs *feedServer) topic(n int) string { return fmt.Sprintf("%s/f/%d", fs.url, n) }

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/f/"))
	if err != nil || n < 0 || n >= fs.o.Feeds {
		http.NotFound(w, r)
		return
	}
	v := fs.visible(n)
	if fs.hub != nil {
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="hub", <%s>; rel="self"`, fs.hub.URL(), fs.topic(n)))
	}
	// Feed n's body depends on v alone, so "n-v" is its entity tag.
	etag := `"` + strconv.Itoa(n) + "-" + strconv.Itoa(v) + `"`
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	buf := fs.render(n, v)
	w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
	w.Header().Set("ETag", etag)
	w.Write(buf.Bytes())
	fs.bufs.Put(buf)
}

// render returns feed n with its first v items, newest first, in a buffer
// of fs.bufs, to be put back once written.
func (fs *feedServer) render(n, v int) *bytes.Buffer {
	b := fs.bufs.Get().(*bytes.Buffer)
	b.Reset()
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>bench %d</title><link>https://bench.example/</link>`, n)
	for i := v - 1; i >= 0; i-- {
		fmt.Fprintf(b, `<item><title>Brussels imposes anti-dumping duties on imports of Chinese steel, report %d-%d</title><link>https://bench.example/%d/%d</link><guid>b-%d-%d</guid><description>The European Commission set provisional anti-dumping duties of up to 30%% on steel imports from China after complaints from EU producers.</description></item>`, n, i, n, i, n, i)
	}
	b.WriteString(`</channel></rss>`)
	return b
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
