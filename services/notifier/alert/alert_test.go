package alert_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-3", 0, false},
		{"99999999999", alert.MaxRetryAfter, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), alert.MaxRetryAfter, true},
		{"soon", 0, false},
		{"1.5", 0, false},
	}
	for _, tc := range tests {
		got, ok := alert.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
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
