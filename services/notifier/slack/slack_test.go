package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/slack"
)

func hostile() *event.Item {
	return &event.Item{
		ID:        "h1",
		FeedURL:   "https://example.org/feed",
		FeedTitle: "Evil <!everyone> Feed & Co",
		Title:     "<!channel> AT&T <@U024BE7LH> wins <https://evil.example|click me> @here\nsecond line",
		Link:      "https://example.org/a?x=1&y=2|<b>",
		Summary:   "Tariffs > quotas <!subteam^S123> <#C024BE7LR> @everyone @Channel end",
		Published: "2026-11-26T08:00:00+01:00",
		Topics:    []string{"trade", "defense"},
		Matches:   map[string][]string{"trade": {"tariffs", "<!here>"}, "defense": {"quotas", "tariffs"}},
	}
}

// texts returns every text the message carries.
func texts(m *slack.Message) []string {
	out := []string{m.Text}
	for _, b := range m.Blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, e := range b.Elements {
			out = append(out, e.Text)
		}
	}
	return out
}

func TestPayload(t *testing.T) {
	t.Parallel()
	var got []byte
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		ctype = r.Header.Get("Content-Type")
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	n := slack.New(config.Slack{WebhookURL: srv.URL}, srv.Client())
	if retry, err := n.Notify(context.Background(), alert.NewBatch("desk", "slack", hostile())); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	if !strings.HasPrefix(ctype, "application/json") {
		t.Errorf("Content-Type %q", ctype)
	}
	var m slack.Message
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("payload: %v\n%s", err, got)
	}
	if len(m.Blocks) != 2 || m.Blocks[0].Type != "section" || m.Blocks[1].Type != "context" {
		t.Fatalf("blocks = %s", got)
	}
	section := m.Blocks[0].Text
	if section.Type != "mrkdwn" {
		t.Errorf("section type %q", section.Type)
	}
	wantHead := "*<https://example.org/a?x=1&amp;y=2%7C%3Cb%3E|&lt;!channel&gt; AT&amp;T &lt;@U024BE7LH&gt; wins &lt;https://evil.example|click me&gt; @\u200bhere second line>*\n"
	if !strings.HasPrefix(section.Text, wantHead) {
		t.Errorf("section head\n got %q\nwant %q", section.Text, wantHead)
	}
	if want := "Tariffs &gt; quotas &lt;!subteam^S123&gt; &lt;#C024BE7LR&gt; @\u200beveryone @\u200bChannel end"; !strings.HasSuffix(section.Text, want) {
		t.Errorf("summary in %q, want %q", section.Text, want)
	}
	ctx := map[string]string{}
	for _, e := range m.Blocks[1].Elements {
		k, v, _ := strings.Cut(e.Text, " ")
		ctx[k] = v
	}
	for k, want := range map[string]string{
		"*Source:*":    "Evil &lt;!everyone&gt; Feed &amp; Co",
		"*Topics:*":    "trade, defense",
		"*Matched:*":   "tariffs, &lt;!here&gt;, quotas",
		"*Published:*": "2026-11-26 07:00 UTC",
	} {
		if ctx[k] != want {
			t.Errorf("context %s = %q, want %q", k, ctx[k], want)
		}
	}
	// Nothing but feedmon's own link may open markup.
	for _, s := range texts(&m) {
		for _, bad := range []string{"<!", "<@", "<#", "@here", "@channel", "@everyone"} {
			if strings.Contains(strings.ToLower(s), strings.ToLower(bad)) {
				t.Errorf("text %q contains %q", s, bad)
			}
		}
	}
	if c := strings.Count(section.Text, "<"); c != 1 {
		t.Errorf("section has %d '<', want only the link's", c)
	}
	if m.Text == "" || strings.ContainsAny(m.Text, "<>\n") {
		t.Errorf("fallback text %q", m.Text)
	}
}

func TestUnsafeLinkIsNotLinked(t *testing.T) {
	t.Parallel()
	for _, link := range []string{"javascript:alert(1)", "", "ftp://example.org/x", "//example.org/x", "https://"} {
		it := hostile()
		it.Link = link
		m := slack.Build(alert.NewBatch("d", "slack", it))
		if strings.Contains(m.Blocks[0].Text.Text, "<") {
			t.Errorf("link %q produced markup: %q", link, m.Blocks[0].Text.Text)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("<&>é", 5000)
	var items []*event.Item
	for range 40 {
		it := hostile()
		it.Title, it.Summary, it.FeedTitle = long, long, long
		it.Matches = map[string][]string{"trade": {long}}
		items = append(items, it)
	}
	m := slack.Build(alert.NewBatch("d", "slack", items...))
	if len(m.Blocks) > slack.MaxBlocks {
		t.Errorf("%d blocks, limit %d", len(m.Blocks), slack.MaxBlocks)
	}
	if n := utf8.RuneCountInString(m.Text); n > slack.MaxFallbackText {
		t.Errorf("fallback text has %d characters", n)
	}
	for _, b := range m.Blocks {
		if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > slack.MaxSectionText {
			t.Errorf("section text has %d characters", utf8.RuneCountInString(b.Text.Text))
		}
		if len(b.Elements) > 10 {
			t.Errorf("context has %d elements", len(b.Elements))
		}
		for _, e := range b.Elements {
			if utf8.RuneCountInString(e.Text) > slack.MaxContextText {
				t.Errorf("context text has %d characters", utf8.RuneCountInString(e.Text))
			}
		}
	}
	last := m.Blocks[len(m.Blocks)-1]
	if last.Type != "context" || !strings.Contains(last.Elements[0].Text, "more") {
		t.Errorf("no '…and N more' at the end: %+v", last)
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a & b", 100, "a &amp; b"},
		{"<!here>", 100, "&lt;!here&gt;"},
		{"abcdef", 4, "abc…"},
		{"ab<cd", 6, "ab…"}, // never cut inside &lt;
		{"ab<cd", 7, "ab&lt;…"},
		{"abc", 3, "abc"},
		{"@channel now", 100, "@\u200bchannel now"},
		{"mail me at a@example.org", 100, "mail me at a@example.org"},
	}
	for _, tc := range tests {
		if got := slack.Escape(tc.in, tc.n); got != tc.want {
			t.Errorf("Escape(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestStatusAndRedaction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		body      string
		wantRetry bool
	}{
		{400, "invalid_payload", false},
		{403, "action_prohibited", false},
		{404, "no_service", false},
		{410, "channel_is_archived", false},
		{429, "rate_limited", true},
		{500, "rollup_error", true},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			// The real Slack host name, dialled to the test server.
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
			}}}
			n := slack.New(config.Slack{WebhookURL: "http://hooks.slack.com/services/T000/B000/SECRETTOKEN"}, client)
			retry, err := n.Notify(context.Background(), alert.NewBatch("d", "slack", hostile()))
			if err == nil || retry != tc.wantRetry {
				t.Fatalf("Notify = %v, %v; want retry %v", retry, err, tc.wantRetry)
			}
			if !strings.Contains(err.Error(), tc.body) {
				t.Errorf("error %q does not carry Slack's reason", err)
			}
		})
	}
	// Connection refused: the error names the URL, redacted.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	retry, err := slack.New(config.Slack{WebhookURL: "http://hooks.slack.com/services/T000/B000/SECRETTOKEN"}, client).
		Notify(context.Background(), alert.NewBatch("d", "slack", hostile()))
	if err == nil || !retry || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Errorf("Notify = %v, %v; want a retryable, redacted error", retry, err)
	}
}

// TestUpdates: a later report of an alerted story is one compact line, as
// safe as any alert; in a digest the line follows its story's first report.
func TestUpdates(t *testing.T) {
	t.Parallel()
	first := &event.Item{ID: "f", FeedTitle: "Example", Title: "Tariff truce", Link: "https://example.org/f", Summary: "s", Topics: []string{"trade"}}
	later := hostile()
	orphan := &event.Item{ID: "o", FeedURL: "https://www.wire.example/rss", Title: "Old story, new outlet", Link: "javascript:alert(1)"}
	tests := []struct {
		name   string
		items  []*event.Item
		types  string // block types
		lines  []string
		assert func(t *testing.T, m *slack.Message)
	}{
		{
			name: "update only", items: []*event.Item{later}, types: "section",
			lines: []string{"↳ Also reported by Evil &lt;!everyone&gt; Feed &amp; Co: <https://example.org/a?x=1&amp;y=2%7C%3Cb%3E|&lt;!channel&gt; AT&amp;T &lt;@U024BE7LH&gt; wins &lt;https://evil.example|click me&gt; @\u200bhere second line>"},
		},
		{
			name: "unsafe link is not linked", items: []*event.Item{orphan}, types: "section",
			lines: []string{"↳ Also reported by wire.example: Old story, new outlet"},
		},
		{
			name: "digest: lines under their first report", items: []*event.Item{later, first, orphan}, types: "section,context,context,divider,context",
			assert: func(t *testing.T, m *slack.Message) {
				if got := m.Blocks[2].Elements[0].Text; got != slack.AlsoLine(later) {
					t.Errorf("line under the first report = %q", got)
				}
				if got := m.Blocks[4].Elements[0].Text; got != slack.AlsoLine(orphan) {
					t.Errorf("orphan line = %q", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := alert.NewBatch("d", "slack", tc.items...)
			b.Updates = map[string]string{later.ID: first.ID, orphan.ID: "earlier"}
			m := slack.Build(b)
			var types []string
			for _, bl := range m.Blocks {
				types = append(types, bl.Type)
			}
			if got := strings.Join(types, ","); got != tc.types {
				t.Fatalf("blocks %s, want %s", got, tc.types)
			}
			for i, want := range tc.lines {
				if got := m.Blocks[i].Text.Text; got != want {
					t.Errorf("line %d\n got %q\nwant %q", i, got, want)
				}
			}
			if tc.assert != nil {
				tc.assert(t, m)
			}
			for _, s := range texts(m) {
				for _, bad := range []string{"<!", "<@", "<#", "@here", "@channel", "@everyone", "javascript:"} {
					if strings.Contains(strings.ToLower(s), strings.ToLower(bad)) {
						t.Errorf("text %q contains %q", s, bad)
					}
				}
			}
			if m.Text == "" || strings.ContainsAny(m.Text, "<>\n") {
				t.Errorf("fallback text %q", m.Text)
			}
		})
	}
}

func TestUpdateLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("<&>é", 5000)
	var items []*event.Item
	updates := map[string]string{}
	for i := range 40 {
		it := hostile()
		it.ID = strings.Repeat("x", i+1)
		it.Title, it.FeedTitle = long, long
		it.Link = "https://example.org/" + strings.Repeat("a", 4000)
		items = append(items, it)
		if i%3 != 0 {
			updates[it.ID] = "earlier"
		}
	}
	for _, ups := range []map[string]string{updates, func() map[string]string {
		all := map[string]string{}
		for _, it := range items {
			all[it.ID] = "earlier"
		}
		return all
	}()} {
		b := alert.NewBatch("d", "slack", items...)
		b.Updates = ups
		m := slack.Build(b)
		if len(m.Blocks) > slack.MaxBlocks {
			t.Errorf("%d blocks, limit %d", len(m.Blocks), slack.MaxBlocks)
		}
		for _, s := range texts(m) {
			if utf8.RuneCountInString(s) > slack.MaxSectionText {
				t.Errorf("a text has %d characters", utf8.RuneCountInString(s))
			}
		}
		last := m.Blocks[len(m.Blocks)-1]
		if last.Type != "context" || !strings.Contains(last.Elements[0].Text, "more") {
			t.Errorf("no '…and N more' at the end: %+v", last)
		}
	}
}
