package poller

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/httpx"
)

// maxRedirects bounds the redirect chain of one fetch.
const maxRedirects = 5

var (
	// Wrapped by "poller: fetch: " or "poller: read body: ", so unprefixed.
	errTooManyRedirects = errors.New("stopped after 5 redirects")
	errRedirectLoop     = errors.New("redirect loop")
	errBodyTooLarge     = errors.New("body exceeds poll.max_body_bytes")
)

// newHTTPClient builds the poller's own client: every phase has a deadline,
// the dialer refuses forbidden addresses after DNS resolution, redirects are
// bounded and loop-checked, compression is handled by ReadBody (so the size
// cap applies to the decompressed bytes), and no proxy is used (a proxy
// would hide the real destination from the address check).
func newHTTPClient(timeout time.Duration, perHost int, guard *addrGuard) *http.Client {
	connect := min(timeout, 10*time.Second)
	dialer := &net.Dialer{
		Timeout:   connect,
		KeepAlive: 30 * time.Second,
		Control:   guard.control,
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    connect,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    max(perHost, 2),
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: checkRedirect,
	}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return errTooManyRedirects
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
	}
	// One return to a URL is allowed: sites behind bot protection set a
	// cookie and redirect to the same URL. A second return is a loop.
	next := req.URL.String()
	seen := 0
	for _, v := range via {
		if v.URL.String() == next {
			seen++
		}
	}
	if seen >= 2 {
		return fmt.Errorf("%w: back to %s", errRedirectLoop, config.Redact(next))
	}
	return nil
}

// requestBuilder assembles one conditional GET of a feed.
type requestBuilder struct {
	client       *http.Client
	userAgent    string
	etag         string
	lastModified string
}

func (r *requestBuilder) withCache(etag, lastModified string) *requestBuilder {
	r.etag, r.lastModified = etag, lastModified
	return r
}

// execute sends the request. The caller owns the returned handler and must
// Close it. A transport error (DNS, refused address, timeout, redirects) is
// returned as err; HTTP error statuses are the handler's to judge.
func (r *requestBuilder) execute(ctx context.Context, feedURL string) (*responseHandler, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, feedURL, nil)
	if err != nil {
		return nil, fmt.Errorf("poller: request: %w", err)
	}
	req.Header.Set("User-Agent", r.userAgent)
	req.Header.Set("Accept", "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
	req.Header.Set("Accept-Encoding", "gzip")
	if r.etag != "" {
		req.Header.Set("If-None-Match", r.etag)
	}
	if r.lastModified != "" {
		req.Header.Set("If-Modified-Since", r.lastModified)
	}
	// Cookies live for one fetch only (its redirects), never across polls
	// or feeds.
	client := *r.client
	client.Jar = newFetchJar()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("poller: fetch: %w", httpx.ScrubURLError(err))
	}
	return &responseHandler{resp: resp}, nil
}

func newFetchJar() http.CookieJar {
	jar, _ := cookiejar.New(nil) // never fails without options
	return jar
}

// responseHandler answers the questions the refresh flow asks of a response.
type responseHandler struct {
	resp *http.Response
}

func (h *responseHandler) Close() {
	// Drain a little so the connection can be reused; never much, it may
	// be a hostile server.
	_, _ = io.CopyN(io.Discard, h.resp.Body, 4<<10)
	h.resp.Body.Close()
}

// IsModified is false for a 304 answer to a conditional GET.
func (h *responseHandler) IsModified() bool { return h.resp.StatusCode != http.StatusNotModified }

// IsRateLimited is true when the server asks us to slow down.
func (h *responseHandler) IsRateLimited() bool {
	return h.resp.StatusCode == http.StatusTooManyRequests || h.resp.StatusCode == http.StatusServiceUnavailable
}

// HasError reports statuses that mean no feed body is coming.
func (h *responseHandler) HasError() error {
	c := h.resp.StatusCode
	if c >= 200 && c < 300 || c == http.StatusNotModified {
		return nil
	}
	return fmt.Errorf("poller: http status %d", c)
}

// ParseRetryDelay reads Retry-After (seconds or an HTTP date), capped at
// maxRetryAfter; 0 if absent or unusable.
func (h *responseHandler) ParseRetryDelay(now time.Time) time.Duration {
	d, _ := httpx.ParseRetryAfter(h.resp.Header.Get("Retry-After"), now, maxRetryAfter)
	return d
}

// CacheLifetime is how long the server says the feed stays fresh
// (Cache-Control max-age, else Expires); 0 if it says nothing usable.
func (h *responseHandler) CacheLifetime(now time.Time) time.Duration {
	cc := h.resp.Header.Get("Cache-Control")
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if secs, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil && secs > 0 {
				return time.Duration(min(secs, 7*24*3600)) * time.Second
			}
		}
	}
	if e := h.resp.Header.Get("Expires"); e != "" {
		if t, err := http.ParseTime(e); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	return 0
}

func (h *responseHandler) ETag() string         { return h.resp.Header.Get("ETag") }
func (h *responseHandler) LastModified() string { return h.resp.Header.Get("Last-Modified") }
func (h *responseHandler) ContentType() string  { return h.resp.Header.Get("Content-Type") }

// EffectiveURL is where the body came from after redirects.
func (h *responseHandler) EffectiveURL() string { return h.resp.Request.URL.String() }

// ReadBody reads the body, decompressed, up to max bytes. A body that is
// longer after decompression is an error, not a silently truncated feed:
// this is what stops a gzip bomb.
func (h *responseHandler) ReadBody(max int64) ([]byte, error) {
	var r io.Reader = h.resp.Body
	switch strings.ToLower(strings.TrimSpace(h.resp.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(h.resp.Body)
		if err != nil {
			return nil, fmt.Errorf("poller: gzip body: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("poller: unsupported content-encoding %q", h.resp.Header.Get("Content-Encoding"))
	}
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("poller: read body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("poller: read body: %w (%d bytes)", errBodyTooLarge, max)
	}
	return body, nil
}
