// Package webhook delivers alerts as a JSON POST. With a secret configured
// each request is signed twice: X-Feedmon-Signature (HMAC-SHA256 of the body
// alone, feedmon's own scheme) and the Standard Webhooks headers
// (webhook-id, webhook-timestamp, webhook-signature; standardwebhooks.com),
// which bind the signature to a delivery id and a time so that a receiver
// can use a ready-made verifier and reject stale or replayed requests.
// Later reports of a story already alerted arrive as update events (body
// "kind", header X-Feedmon-Event).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/httpx"
	"github.com/feedmon/feedmon/internal/version"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// Header names of the contract.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Feedmon-Signature"
	// HeaderEvent says what the body is before it is parsed: alert,
	// update (later reports of stories already alerted) or mixed.
	HeaderEvent = "X-Feedmon-Event"

	// Standard Webhooks: webhook-id is the Idempotency-Key (the same on
	// every attempt), webhook-timestamp the Unix time of this attempt and
	// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Notifier posts to one webhook URL.
type Notifier struct {
	url    string
	secret []byte
	// key is the Standard Webhooks HMAC key; keyErr is set instead when
	// the secret is a whsec_ value that does not decode (feedmon check
	// refuses such a config, so this is for configs built in code).
	key    []byte
	keyErr error
	client *http.Client
	now    func() time.Time
}

// New returns a notifier for cfg. client is used as is (its timeout, proxy
// and TLS settings); nil means one that does not follow
// redirects, with the caller's context bounding each attempt.
func New(cfg config.Webhook, client *http.Client) *Notifier {
	if client == nil {
		client = alert.NewHTTPClient(0)
	}
	n := &Notifier{url: cfg.URL, client: client, now: time.Now}
	if cfg.Secret != "" {
		n.secret = []byte(cfg.Secret)
		n.key, n.keyErr = cfg.StandardKey()
	}
	return n
}

// WithClock sets the clock that gives webhook-timestamp (default time.Now).
func (n *Notifier) WithClock(now func() time.Time) *Notifier {
	n.now = now
	return n
}

// Sign returns the X-Feedmon-Signature value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SignStandard returns the Standard Webhooks signature header value of
// body, sent as delivery id at ts, under key.
func SignStandard(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Notify posts the batch. 2xx is success; 429, 5xx and transport errors
// (timeouts, refused connections) are retryable; any other status is
// permanent.
func (n *Notifier) Notify(ctx context.Context, b *alert.Batch) (retry bool, err error) {
	if n.keyErr != nil {
		return false, fmt.Errorf("webhook: secret: %w", n.keyErr)
	}
	body, err := alert.MarshalBody(b)
	if err != nil {
		return false, fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook: request: %w", httpx.ScrubURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", version.UserAgent())
	req.Header.Set(HeaderIdempotencyKey, b.Key)
	req.Header.Set(HeaderEvent, b.Event())
	// The timestamp is this attempt's: a retry an hour later must not
	// look stale to a receiver that rejects old deliveries.
	ts := n.now()
	req.Header.Set(HeaderWebhookID, b.Key)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if n.secret != nil {
		req.Header.Set(HeaderSignature, Sign(n.secret, body))
		req.Header.Set(HeaderWebhookSignature, SignStandard(n.key, b.Key, ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// Transport failures (refused, reset, timed out) may pass.
		return true, fmt.Errorf("webhook: post %s: %w", config.Redact(n.url), httpx.ScrubURLError(err))
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	return alert.CheckResponse("webhook", resp, n.now())
}
