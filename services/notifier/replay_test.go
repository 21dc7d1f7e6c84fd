package notifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/services/notifier/webhook"
)

const replaySecret = "replay-secret"

// replaySink is a signed webhook receiver for one subscriber that fails
// the test on a request whose signatures do not verify.
func replaySink(t *testing.T) *sink {
	t.Helper()
	return newSink(t, nil)
}

// postsByItem counts the webhook POSTs that carried each item, checking
// both signatures of every one.
func postsByItem(t *testing.T, sk *sink) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range sk.requests() {
		if !testkit.VerifySignature(replaySecret, r.body, r.header.Get(webhook.HeaderSignature)) {
			t.Errorf("X-Feedmon-Signature does not verify: %s", r.body)
		}
		if err := testkit.VerifyStandard(replaySecret, r.body, r.header); err != nil {
			t.Errorf("Standard Webhooks signature: %v", err)
		}
		var body struct {
			Subscriber string        `json:"subscriber"`
			Items      []*event.Item `json:"items"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		for _, it := range body.Items {
			n[it.ID]++
		}
	}
	return n
}

func deskSub(url string, topics ...string) config.Subscriber {
	return config.Subscriber{Name: "desk", Topics: topics, Webhook: &config.Webhook{URL: url, Secret: replaySecret}}
}

// replayItems publishes items of which desk (trade) wants t1, t2 (twice
// classified: trade and defense) and t3, and not d1.
func replayItems(t *testing.T, b *bus.Bus) []string {
	t.Helper()
	publishItem(t, b, testItem("t1", "trade"))
	publishItem(t, b, testItem("d1", "defense"))
	publishItem(t, b, testItem("t2", "defense", "trade"))
	publishItem(t, b, testItem("t3", "trade"))
	return []string{"t1", "t2", "t3"}
}

type lines struct {
	mu sync.Mutex
	l  []ReplayLine
}

func (ls *lines) add(l ReplayLine) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.l = append(ls.l, l)
}

func (ls *lines) results() map[string]string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := map[string]string{}
	for _, l := range ls.l {
		out[l.ItemID] = l.Result
	}
	return out
}

func replayCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// A subscriber added after its items arrived gets each once, signed; the
// same replay again sends nothing. Both ways: delivered by the command's
// process, and by a running notifier that took the call.
func TestReplayNewSubscriberOnce(t *testing.T) {
	t.Parallel()
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := replaySink(t)
			// The deployment so far: another subscriber only.
			other := config.Subscriber{Name: "other", Topics: []string{"defense"}, Stdout: &config.Stdout{}}
			r := startService(t, b, testConfig(other))
			want := replayItems(t, b)
			waitHandled(t, b)
			r.stop()
			if sk.count() != 0 {
				t.Fatal("desk got something before it existed")
			}

			cfg := testConfig(other, deskSub(sk.srv.URL, "trade"))
			replay := func() (ReplayReport, *lines, error) {
				ls := &lines{}
				req := ReplayRequest{Subscriber: "desk"}
				if remote {
					rep, err := RequestReplay(replayCtx(t), b, req, ls.add)
					return rep, ls, err
				}
				rep, err := Replay(replayCtx(t), b, *cfg, req, ls.add)
				return rep, ls, err
			}
			if remote {
				// The notifier runs with the config that has desk (as
				// after a reload).
				startService(t, b, cfg)
			}

			rep, ls, err := replay()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 3 || rep.Skipped != 0 || rep.Failed != 0 || rep.Items != 3 || rep.Read != 5 {
				t.Errorf("first replay: %+v", rep)
			}
			for _, id := range want {
				if got := ls.results()[id]; got != ReplaySent {
					t.Errorf("%s: %q, want %q", id, got, ReplaySent)
				}
			}
			got := postsByItem(t, sk)
			for _, id := range want {
				if got[id] != 1 {
					t.Errorf("%s posted %d times, want 1", id, got[id])
				}
			}
			if len(got) != len(want) {
				t.Errorf("posted %v, want exactly %v", got, want)
			}

			rep, ls, err = replay()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 0 || rep.Skipped != 3 || rep.Failed != 0 {
				t.Errorf("second replay: %+v", rep)
			}
			if got := ls.results()["t2"]; got != ReplayDelivered {
				t.Errorf("second replay t2: %q", got)
			}
			if n := sk.count(); n != 3 {
				t.Errorf("%d POSTs after the second replay, want 3", n)
			}
		})
	}
}

// A replay and the running notifier deliver the same items at the same
// moment: each item reaches the webhook exactly once, and between them
// they count every item once.
func TestReplayRacesRunningNotifier(t *testing.T) {
	t.Parallel()
	const n = 60
	b := bustest.New(t)
	sk := replaySink(t)
	cfg := testConfig(deskSub(sk.srv.URL, "trade"))
	for i := range n {
		publishItem(t, b, testItem(fmt.Sprintf("r%02d", i), "trade"))
	}

	// The notifier starts on the backlog while the replay, another
	// process with its own pipeline, goes over the same items.
	var rep ReplayReport
	var rerr error
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		rep, rerr = Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk"}, nil)
	})
	close(start)
	r := startService(t, b, cfg)
	wg.Wait()
	if rerr != nil {
		t.Fatal(rerr)
	}
	// Where the notifier met the replay's claim it handed its message
	// back for the claim's lease; it finds the delivery done then. Every
	// item is in once the sent counts add up.
	bustest.Eventually(t, waitLong, func() bool { return rep.Sent+int(r.count(KindWebhook, "sent")) >= n }, "not every item sent")
	got := postsByItem(t, sk)
	for i := range n {
		id := fmt.Sprintf("r%02d", i)
		if got[id] != 1 {
			t.Errorf("%s posted %d times, want 1", id, got[id])
		}
	}
	live := int(r.count(KindWebhook, "sent"))
	if rep.Sent+live != n || rep.Sent+rep.Skipped != n || rep.Failed != 0 {
		t.Errorf("replay %+v and notifier sent %d: want %d in all", rep, live, n)
	}
	t.Logf("replay sent %d, skipped %d; notifier sent %d", rep.Sent, rep.Skipped, live)
}

// -dry-run lists what would go and writes nothing: no POST, no log entry,
// no story entry; the real replay then does what the dry run said.
func TestReplayDryRun(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := replaySink(t)
	cfg := testConfig(deskSub(sk.srv.URL, "trade"))
	a := testItem("s1", "trade")
	a.StoryID = "story-1"
	c := testItem("s2", "trade")
	c.StoryID = "story-1"
	publishItem(t, b, a)
	publishItem(t, b, c)
	publishItem(t, b, testItem("s3", "defense"))

	ls := &lines{}
	rep, err := Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk", DryRun: true}, ls.add)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 2 || rep.Skipped != 0 || !rep.DryRun {
		t.Errorf("dry run: %+v", rep)
	}
	if res := ls.results(); res["s1"] != ReplayWouldSend || res["s2"] != ReplayWouldSend || len(res) != 2 {
		t.Errorf("dry run lines: %v", res)
	}
	for _, l := range ls.l {
		if l.ItemID == "s2" && l.UpdateOf != "s1" {
			t.Errorf("s2 should go as an update of s1, got %q", l.UpdateOf)
		}
	}
	if sk.count() != 0 {
		t.Errorf("dry run sent %d requests", sk.count())
	}
	kv, err := b.KV(replayCtx(t), event.BucketDelivered)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.ListKeys(replayCtx(t)); err == nil {
		for k := range keys.Keys() {
			t.Errorf("dry run wrote %s", k)
		}
	}

	// The real one: the later report of the story goes out as an update.
	rep, err = Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk"}, nil)
	if err != nil || rep.Sent != 2 {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	events := map[string]string{}
	for _, r := range sk.requests() {
		var body struct {
			Items []*event.Item `json:"items"`
		}
		_ = json.Unmarshal(r.body, &body)
		events[body.Items[0].ID] = r.header.Get(webhook.HeaderEvent)
	}
	if events["s1"] != "alert" || events["s2"] != "update" {
		t.Errorf("events %v, want s1 alert and s2 update", events)
	}

	// A dry run now finds both delivered.
	rep, err = Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk", DryRun: true}, nil)
	if err != nil || rep.Sent != 0 || rep.Skipped != 2 {
		t.Errorf("dry run after: %+v, %v", rep, err)
	}
}

// -since and -until bound the window by when the items were classified.
func TestReplayWindow(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	publishItem(t, b, testItem("early", "trade"))
	mid := time.Now()
	publishItem(t, b, testItem("late", "trade"))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Stdout: &config.Stdout{}})
	tests := []struct {
		name         string
		since, until time.Time
		want         string
	}{
		{name: "all", want: "early,late"},
		{name: "since", since: mid, want: "late"},
		{name: "until", until: mid, want: "early"},
		{name: "empty", since: mid, until: mid, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ls := &lines{}
			_, err := Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk", Since: tc.since, Until: tc.until, DryRun: true}, ls.add)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for id := range ls.results() {
				ids = append(ids, id)
			}
			slicesSort(ids)
			if got := strings.Join(ids, ","); got != tc.want {
				t.Errorf("window %s: got %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

// The call fails clearly, and at once, when no notifier runs; a notifier
// without the subscriber says so.
func TestRequestReplayErrors(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	start := time.Now()
	_, err := RequestReplay(replayCtx(t), b, ReplayRequest{Subscriber: "desk"}, nil)
	if !errors.Is(err, ErrNoNotifier) || !strings.Contains(err.Error(), event.ReplaySubject) {
		t.Errorf("no notifier: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s to find no notifier", d)
	}

	startService(t, b, testConfig(config.Subscriber{Name: "other", Topics: []string{"trade"}, Stdout: &config.Stdout{}}))
	_, err = RequestReplay(replayCtx(t), b, ReplayRequest{Subscriber: "desk"}, nil)
	if !errors.Is(err, ErrUnknownSubscriber) || !strings.Contains(err.Error(), "notifier on") {
		t.Errorf("unknown subscriber: %v", err)
	}
	if _, err := Replay(replayCtx(t), b, *testConfig(), ReplayRequest{Subscriber: "desk"}, nil); !errors.Is(err, ErrUnknownSubscriber) {
		t.Errorf("local, unknown subscriber: %v", err)
	}
}

// The replay creates no consumer on the classified stream.
func TestReplayLeavesNoConsumer(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	publishItem(t, b, testItem("x1", "trade"))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Stdout: &config.Stdout{}})
	if _, err := Replay(replayCtx(t), b, *cfg, ReplayRequest{Subscriber: "desk"}, nil, WithStdout(&syncBuffer{})); err != nil {
		t.Fatal(err)
	}
	st, err := b.Stream(replayCtx(t), event.StreamClassified)
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, waitLong, func() bool {
		info, err := st.Info(replayCtx(t))
		return err == nil && info.State.Consumers == 0
	}, "a consumer is left on %s", event.StreamClassified)
}

// BenchmarkReplay measures a replay of 2000 stored items to a new
// subscriber's webhook (signed), from reading the window to every delivery
// recorded: items/s is what an operator waits for.
func BenchmarkReplay(b *testing.B) {
	const items = 2000
	bs := bustest.New(b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	for i := range items {
		publishItem(b, bs, testItem(fmt.Sprintf("bench-%04d", i), "trade"))
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A subscriber of its own per round: nothing is delivered yet.
		cfg := testConfig(config.Subscriber{Name: fmt.Sprintf("desk%d", i), Topics: []string{"trade"}, Webhook: &config.Webhook{URL: srv.URL, Secret: replaySecret}})
		rep, err := Replay(ctx, bs, *cfg, ReplayRequest{Subscriber: cfg.Subscribers[0].Name}, nil)
		if err != nil || rep.Sent != items {
			b.Fatalf("%+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(items*b.N)/b.Elapsed().Seconds(), "items/s")
}
