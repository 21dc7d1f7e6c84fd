// Package webhook delivers alerts as a JSON POST, signed with HMAC-SHA256
// when a secret is configured. Later reports of a story already alerted
// arrive as update events (body "kind", header X-Feedmon-Event).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/feedmon/feedmon/internal/config"
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
)

// Notifier posts to one webhook URL.
type Notifier struct {
	url    string
	secret []byte
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
	}
	return n
}

// Sign returns the X-Feedmon-Signature value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Notify posts the batch. 2xx is success; 429, 5xx and transport errors
// (timeouts, refused connections) are retryable; any other status is
// permanent.
func (n *Notifier) Notify(ctx context.Context, b *alert.Batch) (retry bool, err error) {
	body, err := alert.MarshalBody(b)
	if err != nil {
		return false, fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook: request: %w", alert.RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", version.UserAgent())
	req.Header.Set(HeaderIdempotencyKey, b.Key)
	req.Header.Set(HeaderEvent, b.Event())
	if n.secret != nil {
		req.Header.Set(HeaderSignature, Sign(n.secret, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// Transport failures (refused, reset, timed out) may pass.
		return true, fmt.Errorf("webhook: post %s: %w", config.Redact(n.url), alert.RedactURLError(err))
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	return alert.CheckResponse("webhook", resp, n.now())
}
