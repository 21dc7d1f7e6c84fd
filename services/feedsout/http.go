package feedsout

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Results of a feed request, as metric labels.
const (
	resultOK           = "ok"
	resultNotModified  = "not_modified"
	resultUnauthorized = "unauthorized"
	resultNotFound     = "not_found"
	resultUnavailable  = "unavailable"
)

// Prefix is the path under which the feeds are served.
const Prefix = "/feeds/"

// Handler serves the feeds under Prefix:
//
//	/feeds/                               an index of every feed (HTML, with autodiscovery links)
//	/feeds/topics/<topic>.atom|.json      a topic's newest items
//	/feeds/subscribers/<name>.atom|.json  what a subscriber's routing selects
//
// With feeds_out.token set, every request must carry it (?token= or
// Authorization: Bearer); without it the answer is 401, before anything
// else is said (not even whether a topic exists).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", s.serveIndex)
	mux.HandleFunc("GET "+Prefix+"{kind}/{file}", s.serveFeed)
	return mux
}

func (s *Service) serveFeed(w http.ResponseWriter, r *http.Request) {
	name, format := r.PathValue("file"), ""
	switch {
	case strings.HasSuffix(name, "."+FormatAtom):
		format = FormatAtom
	case strings.HasSuffix(name, "."+FormatJSON):
		format = FormatJSON
	}
	name = strings.TrimSuffix(name, "."+format)
	count := func(result string) {
		if format != "" {
			s.requests.WithLabelValues(format, result).Inc()
		}
	}
	if !s.authorized(r) {
		count(resultUnauthorized)
		unauthorized(w)
		return
	}
	var f *feed
	switch r.PathValue("kind") {
	case KindTopics:
		f = s.topics[name]
	case KindSubscribers:
		f = s.subscribers[name]
	}
	if f == nil || format == "" {
		count(resultNotFound)
		http.NotFound(w, r)
		return
	}
	if !s.loaded.Load() {
		// A feed served before the stream's tail is read would lack
		// entries a reader already has, and change under the same time.
		count(resultUnavailable)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "feeds are loading", http.StatusServiceUnavailable)
		return
	}
	base := baseURL(r)
	out, modified, err := f.render(format, base+r.URL.Path, base+Prefix)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType(format))
	h.Set("ETag", out.etag)
	// Readers may keep a copy but must ask again (conditionally) each time.
	h.Set("Cache-Control", "no-cache")
	sw := &statusWriter{ResponseWriter: w}
	// ServeContent answers If-None-Match (which wins) and If-Modified-Since
	// with 304, and HEAD without a body.
	http.ServeContent(sw, r, "", modified, bytes.NewReader(out.body))
	if sw.status == http.StatusNotModified {
		count(resultNotModified)
	} else {
		count(resultOK)
	}
}

// render returns the feed in format for the address self, from the cache
// when the feed has not changed since it was last rendered for that
// address, and the time it last changed (zero when it has no entry).
func (f *feed) render(format, self, home string) (*rendered, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	modified := f.changed
	if c := f.cache[format]; c != nil && c.version == f.version && c.self == self {
		return c, modified, nil
	}
	v := &view{kind: f.kind, name: f.name, title: f.title, self: self, home: home, updated: f.changed, entries: f.ring.entries()}
	var body []byte
	var err error
	if format == FormatAtom {
		body, err = renderAtom(v)
	} else {
		body, err = renderJSON(v)
	}
	if err != nil {
		return nil, modified, err
	}
	sum := sha256.Sum256(body)
	c := &rendered{version: f.version, self: self, body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	f.cache[format] = c
	return c, modified, nil
}

func contentType(format string) string {
	if format == FormatAtom {
		return TypeAtom
	}
	return TypeJSON
}

// authorized reports whether r carries the token, when one is required.
// The comparison is of SHA-256 sums in constant time, so that neither the
// token's bytes nor its length leak through timing.
func (s *Service) authorized(r *http.Request) bool {
	if s.tokenSum == nil {
		return true
	}
	given := r.URL.Query().Get("token")
	if auth := r.Header.Get("Authorization"); given == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		given = strings.TrimSpace(auth[7:])
	}
	if given == "" {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum) == 1
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="feedmon feeds"`)
	http.Error(w, "a token is required: ?token= or Authorization: Bearer", http.StatusUnauthorized)
}

// baseURL is the scheme and host the request was made to, for the feeds'
// self links. A proxy terminating TLS says so in X-Forwarded-Proto.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>feedmon feeds</title>
{{range .}}<link rel="alternate" type="application/atom+xml" title="{{.Title}}" href="{{.Atom}}">
{{end}}</head>
<body><h1>feedmon feeds</h1>
<p>Subscribe to any of these in a feed reader.</p>
<ul>
{{range .}}<li>{{.Title}}: <a href="{{.Atom}}">Atom</a> · <a href="{{.JSON}}">JSON Feed</a></li>
{{end}}</ul></body></html>
`))

type indexLink struct{ Title, Atom, JSON string }

// serveIndex lists every feed, with autodiscovery links so that a reader
// given this page's address finds them. A token given in the query is
// carried into the links (whoever reads the page has it already).
func (s *Service) serveIndex(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		unauthorized(w)
		return
	}
	query := ""
	if t := r.URL.Query().Get("token"); t != "" {
		query = "?token=" + url.QueryEscape(t)
	}
	var links []indexLink
	add := func(kind string, feeds map[string]*feed) {
		names := make([]string, 0, len(feeds))
		for n := range feeds {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			p := Prefix + kind + "/" + n
			links = append(links, indexLink{Title: feeds[n].title, Atom: p + "." + FormatAtom + query, JSON: p + "." + FormatJSON + query})
		}
	}
	add(KindTopics, s.topics)
	add(KindSubscribers, s.subscribers)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if err := indexTemplate.Execute(w, links); err != nil {
		s.log.Debug("feeds out: index", "err", fmt.Errorf("feedsout: %w", err))
	}
}
