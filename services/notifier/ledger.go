package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// The ledger is everything the notifier remembers, in one KV bucket,
// feedmon_delivered (event.BucketDelivered). Every record expires with the
// bucket's TTL (bus.DeliveredTTL), counted from its last write. Keys, with
// <sub> the subscriber's name as a subject token (event.Token), <kind> the
// receiver kind and #(x) the hex of the first 16 bytes of x's SHA-256
// (item and story ids come from feeds and need not be valid key
// characters):
//
//	<sub>.<kind>.#(item id)        log entry (record): where the delivery of
//	                               the item to that receiver stands: sending
//	                               (claimed, under a lease), retry (next
//	                               attempt due at Next), done, dead
//	story.<sub>.#(story id).first  story entry (storyRecord): the first
//	                               report of the story for the subscriber
//	queue.<sub>.<kind>.#(item id)  held item (queued): waits for the
//	                               subscriber's digest or quiet hours
//	batch.<sub>.<kind>.current     batch (batchRecord): the held items being
//	                               sent as one message, fixed when made
//	park.<sub>.<kind>.#(item id)   parked delivery (parked): a retry too far
//	                               off to keep its NATS message waiting
//
// Log entries have three tokens and every other record four, starting with
// its word, so no two kinds of record meet whatever a subscriber is called
// (a story id is an item id: a three-token story key could equal a log
// key). Existing buckets are read as they are: these keys and the JSON of
// the records are a stored format.
//
// Log entries, story entries and batches change only by compare-and-set:
// of two notifiers (or workers) that read the same revision, one wins and
// the other gets errConflict and looks again.
type ledger struct {
	kv jetstream.KeyValue
}

// openLedger opens the bucket, with its compare-and-set writes made
// through bus.CAS: each delivery writes several, and nats.go's general
// publish path cost as much client CPU as the requests themselves.
func openLedger(ctx context.Context, b *bus.Bus) (ledger, error) {
	kv, err := b.KV(ctx, event.BucketDelivered)
	if err != nil {
		return ledger{}, err
	}
	return ledger{kv: b.CAS(kv)}, nil
}

// kvTimeout bounds one ledger (or dead-letter) operation.
const kvTimeout = 10 * time.Second

var errConflict = errors.New("notifier: delivered log changed under us")

// States of a delivery in its log entry.
const (
	// stateSending: an attempt is under way, owned until Lease. A sending
	// record whose lease ran out was left by a crash: the delivery is sent
	// again, with the same idempotency key (the contract's one window).
	stateSending = "sending"
	// stateRetry: the last attempt failed in a retryable way; the next one
	// is due at Next. Anyone may claim it then.
	stateRetry = "retry"
	// stateDone: delivered. Never sent again.
	stateDone = "done"
	// stateDead: failed for good and dead-lettered. Only a replay sends it again.
	stateDead = "dead"
)

// record is a delivery's log entry.
type record struct {
	State    string    `json:"state"`
	Key      string    `json:"key"`
	Attempts int       `json:"attempts"`
	First    time.Time `json:"first,omitzero"`
	Lease    time.Time `json:"lease,omitzero"`
	Next     time.Time `json:"next,omitzero"`
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
}

// appendJSON appends the entry as json.Marshal encodes it (the stored
// format), without reflection: two of these are written per delivery.
func (r *record) appendJSON(b []byte) []byte {
	b = append(b, `{"state":`...)
	b = appendJSONString(b, r.State)
	b = append(b, `,"key":`...)
	b = appendJSONString(b, r.Key)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = appendJSONTime(b, `,"first":`, r.First)
	b = appendJSONTime(b, `,"lease":`, r.Lease)
	b = appendJSONTime(b, `,"next":`, r.Next)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Error)
	}
	b = appendJSONTime(b, `,"updated":`, r.Updated)
	return append(b, '}')
}

// appendJSONTime appends name and t as time.Time's MarshalJSON does,
// nothing for the zero time (omitzero).
func appendJSONTime(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, name...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s quoted: as it is when no byte needs escaping
// (states, keys and most errors), else as json.Marshal escapes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// settled reports whether the delivery is over: done or dead.
func (r *record) settled() bool { return r.State == stateDone || r.State == stateDead }

// storyRecord is a story's entry for one subscriber. It is only ever
// created, never changed.
type storyRecord struct {
	FirstItemID string    `json:"first_item_id"`
	FirstAt     time.Time `json:"first_at"`
}

// queued is an item held for its subscriber's schedule.
type queued struct {
	Item   *event.Item `json:"item"`
	Queued time.Time   `json:"queued"`
	// First: the id of the first report of the item's story when the item
	// is an update for the subscriber.
	First string `json:"first,omitempty"`
}

// batchRecord is the batch of held items being sent: its items are fixed
// when it is made, so that every attempt (and a takeover after a crash)
// sends the same items under the same key. Its record goes through the
// states of a log entry.
type batchRecord struct {
	record
	Items []*event.Item `json:"items"`
	// Updates: which items are later reports of a story, and of which
	// first report (alert.Batch.Updates).
	Updates map[string]string `json:"updates,omitempty"`
}

// parked is a delivery waiting in the bucket for its next attempt.
type parked struct {
	Subscriber string      `json:"subscriber"`
	Receiver   string      `json:"receiver"`
	Item       *event.Item `json:"item"`
	Next       time.Time   `json:"next"`
	// First: the id of the first report of the item's story when the item
	// is an update for the subscriber.
	First string `json:"first,omitempty"`
}

// hashID is the key token of an item or story id.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// deliveredKey is the log key of one item for one receiver of one
// subscriber.
func deliveredKey(subscriber, kind, itemID string) string {
	return event.Token(subscriber) + "." + kind + "." + hashID(itemID)
}

// storyKey is the key of a story's entry for one subscriber.
func storyKey(subscriber, storyID string) string {
	return "story." + event.Token(subscriber) + "." + hashID(storyID) + ".first"
}

// queueKey is the key of a held item, from its log key.
func queueKey(logKey string) string { return "queue." + logKey }

// queueFilter matches the held items of one receiver of one subscriber.
func queueFilter(sub, kind string) string {
	return "queue." + event.Token(sub) + "." + kind + ".*"
}

// batchKey is the key of the batch being sent to one receiver of one
// subscriber; there is at most one.
func batchKey(sub, kind string) string { return "batch." + event.Token(sub) + "." + kind + ".current" }

// parkKey is the key of a parked delivery, from its log key.
func parkKey(logKey string) string { return "park." + logKey }

// parkFilter matches every parked delivery.
const parkFilter = "park.>"

// ---- Log entries ----

// load reads a log entry and its revision; a missing entry is the zero
// record at revision 0. An unreadable entry reads as empty at its revision,
// so that the next claim overwrites it.
func (l ledger) load(ctx context.Context, key string) (record, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, nil
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("notifier: delivered log get: %w", err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, e.Revision(), nil
	}
	return rec, e.Revision(), nil
}

// store writes a log entry if it is still at revision rev (0: if there is
// none) and returns the new revision; errConflict if it is not.
func (l ledger) store(ctx context.Context, key string, rec record, rev uint64) (uint64, error) {
	data := rec.appendJSON(make([]byte, 0, 256))
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	var (
		n   uint64
		err error
	)
	if rev == 0 {
		n, err = l.kv.Create(ctx, key, data)
	} else {
		n, err = l.kv.Update(ctx, key, data, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errConflict
	case err != nil:
		return 0, fmt.Errorf("notifier: delivered log put: %w", err)
	}
	return n, nil
}

// claim makes the entry at revision rev "sending" under idemKey, owned
// until now+lease, and counts the attempt: only one claimer of a revision
// wins. It returns the claimed record and its revision.
func (l ledger) claim(ctx context.Context, key string, rec record, rev uint64, idemKey string, now time.Time, lease time.Duration) (record, uint64, error) {
	rec.State = stateSending
	rec.Key = idemKey
	rec.Attempts++
	rec.Lease = now.Add(lease)
	rec.Next = time.Time{}
	rec.Updated = now
	if rec.First.IsZero() {
		rec.First = now
	}
	rev, err := l.store(ctx, key, rec, rev)
	return rec, rev, err
}

// complete records a claimed delivery (rec at rev) as done.
func (l ledger) complete(ctx context.Context, key string, rec record, rev uint64, now time.Time) error {
	rec.State = stateDone
	rec.Lease, rec.Error, rec.Updated = time.Time{}, "", now
	_, err := l.store(ctx, key, rec, rev)
	return err
}

// retryAt records that the claimed delivery's attempt failed with cause
// and that the next one is due at next.
func (l ledger) retryAt(ctx context.Context, key string, rec record, rev uint64, next time.Time, cause string, now time.Time) error {
	rec.State = stateRetry
	rec.Lease = time.Time{}
	rec.Next = next
	rec.Error = truncate(cause, 1024)
	rec.Updated = now
	_, err := l.store(ctx, key, rec, rev)
	return err
}

// bury records the delivery as dead (dead-lettered) for reason.
func (l ledger) bury(ctx context.Context, key string, rec record, rev uint64, reason string, now time.Time) error {
	rec.State = stateDead
	rec.Lease, rec.Next, rec.Updated = time.Time{}, time.Time{}, now
	rec.Error = truncate(reason, 1024)
	_, err := l.store(ctx, key, rec, rev)
	return err
}

// skip records a delivery that is not to be sent (a suppressed update) as
// done, so that it is handled once like any other.
func (l ledger) skip(ctx context.Context, key string, rec record, rev uint64, idemKey string, now time.Time) error {
	rec = record{State: stateDone, Key: idemKey, Attempts: rec.Attempts, First: rec.First, Updated: now}
	_, err := l.store(ctx, key, rec, rev)
	return err
}

// revive turns a dead entry at rev back into one due now, with a fresh
// budget and the same idempotency key (dlq replay).
func (l ledger) revive(ctx context.Context, key string, rev uint64, idemKey string, now time.Time) error {
	_, err := l.store(ctx, key, record{State: stateRetry, Key: idemKey, Updated: now}, rev)
	return err
}

// release removes a claim at revision rev that was never sent on, so that
// the next look finds no entry and claims afresh.
func (l ledger) release(ctx context.Context, key string, rev uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("notifier: release claim: %w", err)
	}
	return nil
}

// allSettled reports whether every item's delivery to kind of sub is done
// or dead; doneOnly asks for done.
func (l ledger) allSettled(ctx context.Context, sub, kind string, items []*event.Item, doneOnly bool) bool {
	for _, it := range items {
		rec, _, err := l.load(ctx, deliveredKey(sub, kind, it.ID))
		if err != nil || !rec.settled() || (doneOnly && rec.State != stateDone) {
			return false
		}
	}
	return true
}

// settleItems records the outcome of a batch (done or dead) in the log
// entry of each of its items, whatever they held: the batch's send decided.
func (l ledger) settleItems(ctx context.Context, sub, kind string, items []*event.Item, state, reason string, now time.Time) error {
	var errs []error
	key := alert.Key(sub, kind, items...)
	for _, it := range items {
		rec := record{State: state, Key: key, Attempts: 1, Updated: now, Error: truncate(reason, 1024)}
		data := rec.appendJSON(nil)
		pctx, cancel := context.WithTimeout(ctx, kvTimeout)
		if _, err := l.kv.Put(pctx, deliveredKey(sub, kind, it.ID), data); err != nil {
			errs = append(errs, fmt.Errorf("notifier: record batched item %s: %w", it.ID, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// ---- Story entries ----

// firstReport makes cand the story's first report for sub unless another
// report already is, and returns the entry that stands and when it was
// made. An entry that is there but unreadable comes back empty with a zero
// time: nothing names another first report.
func (l ledger) firstReport(ctx context.Context, sub, storyID string, cand storyRecord) (storyRecord, time.Time, error) {
	key := storyKey(sub, storyID)
	created := time.Now()
	data, err := json.Marshal(cand)
	if err != nil {
		return storyRecord{}, time.Time{}, fmt.Errorf("notifier: encode story entry: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	for range 3 {
		_, err := l.kv.Create(ctx, key, data)
		if err == nil {
			return cand, created, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return storyRecord{}, time.Time{}, fmt.Errorf("notifier: story entry create: %w", err)
		}
		e, err := l.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or removed in between: try to be the first again
		}
		if err != nil {
			return storyRecord{}, time.Time{}, fmt.Errorf("notifier: story entry get: %w", err)
		}
		var rec storyRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.FirstItemID == "" {
			return storyRecord{}, time.Time{}, nil
		}
		return rec, e.Created(), nil
	}
	return storyRecord{}, time.Time{}, errors.New("notifier: story entry keeps vanishing")
}

// storyFirst reads, without making one, the story's entry for sub: the
// first report's id, "" when there is none (or it is unreadable).
func (l ledger) storyFirst(ctx context.Context, sub, storyID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := l.kv.Get(ctx, storyKey(sub, storyID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("notifier: story entry get: %w", err)
	}
	var rec storyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return "", nil
	}
	return rec.FirstItemID, nil
}

// ---- Held items and batches ----

// hold keeps the item for its schedule under logKey's queue key; holding
// an item already held is no error. The queue entry is made before the log
// is read again, and a batch's items are recorded before their queue
// entries go (dropBatch), so an item is never both delivered and still
// held.
func (l ledger) hold(ctx context.Context, logKey string, q queued) error {
	data, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("notifier: encode held item: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	qk := queueKey(logKey)
	if _, err := l.kv.Create(cctx, qk, data); errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	} else if err != nil {
		return fmt.Errorf("notifier: hold item: %w", err)
	}
	if rec, _, err := l.load(ctx, logKey); err == nil && rec.settled() {
		// Sent (and its queue entry removed) while we looked the other way.
		_ = l.kv.Delete(cctx, qk)
	}
	return nil
}

// held lists the items held for one receiver of sub, in no order. It
// removes on the way the entries that cannot be read and those of items
// already delivered or dead.
func (l ledger) held(ctx context.Context, sub, kind string) ([]queued, error) {
	lister, err := l.kv.ListKeysFiltered(ctx, queueFilter(sub, kind))
	if err != nil {
		return nil, fmt.Errorf("notifier: list held items: %w", err)
	}
	var out []queued
	for k := range lister.Keys() {
		e, err := l.kv.Get(ctx, k)
		if err != nil {
			continue // removed meanwhile
		}
		var q queued
		if err := json.Unmarshal(e.Value(), &q); err != nil || q.Item == nil {
			_ = l.kv.Delete(ctx, k)
			continue
		}
		if rec, _, err := l.load(ctx, deliveredKey(sub, kind, q.Item.ID)); err == nil && rec.settled() {
			_ = l.kv.Delete(ctx, k)
			continue
		}
		out = append(out, q)
	}
	return out, nil
}

// makeBatch stores br as the batch of one receiver of sub unless there is
// one already (made by another replica: either way there is one to send).
func (l ledger) makeBatch(ctx context.Context, sub, kind string, br *batchRecord) error {
	data, err := json.Marshal(br)
	if err != nil {
		return fmt.Errorf("notifier: encode batch: %w", err)
	}
	if _, err := l.kv.Create(ctx, batchKey(sub, kind), data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("notifier: make batch: %w", err)
	}
	return nil
}

// batch reads the batch of one receiver of sub: found is false when there
// is none. An unreadable batch is found with no items.
func (l ledger) batch(ctx context.Context, sub, kind string) (br batchRecord, rev uint64, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := l.kv.Get(ctx, batchKey(sub, kind))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return br, 0, false, nil
	}
	if err != nil {
		return br, 0, false, fmt.Errorf("notifier: read batch: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &br); err != nil {
		return batchRecord{}, e.Revision(), true, nil
	}
	return br, e.Revision(), true, nil
}

// updateBatch writes br if the batch is still at rev; errConflict if not.
func (l ledger) updateBatch(ctx context.Context, sub, kind string, br *batchRecord, rev uint64) (uint64, error) {
	data, err := json.Marshal(br)
	if err != nil {
		return 0, fmt.Errorf("notifier: encode batch: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	n, err := l.kv.Update(ctx, batchKey(sub, kind), data, rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errConflict
	case err != nil:
		return 0, fmt.Errorf("notifier: update batch: %w", err)
	}
	return n, nil
}

// dropBatch removes the queue entries of the items and the batch record.
func (l ledger) dropBatch(ctx context.Context, sub, kind string, items []*event.Item) error {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	for _, it := range items {
		_ = l.kv.Delete(ctx, queueKey(deliveredKey(sub, kind, it.ID)))
	}
	if err := l.kv.Delete(ctx, batchKey(sub, kind)); err != nil {
		return fmt.Errorf("notifier: remove batch: %w", err)
	}
	return nil
}

// ---- Parked deliveries ----

// park stores (or moves on) the parked delivery of logKey.
func (l ledger) park(ctx context.Context, logKey string, p parked) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("notifier: encode parked delivery: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := l.kv.Put(ctx, parkKey(logKey), data); err != nil {
		return fmt.Errorf("notifier: park: %w", err)
	}
	return nil
}

// watchParked watches the parked deliveries: first those there now, then
// a nil entry, then every change.
func (l ledger) watchParked(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := l.kv.WatchFiltered(ctx, []string{parkFilter})
	if err != nil {
		return nil, fmt.Errorf("notifier: watch parked deliveries: %w", err)
	}
	return w, nil
}

// decodeParked reads a parked delivery's value; false if it is unusable.
func decodeParked(data []byte) (parked, bool) {
	var p parked
	if err := json.Unmarshal(data, &p); err != nil || p.Item == nil {
		return parked{}, false
	}
	return p, true
}

// parkedAt reads the parked delivery at key (a park key) and its revision.
func (l ledger) parkedAt(ctx context.Context, key string) (parked, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := l.kv.Get(ctx, key)
	if err != nil {
		return parked{}, 0, fmt.Errorf("notifier: read parked delivery: %w", err)
	}
	p, ok := decodeParked(e.Value())
	if !ok {
		return parked{}, 0, errors.New("notifier: unreadable parked delivery")
	}
	return p, e.Revision(), nil
}

// unpark removes the parked delivery at key if it is still at rev (a
// newer park of the same delivery stays).
func (l ledger) unpark(ctx context.Context, key string, rev uint64) error {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("notifier: remove parked delivery: %w", err)
	}
	return nil
}

// repark moves the parked delivery at key, still at rev, to p.Next.
func (l ledger) repark(ctx context.Context, key string, p parked, rev uint64) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("notifier: encode parked delivery: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := l.kv.Update(ctx, key, data, rev); err != nil {
		return fmt.Errorf("notifier: move parked delivery: %w", err)
	}
	return nil
}
