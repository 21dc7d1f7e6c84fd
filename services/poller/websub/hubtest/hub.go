// Package hubtest is a WebSub hub for tests and benchmarks, on loopback:
// it takes subscription requests, verifies intent with the subscriber,
// and distributes content signed with the subscriber's secret.
package hubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Request is one subscription request as the hub received it.
type Request struct {
	Mode, Topic, Callback, Secret string
	Lease                         int
	// Path is the hub path the request was posted to.
	Path string
}

// Verification is one verification of intent the hub made.
type Verification struct {
	Mode, Topic, Callback string
	Status                int
	OK                    bool // 200 with the challenge echoed
}

// Subscription is a verified subscription.
type Subscription struct {
	Topic, Callback, Secret string
	Lease                   time.Duration
	Verified                time.Time
}

// Hub is the test hub. Its zero settings answer 202, verify at once,
// grant the lease asked for and sign with sha256.
type Hub struct {
	*httptest.Server

	mu sync.Mutex
	// Status answers subscription requests (default 202).
	status int
	// grant, when set, is the lease granted whatever was asked.
	grant time.Duration
	algo  string
	// sync verifies before answering the subscription request, as some
	// hubs do.
	sync bool
	// redirects maps a hub path to where it redirects, with its status.
	redirects map[string]redirect
	requests  []Request
	verifies  []Verification
	subs      map[string]*Subscription // topic + " " + callback
	client    *http.Client
}

type redirect struct {
	to     string
	status int
}

// New starts a hub on loopback; its endpoint is URL() ("/hub").
func New() *Hub {
	h := &Hub{status: http.StatusAccepted, algo: "sha256", redirects: map[string]redirect{}, subs: map[string]*Subscription{},
		client: &http.Client{Timeout: 10 * time.Second}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	return h
}

// URL is the hub's endpoint.
func (h *Hub) URL() string { return h.Server.URL + "/hub" }

// SetStatus makes the hub answer subscription requests with status (and
// not verify unless it is 2xx).
func (h *Hub) SetStatus(status int) { h.mu.Lock(); h.status = status; h.mu.Unlock() }

// SetAlgorithm chooses the signature algorithm: sha1, sha256, sha384, sha512.
func (h *Hub) SetAlgorithm(a string) { h.mu.Lock(); h.algo = a; h.mu.Unlock() }

// SetSyncVerify makes the hub verify intent before it answers the
// subscription request, rather than after.
func (h *Hub) SetSyncVerify(on bool) { h.mu.Lock(); h.sync = on; h.mu.Unlock() }

// GrantLease makes the hub grant d whatever the subscriber asks.
func (h *Hub) GrantLease(d time.Duration) { h.mu.Lock(); h.grant = d; h.mu.Unlock() }

// Redirect makes requests to path (e.g. "/old") redirect to the hub
// endpoint with status (301, 302, 307, 308).
func (h *Hub) Redirect(path string, status int) string {
	h.mu.Lock()
	h.redirects[path] = redirect{to: "/hub", status: status}
	h.mu.Unlock()
	return h.Server.URL + path
}

// Requests returns the subscription requests received so far.
func (h *Hub) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

// Verifications returns the verifications of intent made so far.
func (h *Hub) Verifications() []Verification {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Verification(nil), h.verifies...)
}

// Subscriptions returns the verified subscriptions of topic.
func (h *Hub) Subscriptions(topic string) []Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Subscription
	for _, s := range h.subs {
		if s.Topic == topic {
			out = append(out, *s)
		}
	}
	return out
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	rd, redirected := h.redirects[r.URL.Path]
	status := h.status
	grant := h.grant
	sync := h.sync
	h.mu.Unlock()
	if redirected {
		http.Redirect(w, r, rd.to, rd.status)
		return
	}
	if r.URL.Path != "/hub" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		// What public hubs do with a bare GET: a page.
		io.WriteString(w, "test hub\n")
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{
		Mode: r.PostForm.Get("hub.mode"), Topic: r.PostForm.Get("hub.topic"),
		Callback: r.PostForm.Get("hub.callback"), Secret: r.PostForm.Get("hub.secret"), Path: r.URL.Path,
	}
	req.Lease, _ = strconv.Atoi(r.PostForm.Get("hub.lease_seconds"))
	h.mu.Lock()
	h.requests = append(h.requests, req)
	h.mu.Unlock()
	if req.Mode != "subscribe" && req.Mode != "unsubscribe" || req.Topic == "" || req.Callback == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	lease := time.Duration(req.Lease) * time.Second
	if grant > 0 {
		lease = grant
	}
	if sync && status/100 == 2 {
		h.verify(req, lease)
	}
	w.WriteHeader(status)
	if status/100 != 2 || sync {
		return
	}
	go h.verify(req, lease)
}

// verify makes the verification of intent for req, as a hub does after
// answering 202.
func (h *Hub) verify(req Request, lease time.Duration) {
	v := Verification{Mode: req.Mode, Topic: req.Topic, Callback: req.Callback}
	v.Status, v.OK = h.Verify(req.Mode, req.Topic, req.Callback, lease)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verifies = append(h.verifies, v)
	if !v.OK {
		return
	}
	k := req.Topic + " " + req.Callback
	if req.Mode == "unsubscribe" {
		delete(h.subs, k)
		return
	}
	h.subs[k] = &Subscription{Topic: req.Topic, Callback: req.Callback, Secret: req.Secret, Lease: lease, Verified: time.Now()}
}

// Verify sends one verification of intent to callback and reports the
// status and whether the challenge came back.
func (h *Hub) Verify(mode, topic, callback string, lease time.Duration) (int, bool) {
	challenge := randomHex(16)
	q := url.Values{"hub.mode": {mode}, "hub.topic": {topic}, "hub.challenge": {challenge}}
	if mode == "subscribe" {
		q.Set("hub.lease_seconds", strconv.Itoa(int(lease/time.Second)))
	}
	u, err := url.Parse(callback)
	if err != nil {
		return 0, false
	}
	// Keep the callback's own query (the spec allows one).
	cq := u.Query()
	for k, v := range q {
		cq[k] = v
	}
	u.RawQuery = cq.Encode()
	resp, err := h.client.Get(u.String())
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return resp.StatusCode, resp.StatusCode == http.StatusOK && string(body) == challenge
}

// Deny sends hub.mode=denied for topic to callback.
func (h *Hub) Deny(topic, callback, reason string) (int, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return 0, err
	}
	q := u.Query()
	q.Set("hub.mode", "denied")
	q.Set("hub.topic", topic)
	q.Set("hub.reason", reason)
	u.RawQuery = q.Encode()
	resp, err := h.client.Get(u.String())
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Publish distributes body to every verified subscriber of topic, signed
// with the hub's algorithm, and returns the status of each delivery.
func (h *Hub) Publish(topic string, body []byte, contentType string) []int {
	h.mu.Lock()
	algo := h.algo
	var subs []Subscription
	for _, s := range h.subs {
		if s.Topic == topic {
			subs = append(subs, *s)
		}
	}
	h.mu.Unlock()
	var out []int
	for _, s := range subs {
		st, err := h.Deliver(s.Callback, body, contentType, Sign(algo, s.Secret, body))
		if err != nil {
			st = 0
		}
		out = append(out, st)
	}
	return out
}

// Deliver POSTs body to callback with the given X-Hub-Signature ("" for
// none), as a hub's content distribution request.
func (h *Hub) Deliver(callback string, body []byte, contentType, signature string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, callback, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if signature != "" {
		req.Header.Set("X-Hub-Signature", signature)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Sign is the X-Hub-Signature of body with secret under algo.
func Sign(algo, secret string, body []byte) string {
	var f func() hash.Hash
	switch algo {
	case "sha1":
		f = sha1.New
	case "sha384":
		f = sha512.New384
	case "sha512":
		f = sha512.New
	default:
		f = sha256.New
	}
	m := hmac.New(f, []byte(secret))
	m.Write(body)
	return fmt.Sprintf("%s=%s", algo, hex.EncodeToString(m.Sum(nil)))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
