package story

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV layout of the stories bucket: one record per item,
//
//	m.<member>  → memberRec: the item's story, time and signature
//
// Every index follows the bucket (a KV watch) and keeps the records of all
// replicas in memory, so finding an item's story is a lookup in memory and
// recording it one KV write. The first record of an item wins (Create): a
// redelivered item keeps the story it was given, by whichever replica.
type kvStore struct {
	kv jetstream.KeyValue
}

type memberRec struct {
	Story string `json:"s"`
	At    int64  `json:"at,omitempty"` // Unix seconds; 0 = unknown
	// Toks is the signature: 8 bytes per token (little-endian), base64.
	Toks string `json:"t"`
	// Mins are the MinHash values, so that a member read back can be
	// indexed in memory without its text.
	Mins []uint64 `json:"h"`
}

func memberKVKey(member string) string { return "m." + member }

func unixOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOf(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func encodeMember(story string, at time.Time, sig signature) ([]byte, error) {
	buf := make([]byte, 0, 8*len(sig.toks))
	for _, t := range sig.toks {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(t))
	}
	return json.Marshal(memberRec{Story: story, At: unixOf(at), Toks: base64.RawStdEncoding.EncodeToString(buf), Mins: sig.mins[:]})
}

func decodeMember(key string, data []byte) (*member, signature, error) {
	var r memberRec
	var sig signature
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, sig, fmt.Errorf("story: decode member %s: %w", key, err)
	}
	raw, err := base64.RawStdEncoding.DecodeString(r.Toks)
	if err != nil || len(raw)%8 != 0 || len(r.Mins) != Bands {
		return nil, sig, fmt.Errorf("story: decode member %s: malformed signature", key)
	}
	m := &member{key: key, story: r.Story, at: timeOf(r.At)}
	m.toks = make([]token, 0, len(raw)/8)
	for i := 0; i < len(raw); i += 8 {
		m.toks = append(m.toks, token(binary.LittleEndian.Uint64(raw[i:])))
	}
	sig.toks = m.toks
	copy(sig.mins[:], r.Mins)
	return m, sig, nil
}

// getMember reads an item's record; nil when there is none.
func (s *kvStore) getMember(ctx context.Context, key string) (*member, signature, error) {
	e, err := s.kv.Get(ctx, memberKVKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, signature{}, nil
	}
	if err != nil {
		return nil, signature{}, fmt.Errorf("story: get member: %w", err)
	}
	return decodeMember(key, e.Value())
}

// createMember records an item's story unless it has a record already;
// then it returns that record's story.
func (s *kvStore) createMember(ctx context.Context, key, story string, at time.Time, sig signature) (string, error) {
	data, err := encodeMember(story, at, sig)
	if err != nil {
		return story, fmt.Errorf("story: encode member: %w", err)
	}
	_, err = s.kv.Create(ctx, memberKVKey(key), data)
	if err == nil {
		return story, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return story, fmt.Errorf("story: record member: %w", err)
	}
	m, _, err := s.getMember(ctx, key)
	if err != nil || m == nil {
		return story, err
	}
	return m.story, nil
}

// Start loads the records every index has written into memory and keeps
// following the bucket until ctx ends, so that items recorded by other
// replicas are found without asking KV. It returns once the records that
// exist now are loaded. Without a Store it does nothing.
func (x *Index) Start(ctx context.Context) error {
	if x.kv == nil {
		return nil
	}
	w, err := x.kv.kv.Watch(ctx, "m.>")
	if err != nil {
		return fmt.Errorf("story: follow stories: %w", err)
	}
	loaded := make(chan struct{})
	go func() {
		defer w.Stop()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					// The end of the records that existed at the start.
					if initial {
						initial = false
						close(loaded)
					}
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					continue
				}
				m, sig, err := decodeMember(strings.TrimPrefix(e.Key(), "m."), e.Value())
				if err != nil {
					continue // unreadable: as if it were not there
				}
				x.remember(m, sig)
			}
		}
	}()
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// assignKV is Assign with a store: the story is decided in memory (which
// holds every replica's items through Start), inserted at once so that
// concurrent items in this index meet, then recorded in KV. Should the
// item have a record already (redelivered, possibly to another replica),
// that record's story wins.
//
// Two replicas assigning two reports of one new story within the few
// milliseconds it takes a record to reach the other can give them two
// story ids; later reports then join one of them.
func (x *Index) assignKV(ctx context.Context, key string, d Doc, sig signature) (string, bool, error) {
	x.mu.Lock()
	if m := x.byKeyLocked(key); m != nil {
		story := m.story
		x.mu.Unlock()
		return story, false, nil
	}
	story, isNew := newStoryID(d), true
	if best, _ := x.bestLocked(sig, d.At); best != nil {
		story, isNew = best.story, false
	}
	x.insertLocked(key, story, d.At, sig)
	x.mu.Unlock()

	recorded, err := x.kv.createMember(ctx, key, story, d.At, sig)
	if err != nil {
		return story, isNew, err
	}
	if recorded != story {
		x.mu.Lock()
		x.insertLocked(key, recorded, d.At, sig) // updates the story in place
		x.mu.Unlock()
		return recorded, false, nil
	}
	return story, isNew, nil
}

// remember keeps a member read from KV in memory, so that it is found
// without KV next time. A member already known keeps its story.
func (x *Index) remember(m *member, sig signature) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byKeyLocked(m.key) != nil {
		return
	}
	x.insertLocked(m.key, m.story, m.at, sig)
}
