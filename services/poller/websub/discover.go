package websub

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// maxDiscoveryScan bounds how much of a feed body is searched for hub and
// self links: they belong in the head of the document, before the items.
const maxDiscoveryScan = 256 << 10

// Discovery is what one fetch of a feed says about push (WebSub §4).
type Discovery struct {
	// Hub is the first hub advertised; "" when the feed names none.
	Hub string
	// Topic is the URL to subscribe to: the rel=self link, else the URL
	// the feed was fetched from (moved by a permanent redirect only).
	Topic string
}

// Discover reads the hub and self links of a fetched feed. HTTP Link
// headers win over links in the body (atom:link in RSS and Atom, <link> in
// HTML), rel by rel. feedURL is the configured URL; finalURL is where the
// body came from after redirects, and permanent says whether every redirect
// on the way was permanent (301/308), which moves the topic.
func Discover(h http.Header, body []byte, feedURL, finalURL string, permanent bool) Discovery {
	base, err := url.Parse(finalURL)
	if err != nil || finalURL == "" {
		base, _ = url.Parse(feedURL)
	}
	hub, self := linkHeader(h.Values("Link"), base)
	if hub == "" || self == "" {
		bh, bs := bodyLinks(body, base)
		if hub == "" {
			hub = bh
		}
		if self == "" {
			self = bs
		}
	}
	d := Discovery{Hub: hub, Topic: self}
	if d.Topic == "" {
		d.Topic = feedURL
		if permanent && finalURL != "" {
			d.Topic = finalURL
		}
	}
	return d
}

// MovedPermanently reports whether resp was reached through redirects that
// were all permanent (at least one).
func MovedPermanently(resp *http.Response) bool {
	if resp == nil || resp.Request == nil || resp.Request.Response == nil {
		return false
	}
	for r := resp.Request.Response; r != nil; {
		if r.StatusCode != http.StatusMovedPermanently && r.StatusCode != http.StatusPermanentRedirect {
			return false
		}
		if r.Request == nil {
			break
		}
		r = r.Request.Response
	}
	return true
}

// linkHeader finds rel=hub and rel=self in RFC 8288 Link header values.
func linkHeader(values []string, base *url.URL) (hub, self string) {
	for _, v := range values {
		for _, l := range parseLinks(v) {
			for _, rel := range strings.Fields(strings.ToLower(l.rel)) {
				switch rel {
				case "hub":
					if hub == "" {
						hub = resolve(base, l.target)
					}
				case "self":
					if self == "" {
						self = resolve(base, l.target)
					}
				}
			}
		}
	}
	return hub, self
}

type link struct{ target, rel string }

// parseLinks splits one Link header value: `<url>; rel="a b", <url2>; rel=c`.
// Commas inside <...> or quoted strings do not split.
func parseLinks(v string) []link {
	var out []link
	for len(v) > 0 {
		v = strings.TrimLeft(v, " \t,")
		if !strings.HasPrefix(v, "<") {
			// Not a link: skip to the next comma outside quotes.
			i := nextComma(v)
			if i < 0 {
				break
			}
			v = v[i+1:]
			continue
		}
		end := strings.IndexByte(v, '>')
		if end < 0 {
			break
		}
		l := link{target: strings.TrimSpace(v[1:end])}
		v = v[end+1:]
		i := nextComma(v)
		params := v
		if i >= 0 {
			params, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		for _, p := range strings.Split(params, ";") {
			name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "rel") {
				l.rel = strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
		out = append(out, l)
	}
	return out
}

func nextComma(s string) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return i
			}
		}
	}
	return -1
}

// bodyLinks finds <link rel="hub|self" href> (atom:link in RSS, link in
// Atom and HTML) in the head of a document, before its first item. The
// HTML tokenizer reads XML well enough for this and never fails on HTML.
func bodyLinks(body []byte, base *url.URL) (hub, self string) {
	if len(body) > maxDiscoveryScan {
		body = body[:maxDiscoveryScan]
	}
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return hub, self
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			n := string(name)
			if i := strings.LastIndexByte(n, ':'); i >= 0 {
				n = n[i+1:]
			}
			switch n {
			case "item", "entry", "body":
				return hub, self
			case "link":
			default:
				continue
			}
			var rel, href string
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch string(k) {
				case "rel":
					rel = strings.ToLower(string(v))
				case "href":
					href = string(v)
				}
			}
			if href == "" {
				continue
			}
			for _, r := range strings.Fields(rel) {
				switch {
				case r == "hub" && hub == "":
					hub = resolve(base, href)
				case r == "self" && self == "":
					self = resolve(base, href)
				}
			}
		}
	}
}

// resolve makes ref absolute against base; only http(s) results count.
func resolve(base *url.URL, ref string) string {
	u, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return ""
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return ""
	}
	u.Fragment = ""
	return u.String()
}
