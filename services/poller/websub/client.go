package websub

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/httpx"
)

// maxHubRedirects bounds the redirects of one hub request.
const maxHubRedirects = 5

// hubClient sends subscription requests (WebSub §5.1). It uses the
// poller's guarded transport, so the address check and poll.allow_networks
// apply to hubs and to every redirect hop. Redirects are followed here
// rather than by net/http, which turns a POST into a GET on 301/302: a
// subscription request must arrive as a POST with its form wherever the
// hub sends it.
type hubClient struct {
	client    *http.Client
	userAgent string
}

func newHubClient(c *http.Client, userAgent string) *hubClient {
	cc := *c
	cc.Jar = nil
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hubClient{client: &cc, userAgent: userAgent}
}

// hubError is a hub's refusal, with the status and the start of its body.
type hubError struct {
	status int
	body   string
}

func (e *hubError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("websub: hub answered %d", e.status)
	}
	return fmt.Sprintf("websub: hub answered %d: %s", e.status, e.body)
}

// request POSTs one subscription request to hub. It returns the hub URL to
// use from now on: hub itself, or where permanent redirects (301/308) led.
// 202 and 204 mean the hub will verify; anything else is a failure.
func (c *hubClient) request(ctx context.Context, hub string, form url.Values) (string, error) {
	body := form.Encode()
	target, current := hub, hub
	permanent := true
	for range maxHubRedirects + 1 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
		if err != nil {
			return hub, fmt.Errorf("websub: hub request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", c.userAgent)
		resp, err := c.client.Do(req)
		if err != nil {
			return hub, fmt.Errorf("websub: hub request: %s", config.Redact(httpx.ScrubURLError(err).Error()))
		}
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted, http.StatusNoContent:
			return current, nil
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return hub, fmt.Errorf("websub: hub redirect without a usable Location: %w", err)
			}
			if loc.Scheme != "http" && loc.Scheme != "https" {
				return hub, fmt.Errorf("websub: hub redirect to unsupported scheme %q", loc.Scheme)
			}
			permanent = permanent && (resp.StatusCode == http.StatusMovedPermanently || resp.StatusCode == http.StatusPermanentRedirect)
			target = loc.String()
			if permanent {
				current = target
			}
			continue
		}
		return hub, &hubError{status: resp.StatusCode, body: oneLine(string(snippet))}
	}
	return hub, fmt.Errorf("websub: hub request: stopped after %d redirects", maxHubRedirects)
}

// probe asks whether the hub still answers at all: any HTTP answer below
// 500 will do (hubs answer a bare GET with a page, 400 or 405).
func (c *hubClient) probe(ctx context.Context, hub string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hub, nil)
	if err != nil {
		return fmt.Errorf("websub: probe hub: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("websub: hub not answering: %s", config.Redact(httpx.ScrubURLError(err).Error()))
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("websub: hub not answering: http %d", resp.StatusCode)
	}
	return nil
}

func subscribeForm(callback, topic, secret string, lease time.Duration) url.Values {
	return url.Values{
		"hub.callback":      {callback},
		"hub.mode":          {"subscribe"},
		"hub.topic":         {topic},
		"hub.lease_seconds": {strconv.FormatInt(int64(lease/time.Second), 10)},
		"hub.secret":        {secret},
	}
}

func unsubscribeForm(callback, topic string) url.Values {
	return url.Values{
		"hub.callback": {callback},
		"hub.mode":     {"unsubscribe"},
		"hub.topic":    {topic},
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:199]) + "…"
	}
	return s
}
