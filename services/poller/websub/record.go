package websub

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
)

// Subscription states, as `feedmon feeds` and the subscriptions gauge show
// them.
const (
	StatePending = "pending" // asked the hub, waiting for its verification
	StateActive  = "active"  // verified; content arrives by push
	StateFailed  = "failed"  // refused, denied, lapsed or hub gone; retried later
	// StateUnsubscribing: the feed left the config or push was switched
	// off; the record goes once the hub has verified the unsubscription.
	StateUnsubscribing = "unsubscribing"
)

// secretBytes is the size of hub.secret before hex encoding: 64 characters,
// well under the 200 bytes the spec allows.
const secretBytes = 32

// Record is one feed's subscription, in KV event.BucketWebSub under the
// feed's token. Every poller replica reads it: whichever one the hub calls
// answers verifications and checks signatures from it.
type Record struct {
	FeedURL string `json:"feed_url"`
	Topic   string `json:"topic"`
	// Hub is where requests go: the advertised hub, or where its
	// permanent redirects led. Advertised is the hub as the feed (or the
	// config) names it, which is what a later discovery is compared with.
	Hub        string `json:"hub"`
	Advertised string `json:"advertised"`
	// Path is the random last segment of this subscription's callback URL,
	// so that callbacks cannot be guessed from the feed URL.
	Path   string `json:"path"`
	Secret string `json:"secret"`
	State  string `json:"state"`
	Error  string `json:"error,omitempty"`
	// Requested is when the last (un)subscribe request went to the hub.
	Requested time.Time `json:"requested,omitzero"`
	// Expires is the end of the lease the hub granted; RenewAt when to ask
	// again (at 80% of the lease).
	Expires time.Time `json:"expires,omitzero"`
	RenewAt time.Time `json:"renew_at,omitzero"`
	// Failures counts failed attempts in a row; RetryAt is the next one.
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// Unsub lists topics being unsubscribed (the topic or hub moved).
	Unsub []Intent `json:"unsub,omitempty"`

	rev uint64
}

// Intent is an unsubscription the hub has still to verify.
type Intent struct {
	Topic string    `json:"topic"`
	Hub   string    `json:"hub"`
	Since time.Time `json:"since"`
}

// Key is the KV key of feedURL's subscription.
func Key(feedURL string) string { return event.FeedToken(feedURL) }

// ActiveAt reports whether content arrives by push at t.
func (r *Record) ActiveAt(t time.Time) bool {
	return r != nil && r.State == StateActive && t.Before(r.Expires)
}

// Describe is the push column of `feedmon feeds`.
func Describe(r *Record, now time.Time) string {
	switch {
	case r == nil:
		return "off"
	case r.State == StateActive && !now.Before(r.Expires):
		return "failed: lease lapsed"
	case r.State == StateActive:
		return "active until " + r.Expires.UTC().Format(time.RFC3339)
	case r.State == StateFailed:
		return "failed: " + r.Error
	}
	return r.State
}

func (r *Record) clone() *Record {
	c := *r
	c.Unsub = append([]Intent(nil), r.Unsub...)
	return &c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// store reads and changes records by compare-and-set, so that replicas
// answering the hub at the same time never lose each other's changes.
type store struct {
	kv jetstream.KeyValue
}

func (s *store) get(ctx context.Context, key string) (*Record, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("websub: read subscription: %w", err)
	}
	return decode(e)
}

func decode(e jetstream.KeyValueEntry) (*Record, error) {
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("websub: decode subscription %s: %w", e.Key(), err)
	}
	r.rev = e.Revision()
	return &r, nil
}

// errNoChange lets an update function leave the record as it is.
var errNoChange = errors.New("websub: no change")

// update applies fn to the record under key (nil when there is none) and
// stores the result by compare-and-set, retrying on a concurrent change; a
// nil result deletes the record. It returns what is stored afterwards.
func (s *store) update(ctx context.Context, key string, fn func(cur *Record) (*Record, error)) (*Record, error) {
	for range 8 {
		cur, err := s.get(ctx, key)
		if err != nil {
			return nil, err
		}
		var in *Record
		if cur != nil {
			in = cur.clone()
		}
		next, err := fn(in)
		if errors.Is(err, errNoChange) {
			return cur, nil
		}
		if err != nil {
			return cur, err
		}
		switch {
		case next == nil && cur == nil:
			return nil, nil
		case next == nil:
			err = s.kv.Delete(ctx, key, jetstream.LastRevision(cur.rev))
			if err == nil {
				return nil, nil
			}
		default:
			data, merr := json.Marshal(next)
			if merr != nil {
				return cur, fmt.Errorf("websub: encode subscription: %w", merr)
			}
			var rev uint64
			if cur == nil {
				rev, err = s.kv.Create(ctx, key, data)
			} else {
				rev, err = s.kv.Update(ctx, key, data, cur.rev)
			}
			if err == nil {
				next.rev = rev
				return next, nil
			}
		}
		if !conflict(err) {
			return cur, fmt.Errorf("websub: save subscription: %w", err)
		}
	}
	return nil, errors.New("websub: save subscription: too many concurrent changes")
}

// conflict: another replica changed (or created) the record first.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// LoadAll reads every subscription record, by feed URL (`feedmon feeds`).
func LoadAll(ctx context.Context, kv jetstream.KeyValue) (map[string]*Record, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("websub: list subscriptions: %w", err)
	}
	defer lister.Stop()
	out := map[string]*Record{}
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("websub: list subscriptions: %w", err)
		}
		if r, err := decode(e); err == nil && r.FeedURL != "" {
			out[r.FeedURL] = r
		}
	}
	return out, nil
}
