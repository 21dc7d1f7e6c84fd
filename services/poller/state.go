package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
)

// Feed states as shown by `feedmon feeds` and the feeds gauge.
const (
	stateNew         = "new"
	stateOK          = "ok"
	stateNotModified = "not_modified"
	stateError       = "error"
	// stateElsewhere: the feed's lease is held by another poller.
	stateElsewhere = "elsewhere"
)

// feedState is what the poller remembers of one feed between fetches, in
// KV event.BucketFeeds under the feed's subject token. Any poller may pick
// it up, so it holds everything scheduling needs.
type feedState struct {
	URL          string `json:"url"`
	Title        string `json:"title,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	State        string `json:"state"`
	Error        string `json:"error,omitempty"`
	// Failures counts consecutive failed fetches; it drives the backoff.
	Failures     int       `json:"failures,omitempty"`
	LastFetch    time.Time `json:"last_fetch,omitzero"`
	LastChange   time.Time `json:"last_change,omitzero"`
	NextDue      time.Time `json:"next_due,omitzero"`
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
	// TTL is the feed's own <ttl> / sy:updatePeriod from its last full
	// fetch, kept because a 304 has no body to read it from.
	TTL       time.Duration `json:"ttl,omitempty"`
	ItemsSeen int           `json:"items_seen"`
	Published int64         `json:"items_published"`
	Poller    string        `json:"poller,omitempty"`
}

// seenSet is one feed's memory of published items, in KV event.BucketSeen.
// IDs are item ids; Alts are link+title hashes that catch GUID churn. Both
// are ordered most recently present first and bounded, so a feed's record
// stays small however long it runs.
type seenSet struct {
	IDs  []string `json:"ids"`
	Alts []string `json:"alts,omitempty"`

	ids  map[string]struct{}
	alts map[string]struct{}
	// rev is the KV revision the set was read at (0: none stored), so that
	// two writers (a poll and a push, or two replicas) never overwrite
	// each other's additions.
	rev uint64
}

func (s *seenSet) index() {
	s.ids = make(map[string]struct{}, len(s.IDs))
	for _, id := range s.IDs {
		s.ids[id] = struct{}{}
	}
	s.alts = make(map[string]struct{}, len(s.Alts))
	for _, a := range s.Alts {
		s.alts[a] = struct{}{}
	}
}

func (s *seenSet) has(e *entry) bool {
	if _, ok := s.ids[e.item.ID]; ok {
		return true
	}
	if e.alt != "" {
		_, ok := s.alts[e.alt]
		return ok
	}
	return false
}

// rebuild returns the set to store after a fetch: the entries of the
// current feed first (so an item still listed can never age out and come
// back as new), then the older memory, cut at limit.
func (s *seenSet) rebuild(current []entry, published map[string]bool, limit int) *seenSet {
	out := &seenSet{}
	addID := map[string]struct{}{}
	addAlt := map[string]struct{}{}
	for i := range current {
		e := &current[i]
		// An item we failed to publish stays unseen, so it is tried again.
		if !s.has(e) && !published[e.item.ID] {
			continue
		}
		if _, dup := addID[e.item.ID]; !dup {
			addID[e.item.ID] = struct{}{}
			out.IDs = append(out.IDs, e.item.ID)
		}
		if e.alt != "" {
			if _, dup := addAlt[e.alt]; !dup {
				addAlt[e.alt] = struct{}{}
				out.Alts = append(out.Alts, e.alt)
			}
		}
	}
	for _, id := range s.IDs {
		if len(out.IDs) >= limit {
			break
		}
		if _, dup := addID[id]; !dup {
			addID[id] = struct{}{}
			out.IDs = append(out.IDs, id)
		}
	}
	for _, a := range s.Alts {
		if len(out.Alts) >= limit {
			break
		}
		if _, dup := addAlt[a]; !dup {
			addAlt[a] = struct{}{}
			out.Alts = append(out.Alts, a)
		}
	}
	out.index()
	return out
}

// merge adds to s the ids and alts of other it lacks (another writer's
// additions), after its own, cut at limit.
func (s *seenSet) merge(other *seenSet, limit int) {
	add := func(dst []string, have map[string]struct{}, src []string) []string {
		for _, v := range src {
			if len(dst) >= limit {
				break
			}
			if _, ok := have[v]; !ok {
				have[v] = struct{}{}
				dst = append(dst, v)
			}
		}
		return dst
	}
	s.IDs = add(s.IDs, s.ids, other.IDs)
	s.Alts = add(s.Alts, s.alts, other.Alts)
}

// store is the poller's view of its KV buckets.
type store struct {
	feeds jetstream.KeyValue
	seen  jetstream.KeyValue
}

func feedKey(feedURL string) string { return event.FeedToken(feedURL) }

func (s *store) loadState(ctx context.Context, feedURL string) (feedState, error) {
	st := feedState{URL: feedURL, State: stateNew}
	e, err := s.feeds.Get(ctx, feedKey(feedURL))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("poller: load feed state: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// A corrupt record costs one unconditional fetch, nothing more.
		return feedState{URL: feedURL, State: stateNew}, nil
	}
	return st, nil
}

func (s *store) saveState(ctx context.Context, st *feedState) error {
	return putJSON(ctx, s.feeds, feedKey(st.URL), st, "feed state")
}

// putJSON stores v as JSON under key; what names it in errors.
func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any, what string) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("poller: encode %s: %w", what, err)
	}
	if _, err := kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("poller: save %s: %w", what, err)
	}
	return nil
}

func (s *store) loadSeen(ctx context.Context, feedURL string) (*seenSet, error) {
	set := &seenSet{}
	e, err := s.seen.Get(ctx, feedKey(feedURL))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("poller: load seen set: %w", err)
	default:
		if err := json.Unmarshal(e.Value(), set); err != nil {
			return nil, fmt.Errorf("poller: decode seen set: %w", err)
		}
		set.rev = e.Revision()
	}
	set.index()
	return set, nil
}

// saveSeen stores set by compare-and-set on the revision it was read at.
// When another writer got there first, their additions are merged in and
// the write is tried again, so an item published by a push while a poll
// of the same feed ran is remembered by both.
func (s *store) saveSeen(ctx context.Context, feedURL string, set *seenSet, limit int) error {
	key := feedKey(feedURL)
	for range 5 {
		data, err := json.Marshal(set)
		if err != nil {
			return fmt.Errorf("poller: encode seen set: %w", err)
		}
		if set.rev == 0 {
			_, err = s.seen.Create(ctx, key, data)
		} else {
			_, err = s.seen.Update(ctx, key, data, set.rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("poller: save seen set: %w", err)
		}
		cur, err := s.loadSeen(ctx, feedURL)
		if err != nil {
			return err
		}
		set.merge(cur, limit)
		set.rev = cur.rev
	}
	return errors.New("poller: save seen set: too many concurrent writers")
}

// slowdownPrefix starts the keys of host slow-downs in event.BucketFeeds.
// Feed keys (event.FeedToken) never hold a dot, so the two cannot meet.
const slowdownPrefix = "host."

func slowdownKey(host string) string { return slowdownPrefix + event.Token(host) }

// saveSlowdown records a host's slow-down for `feedmon feeds`.
func (s *store) saveSlowdown(ctx context.Context, sd *slowdown) error {
	return putJSON(ctx, s.feeds, slowdownKey(sd.Host), sd, "host slow-down")
}

func (s *store) deleteSlowdown(ctx context.Context, host string) error {
	if err := s.feeds.Delete(ctx, slowdownKey(host)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("poller: clear host slow-down: %w", err)
	}
	return nil
}
