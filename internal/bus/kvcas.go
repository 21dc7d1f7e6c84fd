package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CAS returns kv with Create and Update made cheaper: each is one request
// to the bucket's stream with the expected-last-subject-sequence header,
// its PubAck decoded without reflection. Every other method is kv's.
//
// nats.go's versions do the same on the wire, through its general publish
// path: publish options, a strings.Builder and header map per call, and
// encoding/json's decode of the PubAck; the notifier makes several such
// writes per delivery.
// The results are nats.go's: Create fails with an error matching
// jetstream.ErrKeyExists when the key holds a value (over a delete or purge
// marker it writes, as nats.go does), Update with one matching
// jetstream.ErrKeyRevisionMismatch when the key is not at the revision.
//
// The subjects are $KV.<bucket>.<key>: the buckets feedmon makes are
// neither mirrors nor behind a JetStream domain or API prefix. Create with
// options (a per-key TTL) goes to kv as it is.
func (b *Bus) CAS(kv jetstream.KeyValue) jetstream.KeyValue {
	return &casKV{KeyValue: kv, nc: b.nc, js: b.js, prefix: "$KV." + kv.Bucket() + "."}
}

type casKV struct {
	jetstream.KeyValue
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string

	// stream is the bucket's stream, looked up on the first create that
	// finds the key taken (for its direct gets); guarded by mu.
	mu     sync.Mutex
	stream jetstream.Stream
}

// As nats.go's synchronous publish: a stream that has no responder (a
// leader election under way) is asked again twice, a quarter second apart.
const (
	casNoResponderRetries = 2
	casNoResponderWait    = 250 * time.Millisecond
)

func (c *casKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if len(opts) > 0 {
		return c.KeyValue.Create(ctx, key, value, opts...)
	}
	rev, err := c.put(ctx, key, value, 0)
	if !isWrongLastSeq(err) {
		return rev, err
	}
	// The key has a last message: a value, or a delete or purge marker,
	// which counts as no value (nats.go's kvs.Create does the same).
	if marker, ok := c.deleted(ctx, key); ok {
		rev, err = c.put(ctx, key, value, marker)
		if !isWrongLastSeq(err) {
			return rev, err
		}
	}
	return 0, fmt.Errorf("%w: %w", err, jetstream.ErrKeyExists)
}

func (c *casKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := c.put(ctx, key, value, revision)
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
	}
	return rev, err
}

// deleted reports whether the key's last message is a delete or purge
// marker, and its revision.
func (c *casKV) deleted(ctx context.Context, key string) (uint64, bool) {
	s, err := c.bucketStream(ctx)
	if err != nil {
		return 0, false
	}
	m, err := s.GetLastMsgForSubject(ctx, c.prefix+key)
	if err != nil {
		return 0, false
	}
	switch m.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		return m.Sequence, true
	}
	return 0, false
}

// bucketStream is the bucket's stream, looked up once: creates that find
// the key taken are common (the later reports of a story), and a lookup
// costs more than the get it serves.
func (c *casKV) bucketStream(ctx context.Context) (jetstream.Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		s, err := c.js.Stream(ctx, "KV_"+c.KeyValue.Bucket())
		if err != nil {
			return nil, err
		}
		c.stream = s
	}
	return c.stream, nil
}

// put stores value under key if the key's last message is at revision (0:
// if it has none) and returns the new revision.
func (c *casKV) put(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	if !validKey(key) {
		return 0, jetstream.ErrInvalidKey
	}
	m := &nats.Msg{
		Subject: c.prefix + key,
		Header:  nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(revision, 10)}},
		Data:    value,
	}
	resp, err := c.nc.RequestMsgWithContext(ctx, m)
	for r := 0; errors.Is(err, nats.ErrNoResponders) && r < casNoResponderRetries; r++ {
		t := time.NewTimer(casNoResponderWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		resp, err = c.nc.RequestMsgWithContext(ctx, m)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return 0, jetstream.ErrNoStreamResponse
	case err != nil:
		return 0, err
	}
	var ack casAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, jetstream.ErrInvalidJSAck
	}
	if e := ack.Error; e != nil {
		return 0, fmt.Errorf("bus: kv put %s: %w", key, &jetstream.APIError{Code: e.Code, ErrorCode: e.ErrCode, Description: e.Description})
	}
	if ack.Stream == "" {
		return 0, jetstream.ErrInvalidJSAck
	}
	return ack.Seq, nil
}

// casAck is what a CAS put reads of the stream's answer: a PubAck or an
// API error.
type casAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Error  *struct {
		Code        int                 `json:"code"`
		ErrCode     jetstream.ErrorCode `json:"err_code"`
		Description string              `json:"description"`
	} `json:"error"`
}

// isWrongLastSeq reports whether err is the stream's compare-and-set
// failure: 10071, or 10164 from a replicated stream.
func isWrongLastSeq(err error) bool {
	if err == nil {
		return false // before apiErr, which escapes: no allocation per write
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// validKey is nats.go's rule for keys: [-/_=.a-zA-Z0-9]+, no empty token
// (no leading, trailing or double dot). A key outside it would make
// another subject.
func validKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '=':
		case c == '.' && key[i-1] != '.':
		default:
			return false
		}
	}
	return true
}
