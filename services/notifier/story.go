package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
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
// story's entry in the ledger (ledger.firstReport). The entry names the first
// report, so a redelivery of that report is still the first.

// groupsStories reports whether sub gets later reports of its story as
// updates rather than alerts.
func (sub *subscriber) groupsStories(it *event.Item) bool {
	return sub.groupStories && it.StoryID != ""
}

// storyRoles decides, for each subscriber that groups stories, whether it
// is the first report of its story for that subscriber. The result maps a
// subscriber to the id of the story's first report when it is a later one;
// a subscriber not in it gets it as an alert. An error means the ledger is
// unavailable: the message is to be handed back.
func (s *Service) storyRoles(ctx context.Context, l ledger, subs []*subscriber, it *event.Item) (map[*subscriber]string, error) {
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
		s.tasks.Load().Go(&wg, func() {
			first, err := s.storyRole(ctx, l, sub, it)
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
func (s *Service) storyRole(ctx context.Context, l ledger, sub *subscriber, it *event.Item) (string, error) {
	first, err := s.stories.first(ctx, storyKey(sub.name, it.StoryID), func() (string, time.Time, error) {
		rec, created, err := l.firstReport(ctx, sub.name, it.StoryID, storyRecord{FirstItemID: it.ID, FirstAt: s.pipe.now().UTC()})
		return rec.FirstItemID, created, err
	})
	if err != nil {
		return "", err
	}
	if first == "" || first == it.ID {
		// "": the entry is unreadable. Nothing names another first
		// report, so this one alerts rather than be lost as an update of
		// nothing.
		return "", nil
	}
	return first, nil
}

// roleWait is the story roles of a message's subscribers, decided while
// early deliveries claim (storyRoles).
type roleWait struct {
	done chan struct{} // closed once firsts or abort is set
	// firsts: as storyRoles returns it.
	firsts map[*subscriber]string
	// abort: the roles could not be decided; the message is handed back
	// and the early deliveries are not to be sent.
	abort bool
}

// claimsEarly reports whether sub's delivery of it through rt may claim its
// log entry before the story role is decided: a blind claim (job.claimsBlind),
// for a subscriber that waits for a story role, through a receiver whose
// handling does not depend on the role until it sends (not email, which
// suppresses updates).
func claimsEarly(sub *subscriber, rt route, it *event.Item, fresh bool) bool {
	return fresh && sub.groupsStories(it) && rt.kind != KindEmail && rt.lim == nil &&
		(sub.sched == nil || rt.kind == KindNATS)
}

// awaitRole waits for the job's story role if it is still being decided
// and applies it; false if it could not be decided (the delivery is not
// to go ahead).
func (j *job) awaitRole() bool {
	if j.role == nil {
		return true
	}
	<-j.role.done
	if j.role.abort {
		return false
	}
	if first := j.role.firsts[j.sub]; first != "" {
		j.first = first
		j.batch.Updates = map[string]string{j.item.ID: first}
	}
	j.role = nil
	return true
}

// storyCache remembers the story entries this process created or read, so
// that later reports of a story cost no round trip. An entry is only ever
// created, never changed, and goes only when the bucket's TTL removes it;
// so what it names is remembered for at most storyCacheFor and never
// beyond half the TTL after the entry was made, well before it can go.
//
// Reports of one story often come in together (a wire story in several
// feeds of one poll): while one of them makes or reads the story's entry,
// the others here wait for its answer instead of each losing the create
// and reading the entry (three round trips each).
type storyCache struct {
	mu       sync.Mutex
	m        map[string]storyCached
	inflight map[string]*storyCall
}

type storyCached struct {
	first string
	until time.Time
}

// storyCall is a story entry being made or read; first and err are set
// before done is closed.
type storyCall struct {
	done    chan struct{}
	waiters int // guarded by storyCache.mu
	first   string
	err     error
}

const (
	storyCacheFor = time.Hour
	storyCacheMax = 100_000
)

// first returns the first report the story entry at key names: remembered,
// learnt from a call under way for the same key, or from fetch (which
// makes or reads the entry and says when it was made). A failed call is
// not shared: each waiter then calls fetch itself.
func (c *storyCache) first(ctx context.Context, key string, fetch func() (string, time.Time, error)) (string, error) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok && time.Now().Before(e.until) {
		c.mu.Unlock()
		return e.first, nil
	}
	if call, ok := c.inflight[key]; ok {
		call.waiters++
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return "", fmt.Errorf("notifier: story entry: %w", ctx.Err())
		}
		if call.err == nil {
			return call.first, nil
		}
		first, created, err := fetch()
		if err == nil {
			c.put(key, first, created)
		}
		return first, err
	}
	call := &storyCall{done: make(chan struct{})}
	if c.inflight == nil {
		c.inflight = map[string]*storyCall{}
	}
	c.inflight[key] = call
	c.mu.Unlock()

	first, created, err := fetch()
	if err == nil {
		c.put(key, first, created)
	}
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	call.first, call.err = first, err
	close(call.done)
	return first, err
}

// waiting is how many callers wait for the call under way for key.
func (c *storyCache) waiting(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if call := c.inflight[key]; call != nil {
		return call.waiters
	}
	return 0
}

// put remembers that the entry at key, made at created, names first. An
// unreadable entry (first "", created zero) is not remembered.
func (c *storyCache) put(key, first string, created time.Time) {
	now := time.Now()
	until := created.Add(bus.DeliveredTTL / 2)
	if limit := now.Add(storyCacheFor); limit.Before(until) {
		until = limit
	}
	if first == "" || !now.Before(until) {
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
