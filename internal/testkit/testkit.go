// Package testkit has the real HTTP peers end-to-end tests talk to: a feed
// server whose content can be changed mid-test, and a webhook sink that
// checks signatures and records every delivery.
package testkit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/feedmon/feedmon/internal/event"
)

// FeedServer serves one feed document at /feed.xml.
type FeedServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	requests int
}

// NewFeedServer serves body until SetBody changes it; closed when t ends.
func NewFeedServer(t testing.TB, body []byte) *FeedServer {
	t.Helper()
	fs := &FeedServer{body: body}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.requests++
		b := fs.body
		fs.mu.Unlock()
		w.Header().Set("Content-Type", "application/rss+xml; charset=utf-8")
		w.Write(b)
	}))
	t.Cleanup(fs.Close)
	return fs
}

// URL of the feed.
func (fs *FeedServer) URL() string { return fs.Server.URL + "/feed.xml" }

// SetBody changes what the feed serves.
func (fs *FeedServer) SetBody(b []byte) {
	fs.mu.Lock()
	fs.body = b
	fs.mu.Unlock()
}

// Requests is how often the feed was fetched.
func (fs *FeedServer) Requests() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.requests
}

// Delivery is one webhook request as the sink received it.
type Delivery struct {
	Subscriber     string        `json:"subscriber"`
	Items          []*event.Item `json:"items"`
	IdempotencyKey string        `json:"-"`
	SignatureOK    bool          `json:"-"`
	// StandardOK: the Standard Webhooks headers verify with the
	// specification's reference library (timestamp tolerance included).
	StandardOK bool `json:"-"`
}

// Sink is a webhook receiver.
type Sink struct {
	*httptest.Server
	secret     string
	mu         sync.Mutex
	deliveries []Delivery
}

// NewSink starts a webhook sink that verifies X-Feedmon-Signature and the
// Standard Webhooks signature with secret; closed when t ends.
func NewSink(t testing.TB, secret string) *Sink {
	t.Helper()
	s := &Sink{secret: secret}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var d Delivery
		if err := json.Unmarshal(body, &d); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		d.IdempotencyKey = r.Header.Get("Idempotency-Key")
		d.SignatureOK = VerifySignature(s.secret, body, r.Header.Get("X-Feedmon-Signature"))
		d.StandardOK = VerifyStandard(s.secret, body, r.Header) == nil
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

// URL of the hook.
func (s *Sink) URL() string { return s.Server.URL + "/hook" }

// Deliveries returns a copy of what was received so far.
func (s *Sink) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Items returns every item received so far, in order.
func (s *Sink) Items() []*event.Item {
	var out []*event.Item
	for _, d := range s.Deliveries() {
		out = append(out, d.Items...)
	}
	return out
}

// CountByID counts how often each item id arrived.
func (s *Sink) CountByID() map[string]int {
	n := map[string]int{}
	for _, it := range s.Items() {
		n[it.ID]++
	}
	return n
}

// VerifyStandard checks the Standard Webhooks headers of a delivery with
// the specification's reference Go library: an independent verifier, as a
// receiver would use it. A secret written whsec_<base64> is given to it as
// such; any other is a raw key (its bytes as written).
func VerifyStandard(secret string, body []byte, h http.Header) error {
	var wh *standardwebhooks.Webhook
	var err error
	if strings.HasPrefix(secret, "whsec_") {
		wh, err = standardwebhooks.NewWebhook(secret)
	} else {
		wh, err = standardwebhooks.NewWebhookRaw([]byte(secret))
	}
	if err != nil {
		return err
	}
	return wh.Verify(body, h)
}

// VerifySignature checks an X-Feedmon-Signature header against body.
func VerifySignature(secret string, body []byte, header string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(header))
}

// SyncBuffer is a bytes.Buffer safe for a writer and a reader in different
// goroutines (a process's output, a receiver's stdout).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ReadJSONL decodes a JSON-lines fixture file, one T per non-blank line
// (lines up to 1 MiB), failing the test on any error with file and line.
func ReadJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}
