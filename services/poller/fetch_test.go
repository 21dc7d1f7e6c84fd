package poller

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/version"
)

func TestConditionalGet(t *testing.T) {
	t.Parallel()
	body := fixture(t, "rss.xml")
	var gotUA, gotAE, gotINM, gotIMS string
	srv := newFeedServer(t, nil)
	srv.set(func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotAE = r.Header.Get("User-Agent"), r.Header.Get("Accept-Encoding")
		gotINM, gotIMS = r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		if gotINM == `"v1"` || gotIMS == "Wed, 25 Nov 2026 08:00:00 GMT" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Wed, 25 Nov 2026 08:00:00 GMT")
		w.Write(body)
	})
	h := newHarness(t, nil, testConfig(srv.URL), WithClock(fixedClock{fixedNow}.Now), WithRand(func() float64 { return 0.5 }))

	st := h.poll(srv.URL)
	// The feed's <ttl>15</ttl> stretches the 1m interval to its cap, 4m,
	// after the full fetch and after the 304 alike.
	if d := st.NextDue.Sub(st.LastFetch); d != 4*time.Minute {
		t.Errorf("after 200: next poll in %s, want 4m", d)
	}
	if st.State != stateOK || st.ETag != `"v1"` || st.LastModified == "" {
		t.Fatalf("first poll: state %+v", st)
	}
	if gotUA != version.UserAgent() || gotAE != "gzip" {
		t.Errorf("User-Agent %q, Accept-Encoding %q", gotUA, gotAE)
	}
	st = h.poll(srv.URL)
	if st.State != stateNotModified {
		t.Fatalf("second poll: state %q (%s), want not_modified", st.State, st.Error)
	}
	if d := st.NextDue.Sub(st.LastFetch); d != 4*time.Minute {
		t.Errorf("after 304: next poll in %s, want 4m", d)
	}
	if gotINM != `"v1"` || gotIMS != "Wed, 25 Nov 2026 08:00:00 GMT" {
		t.Errorf("conditional headers: If-None-Match %q If-Modified-Since %q", gotINM, gotIMS)
	}
	if h.count(telemetry.PollOK) != 1 || h.count(telemetry.PollNotModified) != 1 {
		t.Errorf("poll requests ok=%v not_modified=%v", h.count(telemetry.PollOK), h.count(telemetry.PollNotModified))
	}
	if got := streamCount(t, h.bus); got != 3 {
		t.Errorf("stream has %d items, want 3", got)
	}
}

func TestCustomUserAgent(t *testing.T) {
	t.Parallel()
	var ua string
	srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		ua = r.Header.Get("User-Agent")
		w.Write(fixture(t, "atom.xml"))
	})
	cfg := testConfig(srv.URL)
	cfg.Poll.UserAgent = "desk-bot/1"
	h := newHarness(t, nil, cfg)
	h.poll(srv.URL)
	if ua != "desk-bot/1" {
		t.Errorf("User-Agent %q", ua)
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	body := fixture(t, "rss.xml")
	srv := newFeedServer(t, nil)
	srv.set(func(w http.ResponseWriter, r *http.Request) {
		var n int
		switch {
		case r.URL.Path == "/loop/a":
			http.Redirect(w, r, "/loop/b", http.StatusFound)
		case r.URL.Path == "/loop/b":
			http.Redirect(w, r, "/loop/a", http.StatusFound)
		case r.URL.Path == "/feed":
			w.Write(body)
		case r.URL.Path == "/cookie":
			// Bot protection: set a cookie, send the client back here.
			if c, err := r.Cookie("pass"); err == nil && c.Value == "1" {
				w.Write(body)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "pass", Value: "1", Path: "/"})
			http.Redirect(w, r, "/cookie", http.StatusFound)
		default:
			// /hops/N redirects N times before the feed.
			if _, err := fmt.Sscanf(r.URL.Path, "/hops/%d", &n); err != nil {
				http.NotFound(w, r)
				return
			}
			if n == 0 {
				w.Write(body)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hops/%d", n-1), http.StatusMovedPermanently)
		}
	})
	tests := []struct {
		path    string
		wantErr string
	}{
		{"/hops/0", ""},
		{"/hops/5", ""},
		{"/hops/6", "5 redirects"},
		{"/loop/a", "redirect loop"},
		{"/cookie", ""},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			t.Parallel()
			u := srv.URL + tc.path
			h := newHarness(t, nil, testConfig(u))
			st := h.poll(u)
			if tc.wantErr == "" {
				if st.State != stateOK {
					t.Fatalf("state %q (%s), want ok", st.State, st.Error)
				}
				// Relative links resolve against where the feed was
				// finally served from, not the channel link here (absolute).
				return
			}
			if st.State != stateError || !strings.Contains(st.Error, tc.wantErr) {
				t.Fatalf("state %q error %q, want error containing %q", st.State, st.Error, tc.wantErr)
			}
		})
	}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	feed := fixture(t, "rss.xml")
	// 256 MiB of spaces in 256 KiB: a gzip bomb for a 1 MiB cap.
	bomb := fixture(t, "bomb.xml.gz")
	big := append(append([]byte{}, feed[:len(feed)-20]...), bytes.Repeat([]byte(" "), 2<<20)...)
	tests := []struct {
		name     string
		body     []byte
		encoding string
		wantErr  string
	}{
		{"plain", feed, "", ""},
		{"gzip", gzipped(t, feed), "gzip", ""},
		{"too large", big, "", "max_body_bytes"},
		{"gzip bomb", bomb, "gzip", "max_body_bytes"},
		{"bad gzip", []byte("not gzip at all"), "gzip", "gzip"},
		{"unknown encoding", feed, "br", "content-encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.encoding != "" {
					w.Header().Set("Content-Encoding", tc.encoding)
				}
				w.Write(tc.body)
			})
			h := newHarness(t, nil, testConfig(srv.URL))
			st := h.poll(srv.URL)
			if tc.wantErr == "" {
				if st.State != stateOK || st.ItemsSeen != 3 {
					t.Fatalf("state %q (%s), items %d", st.State, st.Error, st.ItemsSeen)
				}
				return
			}
			if st.State != stateError || !strings.Contains(st.Error, tc.wantErr) {
				t.Fatalf("state %q error %q, want error containing %q", st.State, st.Error, tc.wantErr)
			}
			if h.count(telemetry.PollError) != 1 {
				t.Errorf("error count %v", h.count(telemetry.PollError))
			}
		})
	}
}

func TestSSRF(t *testing.T) {
	t.Parallel()
	body := fixture(t, "rss.xml")
	ok := newFeedServer(t, serveXML(body, "", ""))
	// A second loopback address, outside the allow list below.
	other := newFeedServerOn(t, "127.0.0.2:0", serveXML(body, "", ""))
	redirector := newFeedServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/feed", http.StatusFound)
	})

	tests := []struct {
		name    string
		url     string
		allow   []string
		refused bool
	}{
		{"loopback allowed", ok.URL, []string{"127.0.0.0/8"}, false},
		{"loopback refused by default", ok.URL, nil, true},
		{"redirect to refused address", redirector.URL, []string{"127.0.0.1/32"}, true},
		{"redirect to allowed address", redirector.URL, []string{"127.0.0.1", "127.0.0.2"}, false},
		{"localhost name refused", strings.Replace(ok.URL, "127.0.0.1", "localhost", 1), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(tc.url)
			cfg.Poll.AllowNetworks = tc.allow
			h := newHarness(t, nil, cfg)
			st := h.poll(tc.url)
			if !tc.refused {
				if st.State != stateOK {
					t.Fatalf("state %q (%s), want ok", st.State, st.Error)
				}
				return
			}
			if st.State != stateError || !strings.Contains(st.Error, "address not allowed") {
				t.Fatalf("state %q error %q, want refusal", st.State, st.Error)
			}
			if metricValue(h.svc.met.refused) < 1 {
				t.Error("refused counter not incremented")
			}
		})
	}
}

func TestAddrGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr  string
		allow []string
		want  bool
	}{
		{"8.8.8.8", nil, true},
		{"2606:4700:4700::1111", nil, true},
		{"127.0.0.1", nil, false},
		{"10.1.2.3", nil, false},
		{"172.16.0.1", nil, false},
		{"192.168.1.1", nil, false},
		{"169.254.169.254", nil, false},
		{"100.64.0.1", nil, false},
		{"100.127.255.254", nil, false},
		{"100.128.0.1", nil, true},
		{"224.0.0.1", nil, false},
		{"0.0.0.0", nil, false},
		{"255.255.255.255", nil, false},
		{"::", nil, false},
		{"::1", nil, false},
		{"::ffff:127.0.0.1", nil, false},
		{"::ffff:169.254.169.254", nil, false},
		{"::ffff:8.8.8.8", nil, true},
		{"::127.0.0.1", nil, false},
		{"fc00::1", nil, false},
		{"fd12:3456::1", nil, false},
		{"fe80::1", nil, false},
		{"fe80::1%eth0", nil, false},
		{"ff02::1", nil, false},
		{"64:ff9b::7f00:1", nil, false},
		{"64:ff9b::808:808", nil, true},
		{"2002:7f00:1::", nil, false},
		{"127.0.0.1", []string{"127.0.0.0/8"}, true},
		{"::ffff:127.0.0.1", []string{"127.0.0.0/8"}, true},
		{"10.0.0.5", []string{"10.0.0.0/24"}, true},
		{"10.0.1.5", []string{"10.0.0.0/24"}, false},
		{"fd00::1", []string{"fd00::/8"}, true},
	}
	for _, tc := range tests {
		g, err := newAddrGuard(tc.allow)
		if err != nil {
			t.Fatal(err)
		}
		a := netip.MustParseAddr(tc.addr)
		if got := g.allowed(a); got != tc.want {
			t.Errorf("allowed(%s, allow=%v) = %v, want %v", tc.addr, tc.allow, got, tc.want)
		}
		err = g.control("tcp", netip.AddrPortFrom(a, 443).String(), nil)
		if (err == nil) != tc.want || (err != nil && !errors.Is(err, ErrForbiddenAddress)) {
			t.Errorf("control(%s) = %v", tc.addr, err)
		}
	}
}

func TestRetryAfterAndCacheHeaders(t *testing.T) {
	t.Parallel()
	now := fixedNow
	tests := []struct {
		name   string
		header http.Header
		retry  time.Duration
		cache  time.Duration
	}{
		{"none", http.Header{}, 0, 0},
		{"retry seconds", http.Header{"Retry-After": {"120"}}, 2 * time.Minute, 0},
		{"retry date", http.Header{"Retry-After": {now.Add(time.Hour).Format(http.TimeFormat)}}, time.Hour, 0},
		{"retry past date", http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0, 0},
		{"retry garbage", http.Header{"Retry-After": {"soon"}}, 0, 0},
		{"retry seconds capped", http.Header{"Retry-After": {"99999999"}}, maxRetryAfter, 0},
		// A date is capped like seconds: a host's slow-down record showed
		// "Retry-After 8760h" for a date a year ahead, 168h for its seconds.
		{"retry far future date capped", http.Header{"Retry-After": {now.Add(365 * 24 * time.Hour).Format(http.TimeFormat)}}, maxRetryAfter, 0},
		{"max-age", http.Header{"Cache-Control": {"public, max-age=600"}}, 0, 10 * time.Minute},
		{"expires", http.Header{"Expires": {now.Add(20 * time.Minute).Format(http.TimeFormat)}}, 0, 20 * time.Minute},
		{"max-age wins", http.Header{"Cache-Control": {"max-age=60"}, "Expires": {now.Add(time.Hour).Format(http.TimeFormat)}}, 0, time.Minute},
	}
	for _, tc := range tests {
		h := &responseHandler{resp: &http.Response{StatusCode: 200, Header: tc.header}}
		if got := h.ParseRetryDelay(now); got != tc.retry {
			t.Errorf("%s: ParseRetryDelay = %v, want %v", tc.name, got, tc.retry)
		}
		if got := h.CacheLifetime(now); got != tc.cache {
			t.Errorf("%s: CacheLifetime = %v, want %v", tc.name, got, tc.cache)
		}
	}
}
