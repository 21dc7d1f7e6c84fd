package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
