package notifier

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// fakeClock runs at the speed of real time from wherever a test sets it,
// so that retry delays still pass while tests jump across hours.
type fakeClock struct {
	mu    sync.Mutex
	base  time.Time
	setAt time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{base: t, setAt: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.setAt))
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.setAt = t, time.Now()
}

// idle waits until the flusher has had a few more rounds: enough to have
// sent anything that was due.
func idle(t *testing.T, r *running) {
	t.Helper()
	start := r.svc.flushTicks.Load()
	bustest.Eventually(t, waitLong, func() bool { return r.svc.flushTicks.Load() >= start+3 }, "flusher stalled")
}

// bodyIDs lists the ids of a body's items, sorted.
func bodyIDs(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Items []event.Item `json:"items"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range b.Items {
		ids = append(ids, it.ID)
	}
	// Items published together may be held in any order.
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

func alertsCount(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	ctx := context.Background()
	st, err := b.Stream(ctx, event.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDigest(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	var failFirst sync.Once
	sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int {
		status := http.StatusOK
		failFirst.Do(func() { status = http.StatusBadGateway }) // the batch is retried whole
		return status
	})
	clock := newFakeClock(time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"},
		Webhook: &config.Webhook{URL: sk.srv.URL}, Stdout: &config.Stdout{}, NATS: &config.NATSReceiver{}})
	opts := []Option{WithClock(clock.Now), WithSchedule("desk", Schedule{Digest: time.Hour}), WithFlushInterval(10 * time.Millisecond)}
	r := startService(t, b, cfg, opts...)

	for _, id := range []string{"a", "b", "c"} {
		publishItem(t, b, testItem(id, "trade"))
	}
	waitHandled(t, b)
	idle(t, r)
	if sk.count() != 0 || r.out.String() != "" {
		t.Fatalf("sent before the digest was due: %d requests, stdout %q", sk.count(), r.out.String())
	}
	if n := alertsCount(t, b); n != 3 {
		t.Errorf("nats receiver got %d alerts, want 3 at once", n)
	}

	clock.Set(time.Date(2026, 11, 27, 11, 0, 1, 0, time.UTC))
	bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == 1 && strings.Count(r.out.String(), "\n") == 3 }, "no digest at 11:00")
	reqs := sk.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2 (one failure, one success)", len(reqs))
	}
	if got := bodyIDs(t, reqs[1].body); got != "a,b,c" {
		t.Errorf("digest items = %s", got)
	}
	if string(reqs[0].body) != string(reqs[1].body) || reqs[0].header.Get("Idempotency-Key") != reqs[1].header.Get("Idempotency-Key") {
		t.Error("the retried digest differs from the first attempt")
	}

	publishItem(t, b, testItem("d", "trade"))
	publishItem(t, b, testItem("e", "trade"))
	waitHandled(t, b)
	clock.Set(time.Date(2026, 11, 27, 11, 59, 0, 0, time.UTC))
	idle(t, r)
	if sk.count() != 2 {
		t.Fatalf("sent before the next boundary")
	}
	clock.Set(time.Date(2026, 11, 27, 12, 0, 1, 0, time.UTC))
	bustest.Eventually(t, waitLong, func() bool {
		return sk.accepted() == 2 && strings.Count(r.out.String(), "\n") == 5 && r.count(KindWebhook, telemetry.NotifySent) == 2
	}, "no digest at 12:00")
	if got := bodyIDs(t, sk.requests()[2].body); got != "d,e" {
		t.Errorf("second digest items = %s", got)
	}
	if got := r.count(KindWebhook, telemetry.NotifySent); got != 2 {
		t.Errorf("webhook sent = %v, want 2", got)
	}
	if got := r.count(KindWebhook, telemetry.NotifyRetried); got != 1 {
		t.Errorf("webhook retried = %v, want 1", got)
	}

	// Nothing is held any more, and a restart sends nothing again.
	ctx := context.Background()
	kv, err := b.KV(ctx, event.BucketDelivered)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	bustest.Eventually(t, waitLong, func() bool {
		left = nil
		keys, err := kv.ListKeysFiltered(ctx, "queue.>", "batch.>")
		if err != nil {
			return false
		}
		for k := range keys.Keys() {
			left = append(left, k)
		}
		return len(left) == 0
	}, "left in the bucket: %v", &left)
	r.stop()
	clock.Set(time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC))
	r2 := startService(t, b, cfg, opts...)
	idle(t, r2)
	clock.Set(time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC))
	idle(t, r2)
	if sk.count() != 3 || r2.out.String() != "" {
		t.Errorf("restart re-sent: %d requests, stdout %q", sk.count(), r2.out.String())
	}
}

func TestQuietHours(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	// 22:00 to 07:00 in Berlin (UTC+1 in November).
	clock := newFakeClock(time.Date(2026, 11, 27, 22, 30, 0, 0, time.UTC))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r := startService(t, b, cfg, WithClock(clock.Now), WithFlushInterval(10*time.Millisecond),
		WithSchedule("desk", Schedule{Quiet: &QuietHours{Start: 22 * time.Hour, End: 7 * time.Hour, Location: berlin}}))

	publishItem(t, b, testItem("night-1", "trade"))
	publishItem(t, b, testItem("night-2", "trade"))
	waitHandled(t, b)
	clock.Set(time.Date(2026, 11, 28, 5, 59, 0, 0, time.UTC)) // 06:59 in Berlin
	idle(t, r)
	if sk.count() != 0 {
		t.Fatalf("sent during quiet hours")
	}
	clock.Set(time.Date(2026, 11, 28, 6, 0, 1, 0, time.UTC)) // 07:00:01 in Berlin
	bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == 1 }, "held items not sent when quiet hours ended")
	if got := bodyIDs(t, sk.requests()[0].body); got != "night-1,night-2" {
		t.Errorf("morning batch = %s", got)
	}
	publishItem(t, b, testItem("day-1", "trade"))
	bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == 2 }, "daytime item not sent at once")
	if got := bodyIDs(t, sk.requests()[1].body); got != "day-1" {
		t.Errorf("daytime delivery = %s", got)
	}
}

func TestQuietHoursContains(t *testing.T) {
	t.Parallel()
	q := &QuietHours{Start: 22 * time.Hour, End: 7 * time.Hour}
	day := &QuietHours{Start: 12 * time.Hour, End: 13 * time.Hour}
	at := func(h, m int) time.Time { return time.Date(2026, 1, 1, h, m, 0, 0, time.UTC) }
	tests := []struct {
		q    *QuietHours
		t    time.Time
		want bool
	}{
		{q, at(21, 59), false}, {q, at(22, 0), true}, {q, at(3, 0), true}, {q, at(6, 59), true}, {q, at(7, 0), false},
		{day, at(11, 59), false}, {day, at(12, 30), true}, {day, at(13, 0), false},
	}
	for _, tc := range tests {
		if got := tc.q.Contains(tc.t); got != tc.want {
			t.Errorf("%v.Contains(%s) = %v", tc.q, tc.t.Format("15:04"), got)
		}
	}
}

// TestDigestCrashWindow: a batch left "sending" by a crashed replica is
// sent again, whole and under the same key, once its lease has run out;
// one whose items were all recorded as delivered is only cleaned up.
func TestDigestCrashWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		done     bool
		wantSent int
	}{
		{"interrupted before recording", false, 1},
		{"interrupted after recording", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := newSink(t, nil)
			ctx := context.Background()
			kv, err := b.KV(ctx, event.BucketDelivered)
			if err != nil {
				t.Fatal(err)
			}
			items := []*event.Item{testItem("x", "trade"), testItem("y", "trade")}
			key := alert.Key("desk", KindWebhook, items...)
			br := batchRecord{record: record{State: stateSending, Key: key, Attempts: 1, First: time.Now().Add(-time.Minute), Lease: time.Now().Add(-time.Second)}, Items: items}
			data, _ := json.Marshal(br)
			if _, err := kv.Put(ctx, batchKey("desk", KindWebhook), data); err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				q, _ := json.Marshal(queued{Item: it, Queued: time.Now()})
				if _, err := kv.Put(ctx, queueKey(deliveredKey("desk", KindWebhook, it.ID)), q); err != nil {
					t.Fatal(err)
				}
				if tc.done {
					d, _ := json.Marshal(record{State: stateDone, Key: key})
					if _, err := kv.Put(ctx, deliveredKey("desk", KindWebhook, it.ID), d); err != nil {
						t.Fatal(err)
					}
				}
			}
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			r := startService(t, b, cfg, WithSchedule("desk", Schedule{Digest: time.Hour}), WithFlushInterval(10*time.Millisecond))
			left := func() int {
				l, err := kv.ListKeysFiltered(ctx, "queue.>", "batch.>")
				if err != nil {
					return -1
				}
				n := 0
				for range l.Keys() {
					n++
				}
				return n
			}
			bustest.Eventually(t, waitLong, func() bool { return left() == 0 }, "batch not finished")
			idle(t, r)
			if sk.count() != tc.wantSent {
				t.Fatalf("requests = %d, want %d", sk.count(), tc.wantSent)
			}
			if tc.wantSent > 0 {
				rq := sk.requests()[0]
				if rq.header.Get("Idempotency-Key") != key || bodyIDs(t, rq.body) != "x,y" {
					t.Errorf("resent batch: key %q items %s", rq.header.Get("Idempotency-Key"), bodyIDs(t, rq.body))
				}
			}
		})
	}
}

// TestScheduleRemoved: items held by a digest go out at start-up when the
// subscriber no longer has one, instead of waiting forever.
func TestScheduleRemoved(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r := startService(t, b, cfg, WithSchedule("desk", Schedule{Digest: 24 * time.Hour}), WithFlushInterval(10*time.Millisecond))
	publishItem(t, b, testItem("h1", "trade"))
	publishItem(t, b, testItem("h2", "trade"))
	waitHandled(t, b)
	idle(t, r)
	r.stop()
	if sk.count() != 0 {
		t.Fatal("digest sent early")
	}
	startService(t, b, cfg, WithFlushInterval(10*time.Millisecond))
	bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == 1 }, "held items not sent after the digest was removed")
	if got := bodyIDs(t, sk.requests()[0].body); got != "h1,h2" {
		t.Errorf("items = %s", got)
	}
}
