package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSinkHTTP: the sink answers Go's HTTP client (what feedmon's webhook
// uses) on kept-alive connections, counts each item once however often it
// comes, refuses a body it cannot decode and one without a length.
func TestSinkHTTP(t *testing.T) {
	t.Parallel()
	s, err := newSink(10, func(string) (time.Time, bool) { return time.Time{}, false }, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(body io.Reader, header ...string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	fetched := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	for i := range 6 {
		// Items 0..2, each twice; the last with Expect: 100-continue.
		body := fmt.Sprintf(`{"event":"alert","items":[{"id":"i%d","link":"https://x.example/%d","fetched_at":%q,"title":"t"}]}`, i%3, i%3, fetched)
		hdr := []string{}
		if i == 5 {
			hdr = []string{"Expect", "100-continue"}
		}
		if code := post(bytes.NewReader([]byte(body)), hdr...); code != http.StatusNoContent {
			t.Fatalf("post %d: status %d, want 204", i, code)
		}
	}
	if code := post(strings.NewReader(`{"items":`)); code != http.StatusBadRequest {
		t.Errorf("truncated JSON: status %d, want 400", code)
	}
	// Without a known length Go's client sends the body chunked.
	if code := post(io.MultiReader(strings.NewReader(`{"items":[]}`))); code != http.StatusLengthRequired {
		t.Errorf("chunked body: status %d, want 411", code)
	}
	if code := post(strings.NewReader(`{"items":[{"id":"i9"}]}`), "Connection", "close"); code != http.StatusNoContent {
		t.Errorf("after a refused request: status %d, want 204", code)
	}
	if got := s.count.Load(); got != 4 {
		t.Errorf("counted %d items, want 4", got)
	}
	lat, _ := s.latencies()
	if len(lat) != 3 || lat[0] < time.Second {
		t.Errorf("latencies %v, want 3 of at least 1s", lat)
	}
}
