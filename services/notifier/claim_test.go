package notifier

import (
	"context"
	"errors"
	"strings"
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
// TTL after it was made, nor past storyCacheFor.
func TestStoryCacheBounds(t *testing.T) {
	t.Parallel()
	var c storyCache
	c.put("old", "a", time.Now().Add(-bus.DeliveredTTL/2-time.Minute))
	if _, ok := c.get("old"); ok {
		t.Error("an entry made more than half the TTL ago is remembered")
	}
	c.put("new", "b", time.Now())
	if first, ok := c.get("new"); !ok || first != "b" {
		t.Errorf("get = %q, %v; want b", first, ok)
	}
	if e := c.m["new"]; e.until.After(time.Now().Add(storyCacheFor)) {
		t.Errorf("remembered until %s, past %s from now", e.until, storyCacheFor)
	}
}
