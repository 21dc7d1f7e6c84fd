package poller

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html/charset"
	"golang.org/x/text/transform"

	"github.com/feedmon/feedmon/internal/event"
)

func normalize(t testing.TB, feedURL string, body []byte, contentType string, now time.Time) ([]entry, error) {
	t.Helper()
	f, _, err := parseFeed(body, contentType)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(feedURL)
	n := normalizer{feedURL: feedURL, base: base, now: now, maxItems: 100}
	return n.items(f), nil
}

func TestNormalizeRSS(t *testing.T) {
	t.Parallel()
	const feedURL = "https://feeds.example.org/rss"
	entries, err := normalize(t, feedURL, fixture(t, "rss.xml"), "application/rss+xml", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3", len(entries))
	}
	first := entries[0].item
	want := event.Item{
		ID:        event.ItemID(feedURL, "urn:example:1001"),
		FeedURL:   feedURL,
		FeedTitle: "Trade & Defense Wire",
		Title:     "EU & Japan agree to jointly mine rare earths",
		Link:      "https://news.example.org/2026/11/eu-japan-rare-earths",
		Summary:   "The EU and Japan agreed to jointly mine rare earths.",
		Published: "2026-11-26T09:00:00Z",
		FetchedAt: "2026-11-27T12:00:00Z",
		Lang:      "en",
	}
	if fmt.Sprintf("%+v", first) != fmt.Sprintf("%+v", want) {
		t.Errorf("item\n got %+v\nwant %+v", first, want)
	}
	if got := entries[1].item.Summary; got != "Negotiators “met” again." {
		t.Errorf("entity summary %q", got)
	}
}

func TestItemIDs(t *testing.T) {
	t.Parallel()
	const feedURL = "https://feeds.example.org/rss"
	entries, err := normalize(t, feedURL, fixture(t, "rss.xml"), "", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	again, err := normalize(t, feedURL, fixture(t, "rss.xml"), "", fixedNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		idx  int
		key  string // "" = a content hash, checked for stability only
	}{
		{"guid", 0, "urn:example:1001"},
		{"link", 1, "https://news.example.org/2026/11/tariffs"},
		{"hash", 2, ""},
	}
	for _, tc := range tests {
		got := entries[tc.idx].item.ID
		if tc.key != "" && got != event.ItemID(feedURL, tc.key) {
			t.Errorf("%s: id %s, want ItemID(feed, %q)", tc.name, got, tc.key)
		}
		if again[tc.idx].item.ID != got {
			t.Errorf("%s: id changed between fetches: %s then %s", tc.name, got, again[tc.idx].item.ID)
		}
		if len(got) != 32 {
			t.Errorf("%s: id %q", tc.name, got)
		}
	}
	// The same GUID in another feed is another item.
	other, _ := normalize(t, "https://other.example.org/rss", fixture(t, "rss.xml"), "", fixedNow)
	if other[0].item.ID == entries[0].item.ID {
		t.Error("ids are not per feed")
	}
	// Hash ids change with content, so an edited item without guid or link is new.
	edited := strings.Replace(string(fixture(t, "rss.xml")), "No link, no guid.", "No link, no guid (updated).", 1)
	e2, _ := normalize(t, feedURL, []byte(edited), "", fixedNow)
	if e2[2].item.ID == entries[2].item.ID {
		t.Error("hash id ignores content")
	}
}

func TestCharsets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		file        string
		contentType string
		wantTitle   string
		wantFeed    string
	}{
		{"latin1 prolog", "latin1.xml", "application/rss+xml", "Café crème à Zürich £ ½", "Café Zürich"},
		{"latin1 prolog, header says utf-8", "latin1.xml", "text/xml; charset=utf-8", "Café crème à Zürich £ ½", "Café Zürich"},
		{"latin1 header", "latin1.xml", "text/xml; charset=ISO-8859-1", "Café crème à Zürich £ ½", "Café Zürich"},
		{"shift_jis prolog", "shiftjis.xml", "application/xml", "レアアースの共同採掘で合意", "日本経済ニュース"},
		{"shift_jis header", "shiftjis.xml", "application/xml; charset=Shift_JIS", "レアアースの共同採掘で合意", "日本経済ニュース"},
		{"windows-1252 header only", "cp1252-noprolog.xml", "text/xml; charset=windows-1252", "“Quoted” – naïve €5", "Win"},
		{"utf-8", "atom.xml", "application/atom+xml; charset=utf-8", "Zölle steigen", "Atom Wirtschaft"},
		{"utf-8, header says latin-1", "atom.xml", "text/xml; charset=ISO-8859-1", "Zölle steigen", "Atom Wirtschaft"},
		{"unknown label", "atom.xml", "text/xml; charset=utf8mb4", "Zölle steigen", "Atom Wirtschaft"},
		{"unknown label, latin-1 bytes", "cp1252-noprolog.xml", "text/xml; charset=x-bogus", "“Quoted” – naïve €5", "Win"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, err := normalize(t, "https://x.example/feed", fixture(t, tc.file), tc.contentType, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("%d entries", len(entries))
			}
			it := entries[0].item
			if it.Title != tc.wantTitle || it.FeedTitle != tc.wantFeed {
				t.Errorf("title %q feed %q, want %q %q", it.Title, it.FeedTitle, tc.wantTitle, tc.wantFeed)
			}
			wantLang := map[string]string{"shiftjis.xml": "ja", "atom.xml": "de"}[tc.file]
			if it.Lang != wantLang {
				t.Errorf("lang %q, want %q", it.Lang, wantLang)
			}
			if !utf8.ValidString(it.Summary) {
				t.Errorf("summary not UTF-8: %q", it.Summary)
			}
		})
	}
}

func TestCharsetEncodings(t *testing.T) {
	t.Parallel()
	// Other encodings feeds declare, converted by x/text.
	tests := []struct {
		label string
		enc   func(string) []byte
		text  string
	}{
		{"EUC-JP", mustEncode("euc-jp"), "日本語"},
		{"GBK", mustEncode("gbk"), "稀土贸易"},
		{"GB18030", mustEncode("gb18030"), "稀土贸易"},
		{"Big5", mustEncode("big5"), "稀土貿易"},
	}
	for _, tc := range tests {
		doc := `<?xml version="1.0" encoding="` + tc.label + `"?><rss version="2.0"><channel><title>t</title><item><title>` + tc.text + `</title><guid>1</guid></item></channel></rss>`
		entries, err := normalize(t, "https://x.example/feed", tc.enc(doc), "text/xml", fixedNow)
		if err != nil {
			t.Fatalf("%s: %v", tc.label, err)
		}
		if entries[0].item.Title != tc.text {
			t.Errorf("%s: title %q, want %q", tc.label, entries[0].item.Title, tc.text)
		}
	}
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		ctype   string
		wantErr string
	}{
		{"truncated xml", "truncated.xml", "application/rss+xml", "poller: "},
		{"html page", "notafeed.html", "text/html", "not a feed"},
		{"empty", "", "application/rss+xml", "not a feed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body []byte
			if tc.file != "" {
				body = fixture(t, tc.file)
			}
			srv := newFeedServer(t, serveXML(body, tc.ctype, ""))
			h := newHarness(t, nil, testConfig(srv.URL))
			st := h.poll(srv.URL)
			if st.State != stateError || !strings.Contains(st.Error, tc.wantErr) {
				t.Fatalf("state %q error %q, want error with %q", st.State, st.Error, tc.wantErr)
			}
			if n := streamCount(t, h.bus); n != 0 {
				t.Errorf("%d items published from a bad body", n)
			}
		})
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	t.Run("billion laughs", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		entries, err := normalize(t, "https://lol.example.org/rss", fixture(t, "billion-laughs.xml"), "", fixedNow)
		if err == nil {
			for _, e := range entries {
				if len(e.item.Title) > 1000 || len(e.item.Summary) > 3*maxSummaryRunes {
					t.Errorf("entity expansion: title %d bytes", len(e.item.Title))
				}
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("absurd dates", func(t *testing.T) {
		t.Parallel()
		entries, err := normalize(t, "https://dates.example.org/rss", fixture(t, "absurd-dates.xml"), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range entries {
			got[e.item.Title] = e.item.Published
		}
		want := map[string]string{"Epoch": "", "Far future": "", "Garbage": "", "Fine": "2026-11-26T09:00:00Z"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("published %v, want %v", got, want)
		}
	})
	t.Run("thousands of items", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString(`<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>`)
		for i := range 5000 {
			// Oldest first: the cap must keep the newest.
			fmt.Fprintf(&b, "<item><title>n%d</title><guid>g%d</guid><pubDate>%s</pubDate></item>", i, i,
				fixedNow.Add(-time.Duration(5000-i)*time.Minute).Format(time.RFC1123Z))
		}
		b.WriteString(`</channel></rss>`)
		entries, err := normalize(t, "https://big.example.org/rss", []byte(b.String()), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 100 {
			t.Fatalf("%d entries, want the cap 100", len(entries))
		}
		if entries[0].item.Title != "n4999" {
			t.Errorf("first kept item %q, want the newest", entries[0].item.Title)
		}
	})
	t.Run("long summary", func(t *testing.T) {
		t.Parallel()
		doc := `<rss version="2.0"><channel><title>t</title><item><guid>1</guid><description>` + strings.Repeat("word ", 3000) + `</description></item></channel></rss>`
		entries, err := normalize(t, "https://x.example/rss", []byte(doc), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if n := utf8.RuneCountInString(entries[0].item.Summary); n > maxSummaryRunes {
			t.Errorf("summary %d runes", n)
		}
	})
	t.Run("huge fields", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("x", 300_000)
		doc := `<rss version="2.0"><channel><title>` + long + `</title><item><title>` + long + `</title><link>https://x.example/` + long + `</link><description>` + long + `</description></item></channel></rss>`
		entries, err := normalize(t, "https://x.example/rss", []byte(doc), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		it := entries[0].item
		data, _ := it.Marshal()
		if len(data) > 64<<10 || utf8.RuneCountInString(it.Title) > maxTitleRunes || it.Link != "" {
			t.Errorf("item of %d bytes, title %d runes, link %d bytes", len(data), utf8.RuneCountInString(it.Title), len(it.Link))
		}
		// Without GUID or usable link, the id comes from the content hash.
		if it.ID == "" {
			t.Error("no id")
		}
	})
	t.Run("dangerous links", func(t *testing.T) {
		t.Parallel()
		doc := `<rss version="2.0"><channel><title>t</title><link>https://x.example/</link><item><guid>1</guid><link>javascript:alert(1)</link></item><item><guid>2</guid><link>  rel/path?a=1&amp;b=2 </link></item></channel></rss>`
		entries, err := normalize(t, "https://x.example/rss", []byte(doc), "", fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if entries[0].item.Link != "" || entries[1].item.Link != "https://x.example/rel/path?a=1&b=2" {
			t.Errorf("links %q %q", entries[0].item.Link, entries[1].item.Link)
		}
	})
}

func TestSlowDrip(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/rss+xml")
		w.Write([]byte(`<?xml version="1.0"?><rss version="2.0"><channel><title>drip</title>`))
		w.(http.Flusher).Flush()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-release:
				return
			case <-r.Context().Done():
				return
			case <-tick.C:
				w.Write([]byte(" "))
				w.(http.Flusher).Flush()
			}
		}
	})
	defer close(release)
	fast := newFeedServer(t, serveXML(fixture(t, "rss.xml"), "", ""))
	cfg := testConfig(slow.URL, fast.URL)
	cfg.Poll.Timeout = configDuration(time.Second)
	h := newHarness(t, nil, cfg)

	done := make(chan feedState)
	start := time.Now()
	go func() { done <- h.poll(slow.URL) }()
	// The fast feed is not held up by the slow one.
	if st := h.pollOther(fast.URL); st.State != stateOK {
		t.Fatalf("fast feed: %q %s", st.State, st.Error)
	}
	st := <-done
	if st.State != stateError {
		t.Fatalf("slow feed state %q", st.State)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow drip took %s despite a 1s timeout", d)
	}
}

func TestOPML(t *testing.T) {
	t.Parallel()
	cfg := testConfig("https://www.mining.com/feed/")
	cfg.OPML = []string{"testdata/feeds.opml"}
	feeds, err := feedList(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, f := range feeds {
		urls = append(urls, f.URL)
	}
	want := []string{"https://www.mining.com/feed/", "https://www.defenseone.com/rss/all/"}
	if fmt.Sprint(urls) != fmt.Sprint(want) {
		t.Errorf("feeds %v, want %v", urls, want)
	}
	cfg.OPML = []string{"testdata/missing.opml"}
	if _, err := feedList(*cfg); err == nil {
		t.Error("missing OPML file accepted")
	}
}

func mustEncode(label string) func(string) []byte {
	return func(s string) []byte {
		enc, _ := charset.Lookup(label)
		out, _, err := transform.String(enc.NewEncoder(), s)
		if err != nil {
			panic(err)
		}
		return []byte(out)
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	const feedURL = "https://feeds.example.org/x"
	tests := []struct {
		file  string
		ctype string
		want  event.Item
	}{
		{"rdf.xml", "application/rdf+xml", event.Item{
			ID: event.ItemID(feedURL, "https://rdf.example.org/a/1"), FeedTitle: "DW Business",
			Title: "Export controls on gallium tighten", Link: "https://rdf.example.org/a/1",
			Summary: "Beijing adds germanium too.", Published: "2026-11-26T08:00:00Z", Lang: "en",
		}},
		{"feed.json", "application/feed+json", event.Item{
			ID: event.ItemID(feedURL, "j-1"), FeedTitle: "JSON Wire",
			Title: "Terres rares : accord UE-Japon", Link: "https://json.example.org/1",
			Summary: "Un accord historique.", Published: "2026-11-26T06:00:00Z", Lang: "fr",
		}},
		{"atom.xml", "application/atom+xml", event.Item{
			ID: event.ItemID(feedURL, "urn:uuid:entry-1"), FeedTitle: "Atom Wirtschaft",
			Title: "Zölle steigen", Link: "https://atom.example.org/a/1",
			Summary: "Die Zölle steigen.", Published: "2026-11-26T10:00:00Z", Lang: "de",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			entries, err := normalize(t, feedURL, fixture(t, tc.file), tc.ctype, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("%d entries", len(entries))
			}
			got := entries[0].item
			tc.want.FeedURL, tc.want.FetchedAt = feedURL, "2026-11-27T12:00:00Z"
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
