package websub

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate limits of the callback server. A hub sends a notification per
// change of a topic; a flood on one callback is someone else, and must
// neither hammer KV nor publish at will.
const (
	perCallbackRate  = 5   // requests/s on one callback path
	perCallbackBurst = 20  //
	globalRate       = 200 // requests/s on the whole server
	globalBurst      = 400
	// handleTimeout bounds the work behind one request (KV, parse, publish).
	handleTimeout = 30 * time.Second
)

// ServeHTTP is the callback server: verification of intent (GET, §5.3)
// and content distribution (POST, §7) on <callback_url>/<feed key>/<path>.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !m.global.Allow() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), handleTimeout)
	defer cancel()
	key, path, ok := splitCallback(r.URL.Path)
	var rec *Record
	if ok {
		var err error
		if rec, err = m.store.get(ctx, key); err != nil {
			m.log.Warn("websub callback: subscription unavailable", "err", err)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	if rec == nil || subtle.ConstantTimeCompare([]byte(path), []byte(rec.Path)) != 1 {
		if r.Method == http.MethodPost {
			m.met.Notifications.WithLabelValues(ResultUnknown).Inc()
		}
		http.NotFound(w, r)
		return
	}
	if !m.limiter(key).Allow() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	switch r.Method {
	case http.MethodGet:
		m.verify(ctx, w, r, key, rec)
	case http.MethodPost:
		m.content(ctx, w, r, rec)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// splitCallback takes the last two segments of a callback path, so that a
// reverse proxy may or may not strip the callback URL's own path.
func splitCallback(p string) (key, path string, ok bool) {
	p = strings.Trim(p, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	path = p[i+1:]
	key = p[:i]
	if j := strings.LastIndexByte(key, '/'); j >= 0 {
		key = key[j+1:]
	}
	// Keys are feed tokens and paths hex: anything else is no callback of
	// ours (and must not reach KV as a key).
	if !tokenRe.MatchString(key) || !tokenRe.MatchString(path) {
		return "", "", false
	}
	return key, path, true
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func (m *Manager) limiter(key string) *rate.Limiter {
	m.limMu.Lock()
	defer m.limMu.Unlock()
	l := m.limits[key]
	if l == nil {
		l = rate.NewLimiter(perCallbackRate, perCallbackBurst)
		m.limits[key] = l
	}
	return l
}

// verify answers a hub's verification of intent: 200 with the challenge
// only when exactly that mode and topic is pending or active on this
// callback, 404 otherwise. A denial is recorded.
func (m *Manager) verify(ctx context.Context, w http.ResponseWriter, r *http.Request, key string, rec *Record) {
	q := r.URL.Query()
	mode, topic, challenge := q.Get("hub.mode"), q.Get("hub.topic"), q.Get("hub.challenge")
	now := m.now()
	var answer bool
	var err error
	var stored *Record
	switch mode {
	case "subscribe":
		if challenge == "" {
			break
		}
		lease := m.cfg.Lease.D()
		if s, perr := strconv.ParseInt(q.Get("hub.lease_seconds"), 10, 64); perr == nil && s > 0 {
			lease = time.Duration(min(s, 10*365*24*3600)) * time.Second
		}
		stored, err = m.store.update(ctx, key, func(cur *Record) (*Record, error) {
			if cur == nil || cur.Path != rec.Path || cur.Topic != topic || (cur.State != StatePending && cur.State != StateActive) {
				return nil, errNoChange
			}
			answer = true
			cur.State, cur.Error, cur.Failures = StateActive, "", 0
			cur.Expires = now.Add(lease)
			cur.RenewAt = now.Add(lease * 8 / 10)
			cur.RetryAt = time.Time{}
			return cur, nil
		})
	case "unsubscribe":
		if challenge == "" {
			break
		}
		stored, err = m.store.update(ctx, key, func(cur *Record) (*Record, error) {
			if cur == nil || cur.Path != rec.Path {
				return nil, errNoChange
			}
			if cur.State == StateUnsubscribing && cur.Topic == topic {
				answer = true
				return nil, nil // done: forget the subscription
			}
			for i, u := range cur.Unsub {
				if u.Topic == topic {
					answer = true
					cur.Unsub = append(cur.Unsub[:i], cur.Unsub[i+1:]...)
					return cur, nil
				}
			}
			return nil, errNoChange
		})
	case "denied":
		stored, err = m.store.update(ctx, key, func(cur *Record) (*Record, error) {
			if cur == nil || cur.Path != rec.Path || cur.Topic != topic || cur.State == StateUnsubscribing {
				return nil, errNoChange
			}
			answer = true
			reason := oneLine(q.Get("hub.reason"))
			if reason == "" {
				reason = "no reason given"
			}
			m.failRecord(cur, now, "denied by hub: "+reason)
			return cur, nil
		})
		challenge = ""
	}
	if err != nil {
		m.log.Warn("websub verification not recorded", "feed", m.redact(rec.FeedURL), "mode", mode, "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if answer {
		// This replica's scheduler sees the change at once; the others
		// through the KV watch.
		m.apply(key, stored, revOf(stored, rec))
	}
	if !answer {
		m.log.Info("websub verification refused", "feed", m.redact(rec.FeedURL), "mode", mode, "topic", m.redact(topic))
		http.NotFound(w, r)
		return
	}
	m.log.Info("websub verification answered", "feed", m.redact(rec.FeedURL), "mode", mode)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, challenge)
}

// revOf is the revision of the stored record, or one past the record it
// replaced when it was deleted.
func revOf(stored, prev *Record) uint64 {
	if stored != nil {
		return stored.rev
	}
	return prev.rev + 1
}

// content takes a content distribution request. Whatever it holds, a
// request on a known callback is answered 2xx as the spec asks: a missing
// or wrong signature drops the content (and is counted), never
// re-requested.
func (m *Manager) content(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *Record) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.maxBody))
	if err != nil {
		m.met.Notifications.WithLabelValues(ResultError).Inc()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body exceeds poll.max_body_bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	feed := m.redact(rec.FeedURL)
	// A failed subscription may still be live at the hub: its content is
	// as good as any. Only an unsubscribed feed's is not wanted.
	if rec.State == StateUnsubscribing {
		m.met.Notifications.WithLabelValues(ResultUnknown).Inc()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !validSignature(r.Header.Get("X-Hub-Signature"), rec.Secret, body) {
		m.met.Notifications.WithLabelValues(ResultBadSignature).Inc()
		m.log.Warn("websub content dropped: missing or wrong signature", "feed", feed)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if len(body) == 0 {
		// "Something changed": fetch the feed now.
		err = m.ingest.Fetch(ctx, rec.FeedURL)
	} else {
		err = m.ingest.Ingest(ctx, rec.FeedURL, body, r.Header.Get("Content-Type"))
	}
	if err != nil {
		// Not the hub's fault and nothing it could fix by sending again
		// (a body that is no feed, NATS away): poll the feed instead.
		m.met.Notifications.WithLabelValues(ResultError).Inc()
		m.log.Warn("websub content not taken; polling instead", "feed", feed, "err", err)
		m.ingest.PollNow(rec.FeedURL)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	m.met.Notifications.WithLabelValues(ResultOK).Inc()
	w.WriteHeader(http.StatusNoContent)
}

// validSignature checks X-Hub-Signature: <sha1|sha256|sha384|sha512>=<hex
// HMAC of the body with the secret>, in constant time.
func validSignature(header, secret string, body []byte) bool {
	method, sig, ok := strings.Cut(strings.TrimSpace(header), "=")
	if !ok || secret == "" {
		return false
	}
	var h func() hash.Hash
	switch strings.ToLower(method) {
	case "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha384":
		h = sha512.New384
	case "sha512":
		h = sha512.New
	default:
		return false
	}
	want, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	mac := hmac.New(h, []byte(secret))
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), want)
}
