package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// One alert per story. The classifier gives near-duplicate reports of one
// story (several outlets) the same story id. For a subscriber that groups
// stories (group_stories, the default) the first report of a story it gets
// alerts as usual and later ones go out as updates: the webhook and nats
// receivers mark them (kind "update"), Slack posts a compact "also reported
// by" line, digests list them under the first report, and a per-item email
// subscriber gets no mail for them.
//
// Which report is the first is decided once per subscriber, so that all its
// receivers agree, and across replicas, by a compare-and-set create of the
// story's entry in the delivered-log bucket. The entry names the first
// report, so a redelivery of that report is still the first.

// storyRecord is a story's entry for one subscriber.
type storyRecord struct {
	FirstItemID string    `json:"first_item_id"`
	FirstAt     time.Time `json:"first_at"`
}

// storyKey is the key of a story's entry for one subscriber in the
// delivered-log bucket. It has four tokens, the first "story": log entries
// have three tokens (so a subscriber named "story" cannot meet one, as a
// three-token "story.<subscriber>.<hash>" could: story ids are item ids),
// and queue, batch and park entries start with other words. Story ids are
// hashed like item ids: they need not be valid key characters.
func storyKey(subscriber, storyID string) string {
	sum := sha256.Sum256([]byte(storyID))
	return "story." + event.Token(subscriber) + "." + hex.EncodeToString(sum[:16]) + ".first"
}

// groupsStories reports whether sub gets later reports of its story as
// updates rather than alerts.
func (sub *subscriber) groupsStories(it *event.Item) bool {
	return sub.groupStories && it.StoryID != ""
}

// storyRoles decides, for each subscriber that groups stories, whether it
// is the first report of its story for that subscriber. The result maps a
// subscriber to the id of the story's first report when it is a later one;
// a subscriber not in it gets it as an alert. An error means the bucket is
// unavailable: the message is to be handed back.
func (s *Service) storyRoles(ctx context.Context, kv jetstream.KeyValue, subs []*subscriber, it *event.Item) (map[*subscriber]string, error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		roles map[*subscriber]string
		errs  []error
	)
	for _, sub := range subs {
		if !sub.groupsStories(it) {
			continue
		}
		wg.Go(func() {
			first, err := s.storyRole(ctx, kv, sub, it)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case first != "":
				if roles == nil {
					roles = map[*subscriber]string{}
				}
				roles[sub] = first
			}
		})
	}
	wg.Wait()
	return roles, errors.Join(errs...)
}

// storyRole returns "" when it is the first report of its story for sub
// (it won the create, or it won it before and this is a redelivery), else
// the id of the first report.
func (s *Service) storyRole(ctx context.Context, kv jetstream.KeyValue, sub *subscriber, it *event.Item) (string, error) {
	key := storyKey(sub.name, it.StoryID)
	if first, ok := s.stories.get(key); ok {
		if first == it.ID {
			return "", nil
		}
		return first, nil
	}
	created := time.Now()
	data, err := json.Marshal(storyRecord{FirstItemID: it.ID, FirstAt: s.now().UTC()})
	if err != nil {
		return "", fmt.Errorf("notifier: encode story entry: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	for range 3 {
		_, err := kv.Create(ctx, key, data)
		if err == nil {
			s.stories.put(key, it.ID, created)
			return "", nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("notifier: story entry create: %w", err)
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or removed in between: try to be the first again
		}
		if err != nil {
			return "", fmt.Errorf("notifier: story entry get: %w", err)
		}
		var rec storyRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.FirstItemID == "" {
			// Unreadable: nothing names another first report, so this
			// one alerts rather than be lost as an update of nothing.
			return "", nil
		}
		s.stories.put(key, rec.FirstItemID, e.Created())
		if rec.FirstItemID == it.ID {
			return "", nil
		}
		return rec.FirstItemID, nil
	}
	return "", errors.New("notifier: story entry keeps vanishing")
}

// storyCache remembers the story entries this process created or read, so
// that later reports of a story cost no round trip. An entry is only ever
// created, never changed, and goes only when the bucket's TTL removes it;
// so what it names is remembered for at most storyCacheFor and never
// beyond half the TTL after the entry was made, well before it can go.
type storyCache struct {
	mu sync.Mutex
	m  map[string]storyCached
}

type storyCached struct {
	first string
	until time.Time
}

const (
	storyCacheFor = time.Hour
	storyCacheMax = 100_000
)

func (c *storyCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !time.Now().Before(e.until) {
		return "", false
	}
	return e.first, true
}

// put remembers that the entry at key, made at created, names first.
func (c *storyCache) put(key, first string, created time.Time) {
	now := time.Now()
	until := created.Add(bus.DeliveredTTL / 2)
	if limit := now.Add(storyCacheFor); limit.Before(until) {
		until = limit
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]storyCached{}
	}
	if len(c.m) >= storyCacheMax {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= storyCacheMax {
			clear(c.m)
		}
	}
	c.m[key] = storyCached{first: first, until: until}
}

// newJob is the delivery of it to one receiver of sub; first is the id of
// its story's first report when it is a later report, else "".
func newJob(sub *subscriber, rt route, it *event.Item, first string) *job {
	b := alert.NewBatch(sub.name, rt.kind, it)
	if first != "" {
		b.Updates = map[string]string{it.ID: first}
	}
	return &job{sub: sub, rt: rt, item: it, first: first, batch: b, key: deliveredKey(sub.name, rt.kind, it.ID)}
}

// suppresses reports whether the delivery is an update that its receiver
// does not send: a per-item email subscriber gets a mail per story, not per
// report (a digest lists the later reports under the first one instead).
func (s *Service) suppresses(j *job) bool {
	return j.first != "" && j.rt.kind == KindEmail && (j.sub.sched == nil || j.sub.sched.Digest <= 0)
}

// suppress records a suppressed update as done, so that it is handled once
// like any delivery, and counts it.
func (s *Service) suppress(ctx context.Context, kv jetstream.KeyValue, j *job, rec record, rev uint64) error {
	now := s.now()
	rec = record{State: stateDone, Key: j.batch.Key, Attempts: rec.Attempts, First: rec.First, Updated: now}
	if _, err := s.store(ctx, kv, j.key, rec, rev); err != nil {
		return err
	}
	s.storyUpdates.WithLabelValues(j.rt.kind).Inc()
	s.log.Debug("update of an alerted story not mailed", "subscriber", j.sub.name, "receiver", j.rt.kind, "item_id", j.item.ID, "first_item_id", j.first)
	return nil
}

// updatesIn restricts updates to the items of a batch (a batch record or
// dead letter names only its own), nil when there are none.
func updatesIn(updates map[string]string, items []*event.Item) map[string]string {
	var out map[string]string
	for _, it := range items {
		if first, ok := updates[it.ID]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[it.ID] = first
		}
	}
	return out
}
