package notifier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// flakyStoryKV fails the first story-entry creates and counts the creates
// of delivered-log entries.
type flakyStoryKV struct {
	jetstream.KeyValue
	storyFailures atomic.Int32 // story creates still to fail
	storyCreates  atomic.Int32
	logCreates    atomic.Int32
}

func (k *flakyStoryKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if strings.HasPrefix(key, "story.") {
		if k.storyFailures.Add(-1) >= 0 {
			return 0, errors.New("story log down (test)")
		}
		k.storyCreates.Add(1)
	}
	if strings.Count(key, ".") == 2 {
		k.logCreates.Add(1)
	}
	return k.KeyValue.Create(ctx, key, value, opts...)
}

// TestEarlyClaimGivenBack: a delivery claims its log entry while the story
// role is being decided; when the role cannot be decided the claim is given
// back unsent, and the redelivery sends the item once, promptly (not after
// the claim's lease), as the first report of its story.
func TestEarlyClaimGivenBack(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r := startService(t, b, cfg)
	kv := &flakyStoryKV{KeyValue: r.svc.ledger.Load().kv}
	kv.storyFailures.Store(1)
	r.svc.ledger.Store(&ledger{kv})

	start := time.Now()
	publishItem(t, b, storyItem("e1", "e1", "Example News"))
	waitHandled(t, b)
	if d := time.Since(start); d >= r.svc.opts.lease {
		t.Errorf("handled after %s, not before the lease (%s) of the given-back claim ran out", d, r.svc.opts.lease)
	}
	if n := kv.storyFailures.Load(); n >= 0 {
		t.Fatalf("the story log did not fail (%d failures left)", n)
	}
	if n := kv.logCreates.Load(); n < 2 {
		t.Errorf("delivered-log creates = %d, want the early claim and the one after the redelivery", n)
	}
	reqs := sk.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	if body := decodeBody(t, reqs[0].body); body.Kind != alert.EventAlert || body.Items[0].ID != "e1" {
		t.Errorf("sent %s %s, want e1 as an alert", body.Items[0].ID, body.Kind)
	}
	rec, _, err := (ledger{kv}).load(context.Background(), deliveredKey("desk", KindWebhook, "e1"))
	if err != nil || rec.State != stateDone || rec.Attempts != 1 {
		t.Errorf("log entry %+v, %v; want done after 1 attempt", rec, err)
	}
}

// TestStoryRoleRemembered: the later reports of a story whose entry this
// notifier made are decided without the bucket, and still go out as
// updates of the first report.
func TestStoryRoleRemembered(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r := startService(t, b, cfg)
	kv := &flakyStoryKV{KeyValue: r.svc.ledger.Load().kv}
	r.svc.ledger.Store(&ledger{kv})

	publishItem(t, b, storyItem("r1", "r1", "Example News"))
	waitHandled(t, b)
	publishItem(t, b, storyItem("r2", "r1", "Other Wire"))
	publishItem(t, b, storyItem("r3", "r1", "Third Wire"))
	waitHandled(t, b)
	if n := kv.storyCreates.Load(); n != 1 {
		t.Errorf("story entry creates = %d, want 1", n)
	}
	reqs := sk.requests()
	if len(reqs) != 3 {
		t.Fatalf("requests = %d, want 3", len(reqs))
	}
	for _, rq := range reqs {
		body := decodeBody(t, rq.body)
		want := alert.EventUpdate
		if body.Items[0].ID == "r1" {
			want = alert.EventAlert
		}
		if body.Kind != want || (want == alert.EventUpdate && body.Updates[body.Items[0].ID] != "r1") {
			t.Errorf("%s sent as %s (updates %v), want %s", body.Items[0].ID, body.Kind, body.Updates, want)
		}
	}
}

// TestStoryCacheBounds: an entry is not remembered past half the bucket's
// TTL after it was made, nor past storyCacheFor, nor when unreadable.
func TestStoryCacheBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var c storyCache
	fetched := func(first string) func() (string, time.Time, error) {
		return func() (string, time.Time, error) { return first, time.Now(), nil }
	}
	c.put("old", "a", time.Now().Add(-bus.DeliveredTTL/2-time.Minute))
	if first, err := c.first(ctx, "old", fetched("fetched")); err != nil || first != "fetched" {
		t.Errorf("an entry made more than half the TTL ago is remembered: %q, %v", first, err)
	}
	c.put("new", "b", time.Now())
	if first, err := c.first(ctx, "new", fetched("fetched")); err != nil || first != "b" {
		t.Errorf("first = %q, %v; want b remembered", first, err)
	}
	if e := c.m["new"]; e.until.After(time.Now().Add(storyCacheFor)) {
		t.Errorf("remembered until %s, past %s from now", e.until, storyCacheFor)
	}
	c.put("garbled", "", time.Time{})
	if _, ok := c.m["garbled"]; ok {
		t.Error("an unreadable entry is remembered")
	}
}

// blockingStoryKV holds every create of a story entry until release is
// closed, and counts them.
type blockingStoryKV struct {
	jetstream.KeyValue
	storyCreates atomic.Int32
	release      chan struct{}
}

func (k *blockingStoryKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if strings.HasPrefix(key, "story.") {
		k.storyCreates.Add(1)
		<-k.release
	}
	return k.KeyValue.Create(ctx, key, value, opts...)
}

// TestStoryReportsTogether: reports of one story that this notifier takes
// at the same time wait for the one making the story's entry rather than
// each losing the create and reading the entry, and learn the same first
// report.
func TestStoryReportsTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := bustest.New(t)
	l, err := openLedger(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	kv := &blockingStoryKV{KeyValue: l.kv, release: make(chan struct{})}
	l = ledger{kv: kv}
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: "http://127.0.0.1:9/"}})
	s, err := New(*cfg, b, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := s.subs[0]
	const n = 6
	var (
		wg    sync.WaitGroup
		roles [n]string
		errs  [n]error
	)
	report := func(i int) {
		wg.Go(func() {
			roles[i], errs[i] = s.storyRole(ctx, l, sub, storyItem(fmt.Sprintf("t%d", i), "t0", fmt.Sprintf("Wire %d", i)))
		})
	}
	report(0)
	bustest.Eventually(t, waitLong, func() bool { return kv.storyCreates.Load() == 1 }, "the first report does not create the story entry")
	for i := 1; i < n; i++ {
		report(i)
	}
	key := storyKey("desk", "t0")
	bustest.Eventually(t, waitLong, func() bool {
		return kv.storyCreates.Load() == n || s.stories.waiting(key) == n-1
	}, "the later reports do not ask for the story entry")
	close(kv.release)
	wg.Wait()
	if c := kv.storyCreates.Load(); c != 1 {
		t.Errorf("story entry creates = %d, want 1", c)
	}
	for i := range n {
		want := "t0"
		if i == 0 {
			want = ""
		}
		if errs[i] != nil || roles[i] != want {
			t.Errorf("report t%d: role %q, %v; want %q", i, roles[i], errs[i], want)
		}
	}
}

// TestStoryCacheFailureNotShared: when the call a report waits for fails,
// the report asks for the entry itself rather than share the failure.
func TestStoryCacheFailureNotShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var c storyCache
	release := make(chan struct{})
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, firstErr = c.first(ctx, "k", func() (string, time.Time, error) {
			<-release
			return "", time.Time{}, errors.New("story log down (test)")
		})
	})
	bustest.Eventually(t, waitLong, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.inflight["k"] != nil
	}, "no call under way")
	var got string
	var err error
	wg.Go(func() {
		got, err = c.first(ctx, "k", func() (string, time.Time, error) { return "a", time.Now(), nil })
	})
	bustest.Eventually(t, waitLong, func() bool { return c.waiting("k") == 1 }, "the second report does not wait")
	close(release)
	wg.Wait()
	if firstErr == nil {
		t.Error("the failing call succeeded")
	}
	if err != nil || got != "a" {
		t.Errorf("waiter got %q, %v; want its own answer a", got, err)
	}
}
