package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lease says which poller polls a feed, in KV event.BucketLeases under the
// feed's subject token. It is taken and renewed by compare-and-set on the
// entry's revision, so two pollers never both believe they hold it. Expiry
// is wall-clock time written by the holder: pollers' clocks must agree to
// well within an interval (NTP is plenty).
type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`

	rev uint64
}

// leaser takes, renews and releases this poller's leases.
type leaser struct {
	kv jetstream.KeyValue
	id string
}

// acquire tries to hold the lease of feedURL until until. held is the
// lease as it stands afterwards (ours or another poller's); taken is true
// when it was not ours before this call (the caller must then reload the
// feed's state, which another poller may have advanced).
func (l *leaser) acquire(ctx context.Context, feedURL string, cur *lease, now, until time.Time) (held *lease, taken bool, err error) {
	key := feedKey(feedURL)
	// Our own unexpired lease needs no round trip: no one else writes a
	// lease that has not expired.
	if cur != nil && cur.Owner == l.id && now.Before(cur.Expires) {
		return cur, false, nil
	}
	e, err := l.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		nl := &lease{Owner: l.id, Expires: until}
		rev, err := l.kv.Create(ctx, key, nl.encode())
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return nil, false, nil // another poller was quicker
			}
			return nil, false, fmt.Errorf("poller: take lease: %w", err)
		}
		nl.rev = rev
		return nl, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("poller: read lease: %w", err)
	}
	var old lease
	if err := json.Unmarshal(e.Value(), &old); err != nil {
		old = lease{} // unreadable: treat as expired
	}
	old.rev = e.Revision()
	if old.Owner != l.id && now.Before(old.Expires) {
		return &old, false, nil
	}
	nl := &lease{Owner: l.id, Expires: until}
	rev, err := l.kv.Update(ctx, key, nl.encode(), e.Revision())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("poller: take lease: %w", err)
	}
	nl.rev = rev
	return nl, old.Owner != l.id, nil
}

// extend renews our lease to until; false if it was lost meanwhile.
func (l *leaser) extend(ctx context.Context, feedURL string, cur *lease, until time.Time) (*lease, error) {
	nl := &lease{Owner: l.id, Expires: until}
	rev, err := l.kv.Update(ctx, feedKey(feedURL), nl.encode(), cur.rev)
	if err != nil {
		return nil, fmt.Errorf("poller: renew lease: %w", err)
	}
	nl.rev = rev
	return nl, nil
}

// release gives the lease up so another poller takes over at its next
// attempt instead of waiting for expiry.
func (l *leaser) release(ctx context.Context, feedURL string, cur *lease) error {
	if cur == nil || cur.Owner != l.id {
		return nil
	}
	err := l.kv.Delete(ctx, feedKey(feedURL), jetstream.LastRevision(cur.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("poller: release lease: %w", err)
	}
	return nil
}

func (l *lease) encode() []byte {
	b, _ := json.Marshal(l)
	return b
}
