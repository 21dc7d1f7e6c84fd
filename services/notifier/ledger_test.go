package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
)

// newTestLedger is a ledger over the real feedmon_delivered bucket of an
// embedded JetStream.
func newTestLedger(t *testing.T) ledger {
	t.Helper()
	b := bustest.New(t)
	l, err := openLedger(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLedgerKeys pins the key layout: buckets written by earlier versions
// are read with these keys.
func TestLedgerKeys(t *testing.T) {
	t.Parallel()
	h := func(id string) string {
		sum := sha256.Sum256([]byte(id))
		return hex.EncodeToString(sum[:16])
	}
	const item = "https://news.example.org/a?b=c"
	log := "desk_1.webhook." + h(item)
	tests := []struct{ got, want string }{
		{deliveredKey("desk 1", KindWebhook, item), log},
		{storyKey("desk 1", "s1"), "story.desk_1." + h("s1") + ".first"},
		{queueKey(log), "queue." + log},
		{queueFilter("desk 1", KindWebhook), "queue.desk_1.webhook.*"},
		{batchKey("desk 1", KindWebhook), "batch.desk_1.webhook.current"},
		{parkKey(log), "park." + log},
		{parkFilter, "park.>"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
}

// TestLedgerDeliveryStates walks a log entry through its states and checks
// that every change is a compare-and-set that a stale writer loses.
func TestLedgerDeliveryStates(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	key := deliveredKey("desk", KindWebhook, "i1")
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

	rec, rev, err := l.load(ctx, key)
	if err != nil || rev != 0 || rec.State != "" {
		t.Fatalf("missing entry = %+v at %d, %v; want empty at 0", rec, rev, err)
	}
	claimed, crev, err := l.claim(ctx, key, rec, rev, "k1", now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if claimed.State != stateSending || claimed.Attempts != 1 || !claimed.First.Equal(now) || !claimed.Lease.Equal(now.Add(time.Minute)) || claimed.Key != "k1" {
		t.Errorf("claimed %+v", claimed)
	}
	// A second claimer that read the same (missing) entry loses.
	if _, _, err := l.claim(ctx, key, rec, rev, "k1", now, time.Minute); !errors.Is(err, errConflict) {
		t.Errorf("second claim of a missing entry: %v, want errConflict", err)
	}
	got, grev, err := l.load(ctx, key)
	if err != nil || grev != crev || got != claimed {
		t.Fatalf("load = %+v at %d, %v; want %+v at %d", got, grev, err, claimed, crev)
	}

	// The attempt failed: retry later, then a second claim counts it.
	later := now.Add(time.Second)
	if err := l.retryAt(ctx, key, claimed, crev, later.Add(time.Minute), "503", later); err != nil {
		t.Fatal(err)
	}
	if err := l.complete(ctx, key, claimed, crev, later); !errors.Is(err, errConflict) {
		t.Errorf("complete at a stale revision: %v, want errConflict", err)
	}
	rec, rev, _ = l.load(ctx, key)
	if rec.State != stateRetry || rec.Error != "503" || !rec.Next.Equal(later.Add(time.Minute)) || !rec.Lease.IsZero() {
		t.Errorf("after retryAt: %+v", rec)
	}
	claimed, crev, err = l.claim(ctx, key, rec, rev, "k1", later, time.Minute)
	if err != nil || claimed.Attempts != 2 || !claimed.First.Equal(now) || !claimed.Next.IsZero() {
		t.Fatalf("second claim %+v, %v; want attempt 2 keeping its first time", claimed, err)
	}
	if err := l.complete(ctx, key, claimed, crev, later); err != nil {
		t.Fatal(err)
	}
	rec, rev, _ = l.load(ctx, key)
	if rec.State != stateDone || !rec.settled() || rec.Error != "" || !rec.Lease.IsZero() || rec.Attempts != 2 {
		t.Errorf("after complete: %+v", rec)
	}

	// Dead, then revived by a replay with a fresh budget and the same key.
	if err := l.bury(ctx, key, rec, rev, "410 Gone", later); err != nil {
		t.Fatal(err)
	}
	rec, rev, _ = l.load(ctx, key)
	if rec.State != stateDead || rec.Error != "410 Gone" {
		t.Errorf("after bury: %+v", rec)
	}
	if err := l.revive(ctx, key, rev, "k1", later); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = l.load(ctx, key)
	if rec.State != stateRetry || rec.Attempts != 0 || rec.Key != "k1" || !rec.First.IsZero() {
		t.Errorf("after revive: %+v", rec)
	}
}

// TestLedgerRelease: a claim given back unsent leaves no entry, so the next
// look claims afresh; a release at a stale revision leaves the entry.
func TestLedgerRelease(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	key := deliveredKey("desk", KindWebhook, "i1")
	now := time.Now()
	_, rev, err := l.claim(ctx, key, record{}, 0, "k", now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.release(ctx, key, rev+1); err == nil {
		t.Error("release at a stale revision succeeded")
	}
	if rec, _, _ := l.load(ctx, key); rec.State != stateSending {
		t.Errorf("entry after a stale release = %+v, want it kept", rec)
	}
	if err := l.release(ctx, key, rev); err != nil {
		t.Fatal(err)
	}
	rec, rev, err := l.load(ctx, key)
	if err != nil || rec.State != "" {
		t.Fatalf("after release: %+v, %v; want no entry", rec, err)
	}
	// The next look finds no entry and claims it afresh.
	if rec, _, err := l.claim(ctx, key, rec, rev, "k", now, time.Minute); err != nil || rec.Attempts != 1 {
		t.Errorf("claim after release = %+v, %v; want attempt 1", rec, err)
	}
}

// TestLedgerSkip: a suppressed update is recorded done without an attempt.
func TestLedgerSkip(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	key := deliveredKey("desk", KindEmail, "i2")
	if err := l.skip(ctx, key, record{}, 0, "k", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := l.skip(ctx, key, record{}, 0, "k", time.Now()); !errors.Is(err, errConflict) {
		t.Errorf("second skip from the same read: %v, want errConflict", err)
	}
	if rec, _, _ := l.load(ctx, key); rec.State != stateDone || rec.Attempts != 0 || rec.Key != "k" {
		t.Errorf("skipped entry %+v", rec)
	}
}

// TestLedgerUnreadableEntry: an entry that is not a record reads as empty
// at its revision, so that the next claim overwrites it.
func TestLedgerUnreadableEntry(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	key := deliveredKey("desk", KindWebhook, "garbled")
	if _, err := l.kv.Put(ctx, key, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	rec, rev, err := l.load(ctx, key)
	if err != nil || rec.State != "" || rev == 0 {
		t.Fatalf("load = %+v at %d, %v; want empty at the entry's revision", rec, rev, err)
	}
	if _, _, err := l.claim(ctx, key, rec, rev, "k", time.Now(), time.Minute); err != nil {
		t.Errorf("claim over an unreadable entry: %v", err)
	}
}

// TestLedgerFirstReport: of several reports of a story racing for it, one
// becomes the first report and every one of them learns which.
func TestLedgerFirstReport(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	const n = 8
	var (
		wg     sync.WaitGroup
		firsts [n]string
		errs   [n]error
	)
	for i := range n {
		wg.Go(func() {
			rec, created, err := l.firstReport(ctx, "desk", "story-1", storyRecord{FirstItemID: string(rune('a' + i)), FirstAt: time.Now()})
			firsts[i], errs[i] = rec.FirstItemID, err
			if err == nil && created.IsZero() {
				errs[i] = errors.New("no creation time")
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("report %d: %v", i, errs[i])
		}
		if firsts[i] != firsts[0] || firsts[i] == "" {
			t.Errorf("report %d sees first %q, report 0 sees %q", i, firsts[i], firsts[0])
		}
	}
	// Another subscriber's story entry is its own.
	rec, _, err := l.firstReport(ctx, "team", "story-1", storyRecord{FirstItemID: "z"})
	if err != nil || rec.FirstItemID != "z" {
		t.Errorf("other subscriber: %+v, %v; want z first", rec, err)
	}
	// An unreadable entry names no first report.
	if _, err := l.kv.Put(ctx, storyKey("desk", "story-2"), []byte("garbled")); err != nil {
		t.Fatal(err)
	}
	rec, created, err := l.firstReport(ctx, "desk", "story-2", storyRecord{FirstItemID: "y"})
	if err != nil || rec.FirstItemID != "" || !created.IsZero() {
		t.Errorf("unreadable story entry: %+v at %s, %v; want nothing", rec, created, err)
	}
}

// TestLedgerHeldItems: items held for a schedule are listed per receiver;
// holding twice is one entry; entries of items already settled, or
// unreadable, are removed as they are met.
func TestLedgerHeldItems(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	now := time.Now()
	hold := func(sub, kind, id string) {
		t.Helper()
		if err := l.hold(ctx, deliveredKey(sub, kind, id), queued{Item: testItem(id, "trade"), Queued: now}); err != nil {
			t.Fatal(err)
		}
	}
	hold("desk", KindWebhook, "h1")
	hold("desk", KindWebhook, "h1")
	hold("desk", KindWebhook, "h2")
	hold("desk", KindSlack, "h1")
	hold("team", KindWebhook, "h3")
	// h4 is delivered before it is held (a redelivery after the batch):
	// holding it leaves nothing held.
	if err := l.complete(ctx, deliveredKey("desk", KindWebhook, "h4"), record{}, 0, now); err != nil {
		t.Fatal(err)
	}
	hold("desk", KindWebhook, "h4")
	if _, err := l.kv.Get(ctx, queueKey(deliveredKey("desk", KindWebhook, "h4"))); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("held entry of a delivered item: %v, want none", err)
	}
	// h2 is delivered after it was held; a garbled entry sits among them.
	if err := l.complete(ctx, deliveredKey("desk", KindWebhook, "h2"), record{}, 0, now); err != nil {
		t.Fatal(err)
	}
	garbled := queueKey(deliveredKey("desk", KindWebhook, "bad"))
	if _, err := l.kv.Put(ctx, garbled, []byte("[]")); err != nil {
		t.Fatal(err)
	}

	held, err := l.held(ctx, "desk", KindWebhook)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Item.ID != "h1" {
		t.Fatalf("held = %+v, want h1 only", held)
	}
	for _, k := range []string{garbled, queueKey(deliveredKey("desk", KindWebhook, "h2"))} {
		if _, err := l.kv.Get(ctx, k); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("%s still there (%v)", k, err)
		}
	}
	if held, _ := l.held(ctx, "desk", KindSlack); len(held) != 1 {
		t.Errorf("slack held %d, want 1", len(held))
	}
}

// TestLedgerBatch: one batch per receiver, made once, claimed by
// compare-and-set, its items recorded and then removed with it.
func TestLedgerBatch(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	now := time.Now()
	items := []*event.Item{testItem("b1", "trade"), testItem("b2", "trade")}
	for _, it := range items {
		if err := l.hold(ctx, deliveredKey("desk", KindWebhook, it.ID), queued{Item: it, Queued: now}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, found, err := l.batch(ctx, "desk", KindWebhook); found || err != nil {
		t.Fatalf("batch before any: found %v, %v", found, err)
	}
	br := batchRecord{record: record{State: stateRetry, Key: "k"}, Items: items, Updates: map[string]string{"b2": "b1"}}
	if err := l.makeBatch(ctx, "desk", KindWebhook, &br); err != nil {
		t.Fatal(err)
	}
	other := batchRecord{record: record{State: stateRetry, Key: "other"}, Items: items[:1]}
	if err := l.makeBatch(ctx, "desk", KindWebhook, &other); err != nil {
		t.Fatalf("second make: %v, want the first batch kept silently", err)
	}
	got, rev, found, err := l.batch(ctx, "desk", KindWebhook)
	if err != nil || !found || got.Key != "k" || len(got.Items) != 2 || got.Updates["b2"] != "b1" {
		t.Fatalf("batch = %+v, %v, %v; want the first one", got, found, err)
	}
	got.State, got.Attempts = stateSending, 1
	if _, err := l.updateBatch(ctx, "desk", KindWebhook, &got, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := l.updateBatch(ctx, "desk", KindWebhook, &got, rev); !errors.Is(err, errConflict) {
		t.Errorf("update at a stale revision: %v, want errConflict", err)
	}

	if err := l.settleItems(ctx, "desk", KindWebhook, items, stateDone, "", now); err != nil {
		t.Fatal(err)
	}
	if !l.allSettled(ctx, "desk", KindWebhook, items, true) {
		t.Error("items not recorded done")
	}
	if err := l.dropBatch(ctx, "desk", KindWebhook, items); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := l.batch(ctx, "desk", KindWebhook); found {
		t.Error("batch still there")
	}
	if held, _ := l.held(ctx, "desk", KindWebhook); len(held) != 0 {
		t.Errorf("held after the batch = %d", len(held))
	}
}

// TestLedgerParked: a parked delivery is seen by the watcher, moved on by
// compare-and-set, and removed only at the revision that was attempted.
func TestLedgerParked(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	w, err := l.watchParked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	logKey := deliveredKey("desk", KindWebhook, "p1")
	next := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	p := parked{Subscriber: "desk", Receiver: KindWebhook, Item: testItem("p1", "trade"), Next: next, First: "p0"}
	if err := l.park(ctx, logKey, p); err != nil {
		t.Fatal(err)
	}
	// The watcher first says the initial values are over (nil), then
	// shows the put.
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		got, ok := decodeParked(e.Value())
		if e.Key() != parkKey(logKey) || !ok || !got.Next.Equal(next) {
			t.Fatalf("watched %s %+v", e.Key(), got)
		}
		break
	}
	got, rev, err := l.parkedAt(ctx, parkKey(logKey))
	if err != nil || got.First != "p0" || got.Item.ID != "p1" {
		t.Fatalf("parkedAt = %+v, %v", got, err)
	}
	got.Next = next.Add(time.Minute)
	if err := l.repark(ctx, parkKey(logKey), got, rev); err != nil {
		t.Fatal(err)
	}
	// Removing at the old revision leaves the newer park.
	if err := l.unpark(ctx, parkKey(logKey), rev); err != nil {
		t.Fatal(err)
	}
	got2, rev2, err := l.parkedAt(ctx, parkKey(logKey))
	if err != nil || !got2.Next.Equal(next.Add(time.Minute)) {
		t.Fatalf("after a stale unpark: %+v, %v; want the moved park", got2, err)
	}
	if err := l.unpark(ctx, parkKey(logKey), rev2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.parkedAt(ctx, parkKey(logKey)); err == nil {
		t.Error("parked delivery still there")
	}
}

// TestLedgerTTL: records go with the bucket's TTL; a delivery whose entry
// expired is claimed afresh, a story whose entry expired has a new first
// report.
func TestLedgerTTL(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx := context.Background()
	_, js := bustest.Client(t, b)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ledger_ttl", History: 1, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger{kv: kv}
	key := deliveredKey("desk", KindWebhook, "t1")
	now := time.Now()
	if _, _, err := l.claim(ctx, key, record{}, 0, "k", now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := l.firstReport(ctx, "desk", "s", storyRecord{FirstItemID: "a"}); rec.FirstItemID != "a" {
		t.Fatalf("first report %q, want a", rec.FirstItemID)
	}
	bustest.Eventually(t, waitLong, func() bool {
		rec, _, err := l.load(ctx, key)
		return err == nil && rec.State == ""
	}, "log entry did not expire")
	rec, rev, _ := l.load(ctx, key)
	if rec, _, err := l.claim(ctx, key, rec, rev, "k", time.Now(), time.Minute); err != nil || rec.Attempts != 1 {
		t.Errorf("claim after expiry = %+v, %v; want a fresh attempt 1", rec, err)
	}
	bustest.Eventually(t, waitLong, func() bool {
		_, err := kv.Get(ctx, storyKey("desk", "s"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	}, "story entry did not expire")
	if rec, _, err := l.firstReport(ctx, "desk", "s", storyRecord{FirstItemID: "b"}); err != nil || rec.FirstItemID != "b" {
		t.Errorf("first report after expiry = %+v, %v; want b", rec, err)
	}
}

// TestLedgerReadsStoredRecords: records as earlier versions wrote them
// (testdata/ledger) are read back whole.
func TestLedgerReadsStoredRecords(t *testing.T) {
	t.Parallel()
	l := newTestLedger(t)
	ctx := context.Background()
	put := func(key, file string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("testdata", "ledger", file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.kv.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	logKey := deliveredKey("desk", KindWebhook, "r1")
	put(logKey, "log-retry.json")
	put(storyKey("desk", "s1"), "story.json")
	put(queueKey(deliveredKey("desk", KindWebhook, "q1")), "queue.json")
	put(batchKey("desk", KindWebhook), "batch.json")
	put(parkKey(deliveredKey("desk", KindWebhook, "p1")), "park.json")

	rec, _, err := l.load(ctx, logKey)
	if err != nil || rec.State != stateRetry || rec.Attempts != 2 || rec.Error != "webhook: 503 Service Unavailable" ||
		!rec.Next.Equal(time.Date(2026, 11, 26, 8, 0, 5, 5e8, time.UTC)) || rec.Key != "5f1c2a9e0b7d4c3a" {
		t.Errorf("log entry %+v, %v", rec, err)
	}
	st, _, err := l.firstReport(ctx, "desk", "s1", storyRecord{FirstItemID: "other"})
	if err != nil || st.FirstItemID != "https://news.example.org/articles/1" {
		t.Errorf("story entry %+v, %v", st, err)
	}
	held, err := l.held(ctx, "desk", KindWebhook)
	if err != nil || len(held) != 1 || held[0].Item.ID != "q1" || held[0].First != "q0" {
		t.Errorf("held %+v, %v", held, err)
	}
	br, _, found, err := l.batch(ctx, "desk", KindWebhook)
	if err != nil || !found || br.State != stateSending || br.Attempts != 1 || len(br.Items) != 2 || br.Updates["q1"] != "q0" ||
		!br.Lease.Equal(time.Date(2026, 11, 27, 7, 0, 15, 0, time.UTC)) {
		t.Errorf("batch %+v, %v, %v", br, found, err)
	}
	p, _, err := l.parkedAt(ctx, parkKey(deliveredKey("desk", KindWebhook, "p1")))
	if err != nil || p.Subscriber != "desk" || p.Receiver != KindWebhook || p.Item.ID != "p1" || p.First != "p0" {
		t.Errorf("parked %+v, %v", p, err)
	}
}

// TestRecordJSON pins the hand-written encoding of log entries to what
// json.Marshal writes (the stored format), byte for byte, including
// strings that need escaping and times in other zones.
func TestRecordJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 4, 18, 30, 1, 123456789, time.UTC)
	tests := []struct {
		name string
		rec  record
	}{
		{"empty", record{}},
		{"sending", record{State: stateSending, Key: "5f1c2a9e0b7d4c3a", Attempts: 1, First: at, Lease: at.Add(35 * time.Second), Updated: at}},
		{"done", record{State: stateDone, Key: "k", Attempts: 3, First: at, Updated: at.Add(time.Minute)}},
		{"retry", record{State: stateRetry, Key: "k", Attempts: 2, First: at, Next: at.Add(5 * time.Second), Error: "webhook: 503 Service Unavailable", Updated: at}},
		{"escaped error", record{State: stateDead, Key: "k", Attempts: 1, Error: "post \"http://x/?a=1&b=<2>\"\n\ttab\\ \x01 \x7f é \u2028 \xff", Updated: at}},
		{"ampersand alone", record{State: stateDead, Error: "a&b"}},
		{"whole seconds, another zone", record{State: stateDone, Key: "k", Updated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+1800))}},
		{"negative attempts", record{State: stateRetry, Attempts: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.rec.appendJSON(nil); string(got) != string(want) {
				t.Errorf("appendJSON\n got %s\nwant %s", got, want)
			}
		})
	}
}
