package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/webhook"
)

func batch() *alert.Batch {
	return alert.NewBatch("analysts", "webhook", &event.Item{
		ID: "id-1", Title: "Title <&> \"quoted\"\nline", Link: "https://example.org/a?b=1&c=2",
		FeedURL: "https://example.org/feed", Topics: []string{"trade", "defense"},
	})
}

func TestNotifyRequest(t *testing.T) {
	t.Parallel()
	type got struct {
		method string
		header http.Header
		body   []byte
	}
	ch := make(chan got, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- got{r.Method, r.Header.Clone(), body}
	}))
	defer srv.Close()

	n := webhook.New(config.Webhook{URL: srv.URL, Secret: "topsecret"}, srv.Client())
	b := batch()
	for range 2 {
		if retry, err := n.Notify(context.Background(), b); err != nil || retry {
			t.Fatalf("Notify = %v, %v", retry, err)
		}
	}
	first, second := <-ch, <-ch
	if first.method != http.MethodPost {
		t.Errorf("method %s", first.method)
	}
	if ct := first.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if k := first.header.Get("Idempotency-Key"); k != b.Key || k == "" {
		t.Errorf("Idempotency-Key %q, want %q", k, b.Key)
	}
	mac := hmac.New(sha256.New, []byte("topsecret"))
	mac.Write(first.body)
	if sig := first.header.Get("X-Feedmon-Signature"); sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature %q does not verify", sig)
	}
	if string(first.body) != string(second.body) || first.header.Get("X-Feedmon-Signature") != second.header.Get("X-Feedmon-Signature") ||
		first.header.Get("Idempotency-Key") != second.header.Get("Idempotency-Key") {
		t.Error("a second attempt differs from the first")
	}
	var body struct {
		Subscriber string       `json:"subscriber"`
		Items      []event.Item `json:"items"`
	}
	if err := json.Unmarshal(first.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Subscriber != "analysts" || len(body.Items) != 1 || body.Items[0].ID != "id-1" ||
		body.Items[0].Title != b.Items[0].Title || body.Items[0].Link != b.Items[0].Link ||
		strings.Join(body.Items[0].Topics, ",") != "trade,defense" {
		t.Errorf("body = %s", first.body)
	}
}

func TestNoSecretNoSignature(t *testing.T) {
	t.Parallel()
	var sig = "unset"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig = r.Header.Get("X-Feedmon-Signature")
	}))
	defer srv.Close()
	if _, err := webhook.New(config.Webhook{URL: srv.URL}, srv.Client()).Notify(context.Background(), batch()); err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		t.Errorf("signature %q sent without a secret", sig)
	}
}

func TestClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		retryAfter string
		wantErr    bool
		wantRetry  bool
		wantDelay  time.Duration
	}{
		{status: 200},
		{status: 202},
		{status: 204},
		{status: 302, wantErr: true}, // not followed: a POST turned GET proves nothing
		{status: 400, wantErr: true},
		{status: 401, wantErr: true},
		{status: 404, wantErr: true},
		{status: 410, wantErr: true},
		{status: 422, wantErr: true},
		{status: 429, wantErr: true, wantRetry: true},
		{status: 429, retryAfter: "7", wantErr: true, wantRetry: true, wantDelay: 7 * time.Second},
		{status: 429, retryAfter: "999999", wantErr: true, wantRetry: true, wantDelay: alert.MaxRetryAfter},
		{status: 500, wantErr: true, wantRetry: true},
		{status: 502, wantErr: true, wantRetry: true},
		{status: 503, retryAfter: "2", wantErr: true, wantRetry: true, wantDelay: 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status)+tc.retryAfter, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					t.Errorf("redirect followed: %s %s", r.Method, r.URL)
				}
				w.Header().Set("Location", "/login")
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, "nope")
			}))
			defer srv.Close()
			retry, err := webhook.New(config.Webhook{URL: srv.URL}, nil).Notify(context.Background(), batch())
			if (err != nil) != tc.wantErr || retry != tc.wantRetry {
				t.Fatalf("Notify = %v, %v; want retry %v, err %v", retry, err, tc.wantRetry, tc.wantErr)
			}
			d, ok := alert.RetryDelay(err)
			if ok != (tc.wantDelay > 0) || d != tc.wantDelay {
				t.Errorf("delay = %v, %v; want %v", d, ok, tc.wantDelay)
			}
		})
	}
}

func TestTransportErrorsRetryAndRedact(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()

	tests := []struct {
		name string
		url  string
	}{
		{"refused", "http://user:hunter2@" + addr + "/hook?token=hunter2"},
		{"timeout", slow.URL + "/hook?token=hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			retry, err := webhook.New(config.Webhook{URL: tc.url}, nil).Notify(ctx, batch())
			if err == nil || !retry {
				t.Fatalf("Notify = %v, %v; want a retryable error", retry, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// TestEventKind: the body's kind and the X-Feedmon-Event header agree, and
// an update names the first report of its story.
func TestEventKind(t *testing.T) {
	t.Parallel()
	a := &event.Item{ID: "a", Topics: []string{"trade"}}
	u := &event.Item{ID: "u", Topics: []string{"trade"}, StoryID: "a"}
	tests := []struct {
		name    string
		items   []*event.Item
		updates map[string]string
		want    string
	}{
		{"alert", []*event.Item{a}, nil, alert.EventAlert},
		{"update", []*event.Item{u}, map[string]string{"u": "a"}, alert.EventUpdate},
		{"mixed", []*event.Item{a, u}, map[string]string{"u": "a"}, alert.EventMixed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				header string
				body   []byte
				sig    string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				header, sig = r.Header.Get(webhook.HeaderEvent), r.Header.Get(webhook.HeaderSignature)
				body, _ = io.ReadAll(r.Body)
			}))
			defer srv.Close()
			b := alert.NewBatch("analysts", "webhook", tc.items...)
			b.Updates = tc.updates
			if retry, err := webhook.New(config.Webhook{URL: srv.URL, Secret: "s"}, srv.Client()).Notify(context.Background(), b); err != nil || retry {
				t.Fatalf("Notify = %v, %v", retry, err)
			}
			var got struct {
				Kind    string            `json:"kind"`
				Updates map[string]string `json:"updates"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if header != tc.want || got.Kind != tc.want {
				t.Errorf("header %q, kind %q; want %q", header, got.Kind, tc.want)
			}
			if len(got.Updates) != len(tc.updates) || got.Updates["u"] != tc.updates["u"] {
				t.Errorf("updates = %v, want %v", got.Updates, tc.updates)
			}
			if sig != webhook.Sign([]byte("s"), body) {
				t.Error("signature does not cover the body")
			}
		})
	}
}

// TestStandardWebhooks verifies every delivery with the reference Go
// library of the Standard Webhooks specification, not with feedmon's own
// code: a secret used as written (a raw key) and one written whsec_<base64>.
func TestStandardWebhooks(t *testing.T) {
	t.Parallel()
	raw := []byte{0x8f, 0x01, 0xfe, 'k', 'e', 'y', 0x00, 0x7f, 0x80, 0x99, 0x10, 0x20}
	tests := []struct {
		name   string
		secret string
		verify func(t *testing.T) *standardwebhooks.Webhook
	}{
		{
			name:   "as written",
			secret: "plain secret, not base64!",
			verify: func(t *testing.T) *standardwebhooks.Webhook {
				wh, err := standardwebhooks.NewWebhookRaw([]byte("plain secret, not base64!"))
				if err != nil {
					t.Fatal(err)
				}
				return wh
			},
		},
		{
			name:   "whsec",
			secret: "whsec_" + base64.StdEncoding.EncodeToString(raw),
			verify: func(t *testing.T) *standardwebhooks.Webhook {
				wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(raw))
				if err != nil {
					t.Fatal(err)
				}
				return wh
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wh := tc.verify(t)
			type got struct {
				header http.Header
				body   []byte
			}
			ch := make(chan got, 2)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				ch <- got{r.Header.Clone(), body}
			}))
			defer srv.Close()

			// Two attempts of one delivery, the second (a retry) an hour
			// later: same id, fresh timestamp, both verifying now.
			clock := time.Now().Add(-time.Hour)
			n := webhook.New(config.Webhook{URL: srv.URL, Secret: tc.secret}, srv.Client()).
				WithClock(func() time.Time { return clock })
			b := batch()
			var attempts []got
			for _, at := range []time.Time{clock, time.Now()} {
				clock = at
				if retry, err := n.Notify(context.Background(), b); err != nil || retry {
					t.Fatalf("Notify = %v, %v", retry, err)
				}
				attempts = append(attempts, <-ch)
			}
			first, retry := attempts[0], attempts[1]

			if err := wh.Verify(retry.body, retry.header); err != nil {
				t.Errorf("retry does not verify: %v", err)
			}
			if err := wh.VerifyIgnoringTimestamp(first.body, first.header); err != nil {
				t.Errorf("first attempt does not verify: %v", err)
			}
			// The reference verifier rejects the hour-old first attempt:
			// its timestamp is the time it was sent, not the delivery's.
			if err := wh.Verify(first.body, first.header); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
				t.Errorf("hour-old attempt: Verify = %v, want %v", err, standardwebhooks.ErrMessageTooOld)
			}
			if id := first.header.Get("webhook-id"); id != b.Key || retry.header.Get("webhook-id") != id {
				t.Errorf("webhook-id %q then %q, want the Idempotency-Key %q", id, retry.header.Get("webhook-id"), b.Key)
			}
			if ts := retry.header.Get("webhook-timestamp"); ts != strconv.FormatInt(clock.Unix(), 10) {
				t.Errorf("webhook-timestamp %q, want %d", ts, clock.Unix())
			}
			if first.header.Get("webhook-timestamp") == retry.header.Get("webhook-timestamp") {
				t.Error("the retry kept the first attempt's timestamp")
			}
			// A replay with a changed body or another delivery's id fails.
			tampered := retry.header.Clone()
			tampered.Set("webhook-id", "other")
			if err := wh.Verify(retry.body, tampered); err == nil {
				t.Error("a changed webhook-id still verifies")
			}
			if err := wh.Verify(append([]byte(" "), retry.body...), retry.header); err == nil {
				t.Error("a changed body still verifies")
			}
			// feedmon's own signature is unchanged: HMAC of the body with
			// the secret as written.
			if sig := retry.header.Get("X-Feedmon-Signature"); sig != webhook.Sign([]byte(tc.secret), retry.body) {
				t.Errorf("X-Feedmon-Signature %q changed", sig)
			}
		})
	}
}

func TestNoSecretNoStandardSignature(t *testing.T) {
	t.Parallel()
	ch := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.Header.Clone()
	}))
	defer srv.Close()
	b := batch()
	if _, err := webhook.New(config.Webhook{URL: srv.URL}, srv.Client()).Notify(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	h := <-ch
	if h.Get("webhook-signature") != "" {
		t.Errorf("webhook-signature %q sent without a secret", h.Get("webhook-signature"))
	}
	if h.Get("webhook-id") != b.Key || h.Get("webhook-timestamp") == "" {
		t.Errorf("webhook-id %q, webhook-timestamp %q: want them on every delivery", h.Get("webhook-id"), h.Get("webhook-timestamp"))
	}
}

func TestBadWhsecSecretIsPermanent(t *testing.T) {
	t.Parallel()
	hits := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits <- struct{}{} }))
	defer srv.Close()
	retry, err := webhook.New(config.Webhook{URL: srv.URL, Secret: "whsec_***"}, srv.Client()).Notify(context.Background(), batch())
	if err == nil || retry {
		t.Fatalf("Notify = %v, %v; want a permanent error", retry, err)
	}
	if strings.Contains(err.Error(), "***") {
		t.Errorf("error shows the secret: %v", err)
	}
	select {
	case <-hits:
		t.Error("posted without a usable key")
	default:
	}
}
