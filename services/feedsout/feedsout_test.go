package feedsout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/mmcdole/gofeed/atom"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/services/feedsout"
)

// Item ids of testdata/items.jsonl: eu01 and its later report eu02 (same
// story), a Japanese report ja01 and a defense-only de01.
const (
	eu01 = "a1c0ffee00000000000000000000eu01"
	ja01 = "b2c0ffee00000000000000000000ja01"
	de01 = "c3c0ffee00000000000000000000de01"
	eu02 = "d4c0ffee00000000000000000000eu02"
)

const subscribersYAML = `
subscribers:
  - {name: desk, topics: [trade], stdout: {}}
  - {name: navy, topics: [defense], min_score: 5, stdout: {}}
  - {name: en-minerals, topics: [rare_earths], languages: [en], stdout: {}}
  - {name: every-report, topics: [trade], group_stories: false, stdout: {}}
`

func loadConfig(t testing.TB, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func items(t *testing.T) []*event.Item {
	return testkit.ReadJSONL[*event.Item](t, "testdata/items.jsonl")
}

// publish puts items on FEEDMON_CLASSIFIED as the classifier does: one
// message per topic.
func publish(t testing.TB, b *bus.Bus, its ...*event.Item) {
	t.Helper()
	for _, it := range its {
		data, err := it.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range it.Topics {
			if _, err := b.Publish(context.Background(), event.ClassifiedSubject(topic), event.ClassifiedMsgID(it.ID, topic), data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type feeds struct {
	svc *feedsout.Service
	srv *httptest.Server
	reg *prometheus.Registry
}

// start runs the feed output on b and serves it; stopped when t ends or
// when stop is called.
func start(t testing.TB, b *bus.Bus, cfg *config.Config) (*feeds, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	svc := feedsout.New(cfg.FeedsOutConfig(), b, reg, bustest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	srv := httptest.NewServer(svc.Handler())
	stop := func() { srv.Close(); cancel(); <-done }
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	bustest.Eventually(t, 10*time.Second, func() bool { return svc.Ready() == nil }, "feeds not loaded")
	return &feeds{svc: svc, srv: srv, reg: reg}, stop
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *feeds) get(t testing.TB, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// waitFor polls path until the feed has the entry ids want (in any order).
func (f *feeds) waitFor(t testing.TB, path string, want ...string) response {
	t.Helper()
	var last response
	var got []string
	bustest.Eventually(t, 10*time.Second, func() bool {
		last = f.get(t, path)
		got = nil
		if last.status != http.StatusOK {
			return false
		}
		feed, err := gofeed.NewParser().Parse(bytes.NewReader(last.body))
		if err != nil {
			return false
		}
		for _, it := range feed.Items {
			got = append(got, it.GUID)
		}
		return sameSet(got, wantIDs(path, want))
	}, "%s: entries %v, want %v", path, &got, want)
	return last
}

func wantIDs(path string, ids []string) []string {
	if !strings.HasSuffix(path, ".atom") {
		return ids
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = feedsout.AtomID(id)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestFeedsSelectWhatRoutingSelects reads every topic and subscriber feed
// in both formats with gofeed and checks each holds the expected entries:
// topic feeds every item of the topic, subscriber feeds what the
// subscriber's topics and filters let through, later reports of a story
// folded into the first.
func TestFeedsSelectWhatRoutingSelects(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	publish(t, b, items(t)...)
	f, _ := start(t, b, loadConfig(t, subscribersYAML))
	want := map[string][]string{
		"/feeds/topics/rare_earths":      {eu01, ja01},
		"/feeds/topics/defense":          {eu01, de01},
		"/feeds/topics/trade":            {eu01, ja01},
		"/feeds/subscribers/desk":        {eu01, ja01},
		"/feeds/subscribers/navy":        {de01},
		"/feeds/subscribers/en-minerals": {eu01},
		// group_stories: false: every report an entry of its own.
		"/feeds/subscribers/every-report": {eu01, ja01, eu02},
	}
	for path, ids := range want {
		for _, ext := range []string{".atom", ".json"} {
			r := f.waitFor(t, path+ext, ids...)
			wantType := map[string]string{".atom": "application/atom+xml", ".json": "application/feed+json"}[ext]
			if ct := r.header.Get("Content-Type"); ct != wantType {
				t.Errorf("%s%s: Content-Type %q, want %q", path, ext, ct, wantType)
			}
		}
	}
}

// Atom 1.0 as RFC 4287 requires it, decoded strictly into the elements
// the feeds must have.
type atomFeedDoc struct {
	XMLName xml.Name        `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string          `xml:"http://www.w3.org/2005/Atom id"`
	Title   string          `xml:"http://www.w3.org/2005/Atom title"`
	Updated string          `xml:"http://www.w3.org/2005/Atom updated"`
	Authors []atomPersonDoc `xml:"http://www.w3.org/2005/Atom author"`
	Links   []atomLinkDoc   `xml:"http://www.w3.org/2005/Atom link"`
	Entries []atomEntryDoc  `xml:"http://www.w3.org/2005/Atom entry"`
}

type atomPersonDoc struct {
	Name string `xml:"http://www.w3.org/2005/Atom name"`
}

type atomLinkDoc struct {
	Rel  string `xml:"rel,attr"`
	Href string `xml:"href,attr"`
	Type string `xml:"type,attr"`
}

type atomEntryDoc struct {
	ID        string        `xml:"http://www.w3.org/2005/Atom id"`
	Title     []string      `xml:"http://www.w3.org/2005/Atom title"`
	Updated   []string      `xml:"http://www.w3.org/2005/Atom updated"`
	Published string        `xml:"http://www.w3.org/2005/Atom published"`
	Links     []atomLinkDoc `xml:"http://www.w3.org/2005/Atom link"`
	Content   []struct {
		Type string `xml:"type,attr"`
		Body string `xml:",chardata"`
	} `xml:"http://www.w3.org/2005/Atom content"`
	Categories []struct {
		Term string `xml:"term,attr"`
	} `xml:"http://www.w3.org/2005/Atom category"`
	Source *struct {
		Title string        `xml:"http://www.w3.org/2005/Atom title"`
		Links []atomLinkDoc `xml:"http://www.w3.org/2005/Atom link"`
	} `xml:"http://www.w3.org/2005/Atom source"`
}

func linkOf(links []atomLinkDoc, rel string) []atomLinkDoc {
	var out []atomLinkDoc
	for _, l := range links {
		r := l.Rel
		if r == "" {
			r = "alternate" // RFC 4287 4.2.7.2
		}
		if r == rel {
			out = append(out, l)
		}
	}
	return out
}

func isIRI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != ""
}

// TestAtomConformsToRFC4287 checks the required elements of RFC 4287 one by
// one, and what the issue adds: a feed-level author (so that every entry
// has one), rel=self, rel=alternate to the article and the original feed
// as source.
func TestAtomConformsToRFC4287(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	its := items(t)
	publish(t, b, its...)
	f, _ := start(t, b, loadConfig(t, subscribersYAML))
	r := f.waitFor(t, "/feeds/topics/rare_earths.atom", eu01, ja01)

	var doc atomFeedDoc
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("not Atom: %v\n%s", err, r.body)
	}
	if !isIRI(doc.ID) || doc.Title == "" {
		t.Errorf("feed id %q (must be an IRI), title %q", doc.ID, doc.Title)
	}
	if _, err := time.Parse(time.RFC3339, doc.Updated); err != nil {
		t.Errorf("feed updated %q: %v", doc.Updated, err)
	}
	if len(doc.Authors) != 1 || doc.Authors[0].Name == "" {
		t.Errorf("feed authors %+v: want one with a name", doc.Authors)
	}
	self := linkOf(doc.Links, "self")
	if len(self) != 1 || self[0].Href != f.srv.URL+"/feeds/topics/rare_earths.atom" {
		t.Errorf("rel=self %+v, want %s", self, f.srv.URL+"/feeds/topics/rare_earths.atom")
	}
	byID := map[string]*event.Item{}
	for _, it := range its {
		byID[feedsout.AtomID(it.ID)] = it
	}
	ids := map[string]bool{}
	for _, e := range doc.Entries {
		it := byID[e.ID]
		if it == nil {
			t.Errorf("entry id %q is no item's", e.ID)
			continue
		}
		if !isIRI(e.ID) || ids[e.ID] {
			t.Errorf("entry id %q: not an IRI, or twice", e.ID)
		}
		ids[e.ID] = true
		if len(e.Title) != 1 || e.Title[0] != it.Title {
			t.Errorf("%s: title %q, want %q", it.ID, e.Title, it.Title)
		}
		if len(e.Updated) != 1 {
			t.Errorf("%s: %d updated elements, want 1", it.ID, len(e.Updated))
		} else if _, err := time.Parse(time.RFC3339, e.Updated[0]); err != nil {
			t.Errorf("%s: updated %q: %v", it.ID, e.Updated[0], err)
		}
		if e.Published != it.Published {
			t.Errorf("%s: published %q, want %q", it.ID, e.Published, it.Published)
		}
		alt := linkOf(e.Links, "alternate")
		if len(alt) != 1 || alt[0].Href != it.Link {
			t.Errorf("%s: rel=alternate %+v, want one to %s", it.ID, alt, it.Link)
		}
		if len(e.Content) != 1 || e.Content[0].Type != "text" || !strings.HasPrefix(e.Content[0].Body, it.Summary) {
			t.Errorf("%s: content %+v", it.ID, e.Content)
		}
		var terms []string
		for _, c := range e.Categories {
			terms = append(terms, c.Term)
		}
		for _, topic := range it.Topics {
			if !slices.Contains(terms, topic) {
				t.Errorf("%s: categories %v lack topic %s", it.ID, terms, topic)
			}
		}
		if e.Source == nil || e.Source.Title != it.FeedTitle || len(e.Source.Links) != 1 || e.Source.Links[0].Href != it.FeedURL {
			t.Errorf("%s: source %+v, want %q at %s", it.ID, e.Source, it.FeedTitle, it.FeedURL)
		}
	}

	// gofeed's Atom parser reads the source and the author the same way.
	af, err := (&atom.Parser{}).Parse(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range af.Entries {
		if e.Source == nil || e.Source.Title == "" {
			t.Errorf("gofeed: entry %s without source", e.ID)
		}
	}
	if len(af.Authors) != 1 {
		t.Errorf("gofeed: feed authors %+v", af.Authors)
	}
}

// TestJSONFeedConformsTo11 checks the JSON Feed 1.1 fields: version, title,
// home_page_url, feed_url; items with id, url, title, content_text,
// date_published and the topics as tags.
func TestJSONFeedConformsTo11(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	its := items(t)
	publish(t, b, its...)
	f, _ := start(t, b, loadConfig(t, subscribersYAML))
	r := f.waitFor(t, "/feeds/subscribers/desk.json", eu01, ja01)

	var doc struct {
		Version     *string `json:"version"`
		Title       *string `json:"title"`
		HomePageURL *string `json:"home_page_url"`
		FeedURL     *string `json:"feed_url"`
		Items       []struct {
			ID            *string  `json:"id"`
			URL           string   `json:"url"`
			Title         string   `json:"title"`
			ContentText   *string  `json:"content_text"`
			ContentHTML   *string  `json:"content_html"`
			DatePublished string   `json:"date_published"`
			DateModified  string   `json:"date_modified"`
			Tags          []string `json:"tags"`
		} `json:"items"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc.Version == nil || *doc.Version != "https://jsonfeed.org/version/1.1" {
		t.Errorf("version %v", doc.Version)
	}
	if doc.Title == nil || *doc.Title == "" {
		t.Error("no title")
	}
	if doc.FeedURL == nil || *doc.FeedURL != f.srv.URL+"/feeds/subscribers/desk.json" {
		t.Errorf("feed_url %v", doc.FeedURL)
	}
	if doc.HomePageURL == nil || !isIRI(*doc.HomePageURL) {
		t.Errorf("home_page_url %v", doc.HomePageURL)
	}
	byID := map[string]*event.Item{}
	for _, it := range its {
		byID[it.ID] = it
	}
	for _, ji := range doc.Items {
		if ji.ID == nil || byID[*ji.ID] == nil {
			t.Errorf("item id %v is no item's", ji.ID)
			continue
		}
		it := byID[*ji.ID]
		if ji.ContentText == nil && ji.ContentHTML == nil {
			t.Errorf("%s: neither content_text nor content_html (one is required)", it.ID)
		}
		if ji.URL != it.Link || ji.Title != it.Title || ji.DatePublished != it.Published {
			t.Errorf("%s: url %q title %q date_published %q", it.ID, ji.URL, ji.Title, ji.DatePublished)
		}
		if _, err := time.Parse(time.RFC3339, ji.DateModified); err != nil {
			t.Errorf("%s: date_modified %q: %v", it.ID, ji.DateModified, err)
		}
		for _, topic := range it.Topics {
			if !slices.Contains(ji.Tags, topic) {
				t.Errorf("%s: tags %v lack topic %s", it.ID, ji.Tags, topic)
			}
		}
	}
}

// TestStoryFolded: a later report of a story is folded into the entry of
// its first report ("also reported by", updated advanced), not repeated.
func TestStoryFolded(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	its := items(t)
	byID := map[string]*event.Item{}
	for _, it := range its {
		byID[it.ID] = it
	}
	publish(t, b, byID[eu01], byID[ja01])
	f, _ := start(t, b, loadConfig(t, subscribersYAML))

	paths := map[string][]string{
		"/feeds/topics/trade.atom":            {eu01, ja01},
		"/feeds/topics/trade.json":            {eu01, ja01},
		"/feeds/subscribers/en-minerals.atom": {eu01},
		"/feeds/subscribers/en-minerals.json": {eu01},
	}
	before := map[string][]byte{}
	for path, want := range paths {
		before[path] = f.waitFor(t, path, want...).body
	}
	publish(t, b, byID[eu02])
	for path, want := range paths {
		var after *gofeed.Item
		var r response
		bustest.Eventually(t, 10*time.Second, func() bool {
			r = f.get(t, path)
			feed, err := gofeed.NewParser().Parse(bytes.NewReader(r.body))
			if err != nil {
				return false
			}
			if len(feed.Items) != len(want) {
				t.Fatalf("%s: %d entries after a later report, want %d: the report was not folded", path, len(feed.Items), len(want))
			}
			for _, it := range feed.Items {
				if it.GUID == wantIDs(path, []string{eu01})[0] && strings.Contains(it.Content, "Also reported by") {
					after = it
				}
			}
			return after != nil
		}, "%s: later report not folded into %s", path, eu01)
		if !strings.Contains(after.Content, "Other Outlet: Japan, EU sign rare earth mining pact https://other.example/pact") {
			t.Errorf("%s: content %q does not name the later report", path, after.Content)
		}
		if after.UpdatedParsed == nil || !after.UpdatedParsed.Equal(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: updated %v, want the later report's fetch time", path, after.UpdatedParsed)
		}
		if after.PublishedParsed == nil || !after.PublishedParsed.Equal(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: published %v, want the first report's", path, after.PublishedParsed)
		}
		if bytes.Equal(before[path], r.body) {
			t.Errorf("%s: unchanged by the fold", path)
		}
	}
}

// TestConditionalGet: ETag and Last-Modified, 304 on a repeat with either
// validator, a new ETag once the feed changes.
func TestConditionalGet(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	its := items(t)
	publish(t, b, its[0])
	f, _ := start(t, b, loadConfig(t, subscribersYAML))
	for _, path := range []string{"/feeds/topics/defense.atom", "/feeds/topics/defense.json"} {
		first := f.waitFor(t, path, eu01)
		etag, lm := first.header.Get("ETag"), first.header.Get("Last-Modified")
		if etag == "" || lm == "" {
			t.Fatalf("%s: ETag %q, Last-Modified %q", path, etag, lm)
		}
		if r := f.get(t, path, "If-None-Match", etag); r.status != http.StatusNotModified || len(r.body) != 0 {
			t.Errorf("%s: If-None-Match: %d with %d bytes, want 304", path, r.status, len(r.body))
		}
		if r := f.get(t, path, "If-Modified-Since", lm); r.status != http.StatusNotModified {
			t.Errorf("%s: If-Modified-Since: %d, want 304", path, r.status)
		}
		if r := f.get(t, path, "If-None-Match", `"other"`); r.status != http.StatusOK || !bytes.Equal(r.body, first.body) {
			t.Errorf("%s: another ETag: %d, want 200 with the feed", path, r.status)
		}
	}
	const path = "/feeds/topics/defense.atom"
	before := f.get(t, path).header.Get("ETag")
	publish(t, b, its[2]) // de01, defense
	r := f.waitFor(t, path, eu01, de01)
	if r.header.Get("ETag") == before {
		t.Fatalf("ETag %s unchanged by a new entry", before)
	}
	if got := f.get(t, path, "If-None-Match", before); got.status != http.StatusOK {
		t.Errorf("the old ETag after a change: %d, want 200", got.status)
	}
	if got := f.get(t, path, "If-None-Match", r.header.Get("ETag")); got.status != http.StatusNotModified {
		t.Errorf("the new ETag: %d, want 304", got.status)
	}
	if n := requests(t, f.reg, "atom", "not_modified"); n < 3 {
		t.Errorf("feedmon_feeds_out_requests_total{format=atom,result=not_modified} = %v, want at least 3", n)
	}
}

// requests reads feedmon_feeds_out_requests_total{format, result}.
func requests(t *testing.T, reg *prometheus.Registry, format, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "feedmon_feeds_out_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["format"] == format && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no feedmon_feeds_out_requests_total{format=%q,result=%q}", format, result)
	return 0
}

// TestToken: with feeds_out.token set, a request without it (or with a
// wrong one) gets 401 before anything else, even for a feed that does not
// exist; ?token= and Authorization: Bearer both work.
func TestToken(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	publish(t, b, items(t)[2])
	f, _ := start(t, b, loadConfig(t, subscribersYAML+"feeds_out: {token: s3cret-token}\n"))
	tests := []struct {
		name   string
		path   string
		header []string
		want   int
	}{
		{"no token", "/feeds/topics/defense.atom", nil, http.StatusUnauthorized},
		{"no token, json", "/feeds/subscribers/navy.json", nil, http.StatusUnauthorized},
		{"no token, unknown topic", "/feeds/topics/cheese.atom", nil, http.StatusUnauthorized},
		{"no token, index", "/feeds/", nil, http.StatusUnauthorized},
		{"wrong token", "/feeds/topics/defense.atom?token=s3cret-tokeN", nil, http.StatusUnauthorized},
		{"token as a prefix", "/feeds/topics/defense.atom?token=s3cret", nil, http.StatusUnauthorized},
		{"wrong bearer", "/feeds/topics/defense.atom", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"basic is not bearer", "/feeds/topics/defense.atom", []string{"Authorization", "Basic czNjcmV0LXRva2Vu"}, http.StatusUnauthorized},
		{"query token", "/feeds/topics/defense.atom?token=s3cret-token", nil, http.StatusOK},
		{"bearer", "/feeds/subscribers/navy.json", []string{"Authorization", "Bearer s3cret-token"}, http.StatusOK},
		{"bearer, lower case scheme", "/feeds/subscribers/navy.json", []string{"Authorization", "bearer s3cret-token"}, http.StatusOK},
		{"index with the token", "/feeds/?token=s3cret-token", nil, http.StatusOK},
		{"token, unknown topic", "/feeds/topics/cheese.atom?token=s3cret-token", nil, http.StatusNotFound},
	}
	for _, tt := range tests {
		r := f.get(t, tt.path, tt.header...)
		if r.status != tt.want {
			t.Errorf("%s: GET %s: %d, want %d", tt.name, tt.path, r.status, tt.want)
		}
		if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
		if r.status == http.StatusOK && bytes.Contains(r.body, []byte("s3cret-token")) && !strings.HasPrefix(tt.path, "/feeds/?") {
			t.Errorf("%s: the feed shows the token", tt.name)
		}
	}
	if n := requests(t, f.reg, "atom", "unauthorized"); n != 6 {
		t.Errorf("unauthorized atom requests counted %v, want 6", n)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	f, _ := start(t, b, loadConfig(t, subscribersYAML))
	for _, path := range []string{
		"/feeds/topics/cheese.atom",
		"/feeds/topics/cheese.json",
		"/feeds/subscribers/nobody.atom",
		"/feeds/subscribers/defense.json", // a topic is not a subscriber
		"/feeds/topics/desk.atom",         // nor the other way round
		"/feeds/topics/defense.rss",
		"/feeds/topics/defense",
		"/feeds/stories/defense.atom",
		"/feeds/topics/",
	} {
		if r := f.get(t, path); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	// A known topic with nothing yet is an empty, valid feed.
	for _, path := range []string{"/feeds/topics/trade.atom", "/feeds/topics/trade.json"} {
		r := f.get(t, path)
		feed, err := gofeed.NewParser().Parse(bytes.NewReader(r.body))
		if r.status != http.StatusOK || err != nil || len(feed.Items) != 0 {
			t.Errorf("GET %s: %d, %v; want an empty feed", path, r.status, err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/feeds/topics/trade.atom", nil)
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v, want 405", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

// TestStableAcrossRestart: a restarted feed output rebuilds the same feeds
// from the stream, byte for byte, so a reader's next conditional GET is a
// 304 and no entry comes back with a new id. Only the newest max_items
// entries are kept.
func TestStableAcrossRestart(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	its := items(t)
	var many []*event.Item
	for i := range 30 {
		it := *its[2] // de01, defense only
		it.ID = event.ItemID(it.FeedURL, strings.Repeat("x", i+1))
		it.StoryID = it.ID
		it.Title = it.Title + " " + strings.Repeat("I", i+1)
		it.Published = time.Date(2026, 11, 24, 11, i, 0, 0, time.UTC).Format(time.RFC3339)
		many = append(many, &it)
	}
	publish(t, b, its...)
	publish(t, b, many...)
	cfg := loadConfig(t, subscribersYAML+"feeds_out: {max_items: 5}\n")

	var newest []string
	for _, it := range many[25:] {
		newest = append(newest, it.ID)
	}
	paths := []string{"/feeds/topics/defense.atom", "/feeds/topics/defense.json", "/feeds/subscribers/navy.atom", "/feeds/subscribers/navy.json"}
	f, stop := start(t, b, cfg)
	first := map[string]response{}
	for _, p := range paths {
		first[p] = f.waitFor(t, p, newest...)
	}
	stop()

	g, _ := start(t, b, cfg)
	// The self links name the new server's address; with the same address
	// the bytes are the same.
	for _, p := range paths {
		r := g.get(t, p)
		body := bytes.ReplaceAll(r.body, []byte(g.srv.URL), []byte(f.srv.URL))
		if !bytes.Equal(body, first[p].body) {
			t.Errorf("%s: differs after a restart:\n%s\nwas\n%s", p, body, first[p].body)
		}
		if r.header.Get("Last-Modified") != first[p].header.Get("Last-Modified") {
			t.Errorf("%s: Last-Modified %q, was %q", p, r.header.Get("Last-Modified"), first[p].header.Get("Last-Modified"))
		}
		if r := g.get(t, p, "If-Modified-Since", first[p].header.Get("Last-Modified")); r.status != http.StatusNotModified {
			t.Errorf("%s: If-Modified-Since after a restart: %d, want 304", p, r.status)
		}
	}
}

// TestIndex lists every feed with autodiscovery links, carrying a query
// token into them.
func TestIndex(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	f, _ := start(t, b, loadConfig(t, subscribersYAML+"feeds_out: {token: a&b}\n"))
	r := f.get(t, "/feeds/?token=a%26b")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("index: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<link rel="alternate" type="application/atom+xml" title="feedmon: trade" href="/feeds/topics/trade.atom?token=a%26b">`,
		`href="/feeds/subscribers/en-minerals.json?token=a%26b"`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("index lacks %s:\n%s", want, r.body)
		}
	}
	if r := f.get(t, "/feeds/topics/trade.atom?token=a%26b"); r.status != http.StatusOK {
		t.Errorf("a link of the index: %d", r.status)
	}
}
