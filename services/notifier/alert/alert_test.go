package alert_test

import (
	"bytes"
	stdjson "encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// TestCheckResponseRetryAfter: a receiver's Retry-After, in either form,
// is capped at MaxRetryAfter (the parsing itself is tested in httpx).
func TestCheckResponseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantRetry  bool
		wantDelay  time.Duration
		wantOK     bool
	}{
		{"seconds", 429, "5", true, 5 * time.Second, true},
		{"seconds capped", 503, "99999999999", true, alert.MaxRetryAfter, true},
		{"date", 503, now.Add(30 * time.Second).Format(http.TimeFormat), true, 30 * time.Second, true},
		{"past date", 429, now.Add(-time.Hour).Format(http.TimeFormat), true, 0, true},
		{"far future date capped", 429, now.Add(48 * time.Hour).Format(http.TimeFormat), true, alert.MaxRetryAfter, true},
		{"negative: own backoff", 429, "-3", true, 0, false},
		{"garbage: own backoff", 503, "soon", true, 0, false},
		{"permanent status ignores it", 400, "5", false, 0, false},
	}
	for _, tc := range tests {
		resp := &http.Response{StatusCode: tc.status, Status: http.StatusText(tc.status), Header: http.Header{"Retry-After": {tc.retryAfter}}, Body: http.NoBody}
		retry, err := alert.CheckResponse("test", resp, now)
		if err == nil || retry != tc.wantRetry {
			t.Errorf("%s: CheckResponse = %v, %v; want retry %v and an error", tc.name, retry, err, tc.wantRetry)
			continue
		}
		if d, ok := alert.RetryDelay(err); d != tc.wantDelay || ok != tc.wantOK {
			t.Errorf("%s: RetryDelay = %v, %v; want %v, %v", tc.name, d, ok, tc.wantDelay, tc.wantOK)
		}
	}
}

func TestKeyIsStableAndDistinct(t *testing.T) {
	t.Parallel()
	a, b := &event.Item{ID: "a"}, &event.Item{ID: "b"}
	if alert.Key("s", "webhook", a, b) != alert.Key("s", "webhook", b, a) {
		t.Error("key depends on item order")
	}
	keys := map[string]bool{}
	for _, k := range []string{
		alert.Key("s", "webhook", a), alert.Key("s", "slack", a), alert.Key("t", "webhook", a),
		alert.Key("s", "webhook", b), alert.Key("s", "webhook", a, b),
	} {
		if keys[k] {
			t.Errorf("duplicate key %s", k)
		}
		keys[k] = true
	}
}

func TestMarshalBodyNeverNullTopics(t *testing.T) {
	t.Parallel()
	it := &event.Item{ID: "a"}
	body, err := alert.MarshalBody(alert.NewBatch("s", "webhook", it))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"topics":[]`; !strings.Contains(string(body), want) {
		t.Errorf("body %s lacks %s", body, want)
	}
	if it.Topics != nil {
		t.Error("MarshalBody modified the shared item")
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a\r\nb":            "a b",
		"  lead and trail ": "lead and trail",
		"x\u2028y\u2029z":   "x y z",
		"tab\there":         "tab here",
		"日本語\n見出し":          "日本語 見出し",
	} {
		if got := alert.Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBatchStoryRoles(t *testing.T) {
	t.Parallel()
	a, b, c, d := &event.Item{ID: "a"}, &event.Item{ID: "b"}, &event.Item{ID: "c"}, &event.Item{ID: "d"}
	tests := []struct {
		name    string
		items   []*event.Item
		updates map[string]string
		event   string
		stories string // heads (or "-" for none) with their later reports
		body    string // how the body starts
	}{
		{"alerts only", []*event.Item{a, b}, nil, alert.EventAlert, "a;b",
			`{"subscriber":"s","kind":"alert","items":[{"id":"a",`},
		{"update only", []*event.Item{b}, map[string]string{"b": "a"}, alert.EventUpdate, "-+b",
			`{"subscriber":"s","kind":"update","updates":{"b":"a"},"items":[{"id":"b",`},
		{"mixed body", []*event.Item{a, b}, map[string]string{"b": "a"}, alert.EventMixed, "a+b",
			`{"subscriber":"s","kind":"mixed","updates":{"b":"a"},"items":[{"id":"a",`},
		{"mixed digest", []*event.Item{b, a, c, d}, map[string]string{"b": "a", "d": "x", "z": "y"}, alert.EventMixed, "a+b;c;-+d", ""},
		{"updates of an item outside the batch are left out", []*event.Item{a}, map[string]string{"z": "a"}, alert.EventAlert, "a", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			batch := alert.NewBatch("s", "webhook", tc.items...)
			batch.Updates = tc.updates
			if got := batch.Event(); got != tc.event {
				t.Errorf("Event = %q, want %q", got, tc.event)
			}
			var parts []string
			for _, st := range batch.Stories() {
				p := "-"
				if st.Head != nil {
					p = st.Head.ID
				}
				for _, it := range st.Also {
					p += "+" + it.ID
				}
				parts = append(parts, p)
			}
			if got := strings.Join(parts, ";"); got != tc.stories {
				t.Errorf("Stories = %s, want %s", got, tc.stories)
			}
			body, err := alert.MarshalBody(batch)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(body), tc.body) {
				t.Errorf("body\n got %s\nwant it to start with %s", body, tc.body)
			}
			if strings.Contains(string(body), `"z"`) {
				t.Errorf("body names an item it does not carry: %s", body)
			}
			if batch.Key != alert.Key("s", "webhook", tc.items...) {
				t.Error("the role changed the idempotency key")
			}
		})
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		it   *event.Item
		want string
	}{
		{&event.Item{FeedTitle: "Wire\nService", FeedURL: "https://x.example/feed"}, "Wire Service"},
		{&event.Item{FeedURL: "https://www.wire.example/rss"}, "wire.example"},
		{&event.Item{Link: "https://post.example/a"}, "post.example"},
		{&event.Item{}, "another source"},
	} {
		if got := alert.Source(tc.it); got != tc.want {
			t.Errorf("Source(%+v) = %q, want %q", tc.it, got, tc.want)
		}
	}
}

// TestMarshalBodyAsEncodingJSON: the body is byte for byte what
// encoding/json (without HTML escaping) writes, as bodies were written
// before, whatever the text holds: HTML characters, line and paragraph
// separators, control characters, invalid UTF-8, floats of every form.
func TestMarshalBodyAsEncodingJSON(t *testing.T) {
	t.Parallel()
	texts := []string{
		"plain", `a<b>&c "quoted" \ back`, "x\u2028y\u2029z", "bad\xff\xfeutf8", "\xed\xa0\x80 surrogate",
		"ctl\x00\x01\x1f\t\n\r\x7f", "日本語の見出し", "emoji 😀", "",
	}
	scores := []float64{0, 1, 0.1, 1e21, 1e20, 1e-7, 0.000001, 5e-324, 123456789.125, 3.141592653589793, -2.5}
	for _, text := range texts {
		it := &event.Item{
			ID: "id-" + text, FeedURL: "https://example.org/feed?a=1&b=<2>", FeedTitle: text, Title: text,
			Link: "https://example.org/" + text, Summary: text, Published: "2026-12-04T10:00:00Z",
			FetchedAt: "2026-12-04T10:00:01.123456789Z", Lang: "en", Topics: []string{"trade", text},
			Scores: map[string]float64{}, Matches: map[string][]string{text: {text, "x"}, "trade": {"tariff"}}, StoryID: text,
		}
		for i, f := range scores {
			it.Scores[string(rune('a'+i))+text] = f
		}
		b := alert.NewBatch("desk "+text, "webhook", it, &event.Item{ID: "second"})
		b.Updates = map[string]string{it.ID: "first-" + text, "second": "a"}
		got, err := alert.MarshalBody(b)
		if err != nil {
			t.Fatal(err)
		}
		withTopics := *b.Items[1]
		withTopics.Topics = []string{}
		var want bytes.Buffer
		enc := stdjson.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(alert.Body{Subscriber: b.Subscriber, Kind: b.Event(), Updates: b.Updates, Items: []*event.Item{it, &withTopics}}); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte{'\n'}); !bytes.Equal(got, w) {
			t.Errorf("text %q:\n got %s\nwant %s", text, got, w)
		}
	}
}
