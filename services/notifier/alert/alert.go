// Package alert holds what the notifier and its receivers share: the batch
// a receiver delivers, the JSON body of the webhook and nats receivers, and
// the HTTP answer classification (what is retried, what is permanent). It
// exists apart from package notifier so that receivers need not import the
// pipeline that drives them.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/httpx"
)

// MaxRetryAfter caps a server's Retry-After: a misconfigured or hostile
// server must not park a delivery for days.
const MaxRetryAfter = time.Hour

// maxErrorBody bounds how much of an error response is kept in the error.
const maxErrorBody = 512

// Batch is one delivery: the items one receiver of one subscriber gets in
// one message (a single item, or a digest).
type Batch struct {
	Subscriber string
	// Receiver is the receiver kind (webhook, slack, email, stdout, nats).
	Receiver string
	// Key is the idempotency key: the same for every attempt of the same
	// delivery, so that the far side can drop a re-send.
	Key   string
	Items []*event.Item
	// Updates marks the items that are later reports of a story the
	// subscriber was already alerted to: item id → the id of the story's
	// first report. Items not in it alert as usual. It is not part of the
	// key: a delivery is the same delivery whatever its role.
	Updates map[string]string
}

// Event kinds of a delivery, as the webhook and nats bodies and the
// X-Feedmon-Event header name them.
const (
	// EventAlert: every item is the first report of its story (or has none).
	EventAlert = "alert"
	// EventUpdate: every item is a later report of a story already alerted.
	EventUpdate = "update"
	// EventMixed: both (a digest).
	EventMixed = "mixed"
)

// FirstOf returns the id of the first report of its story when it is a
// later report (an update), and false when it alerts as usual.
func (b *Batch) FirstOf(it *event.Item) (string, bool) {
	first, ok := b.Updates[it.ID]
	return first, ok
}

// IsUpdate reports whether it is a later report of an alerted story.
func (b *Batch) IsUpdate(it *event.Item) bool {
	_, ok := b.Updates[it.ID]
	return ok
}

// CountUpdates is how many of the batch's items are updates.
func (b *Batch) CountUpdates() int {
	n := 0
	for _, it := range b.Items {
		if b.IsUpdate(it) {
			n++
		}
	}
	return n
}

// Event is the batch's kind: EventAlert, EventUpdate or EventMixed.
func (b *Batch) Event() string {
	switch n := b.CountUpdates(); {
	case n == 0:
		return EventAlert
	case n == len(b.Items):
		return EventUpdate
	}
	return EventMixed
}

// Story is one story's items in a batch: its first report and the later
// reports that follow it. Head is nil when the first report is not in the
// batch (it was alerted earlier).
type Story struct {
	Head *event.Item
	Also []*event.Item
}

// Stories groups the batch's items by story, in the order of their first
// appearance: each first report with its later reports, then updates whose
// first report went out earlier, one group per story.
func (b *Batch) Stories() []Story {
	var (
		out    []Story
		heads  = map[string]int{} // item id of a head -> index in out
		orphan = map[string]int{} // first id of a headless story -> index in out
	)
	for _, it := range b.Items {
		if !b.IsUpdate(it) {
			heads[it.ID] = len(out)
			out = append(out, Story{Head: it})
		}
	}
	var tail []Story
	for _, it := range b.Items {
		first, ok := b.FirstOf(it)
		if !ok {
			continue
		}
		if i, ok := heads[first]; ok {
			out[i].Also = append(out[i].Also, it)
			continue
		}
		if i, ok := orphan[first]; ok {
			tail[i].Also = append(tail[i].Also, it)
			continue
		}
		orphan[first] = len(tail)
		tail = append(tail, Story{Also: []*event.Item{it}})
	}
	return append(out, tail...)
}

// Source names where an item came from, for "also reported by": its feed's
// title, else the host of its feed (or link), flattened to one line.
func Source(it *event.Item) string {
	if s := Sanitize(it.FeedTitle); s != "" {
		return s
	}
	for _, raw := range []string{it.FeedURL, it.Link} {
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.Hostname() != "" {
			return Sanitize(strings.TrimPrefix(u.Hostname(), "www."))
		}
	}
	return "another source"
}

// NewBatch builds the batch of items for one receiver of one subscriber.
// The items are shared with other receivers' batches: receivers must not
// modify them.
func NewBatch(subscriber, receiver string, items ...*event.Item) *Batch {
	return &Batch{Subscriber: subscriber, Receiver: receiver, Key: Key(subscriber, receiver, items...), Items: items}
}

// Key derives the idempotency key of a delivery from who gets it and which
// items it carries (in any order), so that every attempt and every replica
// computes the same key.
func Key(subscriber, receiver string, items ...*event.Item) string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	slices.Sort(ids)
	h := sha256.New()
	h.Write([]byte(subscriber))
	h.Write([]byte{0})
	h.Write([]byte(receiver))
	for _, id := range ids {
		h.Write([]byte{0})
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Body is the JSON document the webhook and nats receivers send. Kind is
// EventAlert, EventUpdate or EventMixed; Updates maps each item that is a
// later report of an alerted story to that story's first report (omitted
// when there is none).
type Body struct {
	Subscriber string            `json:"subscriber"`
	Kind       string            `json:"kind"`
	Updates    map[string]string `json:"updates,omitempty"`
	Items      []*event.Item     `json:"items"`
}

// MarshalBody encodes the batch as the contract's body. The encoding is
// deterministic, so every retry of a delivery carries the same bytes (and
// the same signature): map keys sorted and no HTML escaping, byte for byte
// what encoding/json writes (TestMarshalBodyAsEncodingJSON); go-json does
// it without walking the types by reflection on every call.
func MarshalBody(b *Batch) ([]byte, error) {
	items := make([]*event.Item, len(b.Items))
	for i, it := range b.Items {
		items[i] = it
		if it.Topics == nil {
			// A body never carries "topics": null.
			cp := *it
			cp.Topics = []string{}
			items[i] = &cp
		}
	}
	var updates map[string]string
	for _, it := range b.Items {
		if first, ok := b.FirstOf(it); ok {
			if updates == nil {
				updates = map[string]string{}
			}
			updates[it.ID] = first
		}
	}
	body, err := json.MarshalWithOption(Body{Subscriber: b.Subscriber, Kind: b.Event(), Updates: updates, Items: items}, json.DisableHTMLEscape())
	if err != nil {
		return nil, fmt.Errorf("alert: encode body: %w", err)
	}
	return body, nil
}

// RetryAfterError is a retryable failure for which the far side said when
// to come back.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryDelay returns the delay a failure asks for, if it carries one.
func RetryDelay(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.Delay, true
	}
	return 0, false
}

// CheckResponse classifies an HTTP answer the way the contract says: 2xx
// success; 429 and 5xx retryable (with the server's Retry-After when it
// gives one); any other status permanent. It reads (a bounded prefix of)
// the body for the error and leaves closing it to the caller.
func CheckResponse(pkg string, resp *http.Response, now time.Time) (retry bool, err error) {
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	err = fmt.Errorf("%s: unexpected status %s", pkg, resp.Status)
	if s := strings.TrimSpace(string(snippet)); s != "" {
		err = fmt.Errorf("%s: unexpected status %s: %q", pkg, resp.Status, config.Redact(s))
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		if d, ok := httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), now, MaxRetryAfter); ok {
			return true, &RetryAfterError{Delay: d, Err: err}
		}
		return true, err
	}
	return false, err
}

// NewHTTPClient returns the HTTP client receivers use by default: bounded
// by timeout, and not following redirects, because a redirected POST turns
// into a GET that may "succeed" on a login page: a 3xx is an answer, and
// not a 2xx.
func NewHTTPClient(timeout time.Duration) *http.Client {
	// Many workers deliver to the same few hosts: keep their connections
	// alive instead of the default transport's two idle ones per host.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 128
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Sanitize makes s safe for one line of text: control characters
// (including CR, LF, tab and the Unicode line and paragraph separators)
// become spaces and runs of spaces collapse, so item text can neither
// break a line nor smuggle in a header.
func Sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == '\ufeff' || r == ' ' {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return strings.TrimRight(b.String(), " ")
}
