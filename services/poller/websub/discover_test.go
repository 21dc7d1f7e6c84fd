package websub

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDiscover covers websub.rocks subscriber tests 100-104 and 200: where
// the hub and the topic are found, and which source wins.
func TestDiscover(t *testing.T) {
	t.Parallel()
	const feed = "https://blog.example.org/feed"
	tests := []struct {
		name      string
		links     []string
		body      string
		wantHub   string
		wantTopic string
	}{
		{"100 link header", []string{`<https://hub.example.net/>; rel="hub", <https://blog.example.org/100>; rel="self"`}, "nohub.xml",
			"https://hub.example.net/", "https://blog.example.org/100"},
		{"100 link headers apart", []string{`<https://hub.example.net/>; rel=hub`, `<https://blog.example.org/100>; rel=self`}, "",
			"https://hub.example.net/", "https://blog.example.org/100"},
		{"101 html tag", nil, "html-tag.html", "https://hub.example.net/", "https://blog.example.org/101"},
		{"102 atom", nil, "atom.xml", "https://hub.example.net/", "https://blog.example.org/atom.xml"},
		{"103 rss atom:link", nil, "rss.xml", "https://hub.example.net/", "https://blog.example.org/rss.xml"},
		{"104 header wins over body", []string{`<https://header-hub.example.net/>; rel="hub", <https://blog.example.org/header-self>; rel="self"`}, "atom.xml",
			"https://header-hub.example.net/", "https://blog.example.org/header-self"},
		{"header hub, body self", []string{`<https://header-hub.example.net/>; rel="hub"`}, "rss.xml",
			"https://header-hub.example.net/", "https://blog.example.org/rss.xml"},
		{"200 self differs from feed URL", []string{`<https://hub.example.net/>; rel="hub"; title="x,y", <https://other.example.org/topic>; rel="self"`}, "",
			"https://hub.example.net/", "https://other.example.org/topic"},
		{"rel list and relative URLs", nil, "relative.xml", "https://blog.example.org/hub", "https://blog.example.org/hub"},
		{"no hub, no self", nil, "nohub.xml", "", feed},
		{"not a link", []string{`garbage, <https://hub.example.net/>; rel="hub"`}, "", "https://hub.example.net/", feed},
		{"non-http hub ignored", []string{`<mailto:x@example.org>; rel="hub"`}, "", "", feed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for _, l := range tt.links {
				h.Add("Link", l)
			}
			var body []byte
			if tt.body != "" {
				body = fixture(t, tt.body)
			}
			d := Discover(h, body, feed, feed, false)
			if d.Hub != tt.wantHub || d.Topic != tt.wantTopic {
				t.Errorf("Discover = %+v, want hub %q topic %q", d, tt.wantHub, tt.wantTopic)
			}
		})
	}
}

// TestDiscoverRedirects covers websub.rocks 201 and 202: a temporary
// redirect of the topic URL leaves the topic alone, a permanent one moves it.
func TestDiscoverRedirects(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/temp", http.RedirectHandler("/final", http.StatusFound))
	mux.Handle("/perm", http.RedirectHandler("/final", http.StatusMovedPermanently))
	mux.Handle("/perm2", http.RedirectHandler("/perm", http.StatusPermanentRedirect))
	mux.Handle("/mixed", http.RedirectHandler("/perm", http.StatusTemporaryRedirect))
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://hub.example.net/>; rel="hub"`)
		w.Write(fixture(t, "nohub.xml"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tests := []struct{ path, wantTopic string }{
		{"/temp", srv.URL + "/temp"},
		{"/perm", srv.URL + "/final"},
		{"/perm2", srv.URL + "/final"},
		{"/mixed", srv.URL + "/mixed"},
		{"/final", srv.URL + "/final"},
	}
	for _, tt := range tests {
		resp, err := srv.Client().Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := Discover(resp.Header, body, srv.URL+tt.path, resp.Request.URL.String(), MovedPermanently(resp))
		if d.Topic != tt.wantTopic || d.Hub != "https://hub.example.net/" {
			t.Errorf("%s: Discover = %+v, want topic %s", tt.path, d, tt.wantTopic)
		}
	}
}

func TestValidSignature(t *testing.T) {
	t.Parallel()
	body := []byte("<feed>content</feed>")
	const secret = "s3cret"
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"sha1", sign("sha1", secret, body), true},
		{"sha256", sign("sha256", secret, body), true},
		{"sha384", sign("sha384", secret, body), true},
		{"sha512", sign("sha512", secret, body), true},
		{"upper-case method", "SHA256=" + sign("sha256", secret, body)[len("sha256="):], true},
		{"missing", "", false},
		{"wrong secret", sign("sha256", "other", body), false},
		{"other body", sign("sha256", secret, []byte("x")), false},
		{"unknown method", "md5=" + sign("sha256", secret, body)[len("sha256="):], false},
		{"not hex", "sha256=zz", false},
		{"no method", "abcdef", false},
		{"truncated", sign("sha256", secret, body)[:20], false},
	}
	for _, tt := range tests {
		if got := validSignature(tt.header, secret, body); got != tt.want {
			t.Errorf("%s: validSignature(%q) = %v, want %v", tt.name, tt.header, got, tt.want)
		}
	}
	if validSignature(sign("sha256", "", body), "", body) {
		t.Error("a subscription without a secret accepted a signature")
	}
}

func TestSplitCallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, key, tok string
		ok             bool
	}{
		{"/feed-1234/abcd", "feed-1234", "abcd", true},
		{"/websub/feed-1234/abcd", "feed-1234", "abcd", true},
		{"/websub/feed-1234/abcd/", "feed-1234", "abcd", true},
		{"/abcd", "", "", false},
		{"/feed*1/abcd", "", "", false},
		{"/feed.1/abcd", "", "", false},
		{"/feed-1/ab%2Fcd", "", "", false},
		{"/", "", "", false},
	}
	for _, tt := range tests {
		key, tok, ok := splitCallback(tt.path)
		if key != tt.key || tok != tt.tok || ok != tt.ok {
			t.Errorf("splitCallback(%q) = %q %q %v", tt.path, key, tok, ok)
		}
	}
}
