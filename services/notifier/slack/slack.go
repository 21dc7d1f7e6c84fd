// Package slack posts alerts to a Slack incoming webhook as Block Kit
// messages. Item text is escaped so that it can neither format links nor
// mention anyone: Slack parses mentions only inside <...>, and every '<'
// that is not feedmon's own link markup is escaped.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/httpx"
	"github.com/feedmon/feedmon/internal/version"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// Slack's limits (characters), with some room left.
const (
	// MaxSectionText is a section block's text limit (Slack: 3000).
	MaxSectionText = 3000
	// MaxContextText is the limit kept for one context element (Slack: 3000).
	MaxContextText = 500
	// MaxFallbackText bounds the notification text (Slack truncates at 40000).
	MaxFallbackText = 3000
	// MaxBlocks is the most blocks in one message (Slack: 50).
	MaxBlocks = 50
	// maxSummary keeps one item's summary short in the message.
	maxSummary = 600
	// blocksPerItem: section, context and a divider.
	blocksPerItem = 3
	// MaxItems is how many items one message shows; a digest sends more
	// as several messages.
	MaxItems = MaxBlocks / blocksPerItem
)

// Notifier posts to one incoming webhook.
type Notifier struct {
	url    string
	client *http.Client
	now    func() time.Time
}

// New returns a notifier for cfg; nil client means one that does not follow
// redirects.
func New(cfg config.Slack, client *http.Client) *Notifier {
	if client == nil {
		client = alert.NewHTTPClient(0)
	}
	return &Notifier{url: cfg.WebhookURL, client: client, now: time.Now}
}

// Message is an incoming-webhook payload.
type Message struct {
	Text        string  `json:"text"`
	Blocks      []Block `json:"blocks"`
	UnfurlLinks bool    `json:"unfurl_links"`
	UnfurlMedia bool    `json:"unfurl_media"`
}

// Block is a Block Kit block (section, context or divider).
type Block struct {
	Type     string  `json:"type"`
	Text     *Text   `json:"text,omitempty"`
	Elements []*Text `json:"elements,omitempty"`
}

// Text is a Block Kit text object.
type Text struct {
	Type string `json:"type"` // mrkdwn | plain_text
	Text string `json:"text"`
}

// Notify posts the batch as one message.
func (n *Notifier) Notify(ctx context.Context, b *alert.Batch) (retry bool, err error) {
	body, err := json.Marshal(Build(b))
	if err != nil {
		return false, fmt.Errorf("slack: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("slack: request: %w", httpx.ScrubURLError(err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", version.UserAgent())
	resp, err := n.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("slack: post %s: %w", config.Redact(n.url), httpx.ScrubURLError(err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	return alert.CheckResponse("slack", resp, n.now())
}

// Build renders the batch as a message: per item a section with the
// linked title and summary, a context line with source, topics, matched
// terms and publication time, and a divider between items.
//
// Later reports of a story already alerted (updates) are not alerts of
// their own: a batch of updates only is one compact line per update,
// "↳ Also reported by <source>: <linked title>" (see AlsoLine), and in a
// digest such a line follows its story's first report. Slack would show
// updates best as thread replies under the first alert, but an incoming
// webhook cannot thread: it answers "ok", not the ts of the message it
// posted, so there is nothing to reply to. Threading needs a bot token and
// chat.postMessage, which feedmon does not use.
func Build(b *alert.Batch) *Message {
	if len(b.Items) > 0 && b.Event() == alert.EventUpdate {
		return buildUpdates(b)
	}
	msg := &Message{}
	var titles []string
	shown := 0
	more := func() {
		msg.Blocks = append(msg.Blocks, Block{Type: "context", Elements: []*Text{
			mrkdwn(fmt.Sprintf("…and %d more", len(b.Items)-shown)),
		}})
	}
stories:
	for _, st := range b.Stories() {
		if st.Head != nil {
			if shown == MaxItems {
				more()
				break
			}
			if shown > 0 {
				msg.Blocks = append(msg.Blocks, Block{Type: "divider"})
			}
			shown++
			title := alert.Sanitize(st.Head.Title)
			if title == "" {
				title = "(untitled)"
			}
			titles = append(titles, title)
			msg.Blocks = append(msg.Blocks, itemBlocks(st.Head, title)...)
		} else if shown > 0 && shown < MaxItems {
			msg.Blocks = append(msg.Blocks, Block{Type: "divider"})
		}
		for _, it := range st.Also {
			if shown == MaxItems {
				more()
				break stories
			}
			shown++
			msg.Blocks = append(msg.Blocks, Block{Type: "context", Elements: []*Text{mrkdwn(AlsoLine(it))}})
		}
	}
	fallback := strings.Join(titles, " · ")
	if len(b.Items) > 1 {
		fallback = fmt.Sprintf("%d alerts: %s", len(b.Items), fallback)
	}
	msg.Text = Escape(fallback, MaxFallbackText)
	return msg
}

// itemBlocks are the section and context blocks of one alerted item.
func itemBlocks(it *event.Item, title string) []Block {
	head := "*" + Escape(title, 300) + "*"
	if link := safeLink(it.Link); link != "" && len(link) <= maxLinkInLine {
		head = "*<" + link + "|" + Escape(title, 300) + ">*"
	}
	text := head
	if s := alert.Sanitize(it.Summary); s != "" {
		text += "\n" + Escape(s, min(maxSummary, MaxSectionText-utf8.RuneCountInString(head)-1))
	}
	blocks := []Block{{Type: "section", Text: mrkdwn(text)}}

	var ctx []*Text
	if src := alert.Sanitize(it.FeedTitle); src != "" {
		ctx = append(ctx, mrkdwn("*Source:* "+Escape(src, MaxContextText-12)))
	}
	if len(it.Topics) > 0 {
		ctx = append(ctx, mrkdwn("*Topics:* "+Escape(alert.Sanitize(strings.Join(it.Topics, ", ")), MaxContextText-12)))
	}
	if terms := matched(it.Topics, it.Matches); terms != "" {
		ctx = append(ctx, mrkdwn("*Matched:* "+Escape(terms, MaxContextText-12)))
	}
	if p := published(it.Published); p != "" {
		ctx = append(ctx, mrkdwn("*Published:* "+Escape(p, 100)))
	}
	if len(ctx) > 0 {
		blocks = append(blocks, Block{Type: "context", Elements: ctx})
	}
	return blocks
}

// alsoPrefix starts the line of an update.
const alsoPrefix = "↳ Also reported by "

// maxLinkInLine: a longer link is left out (the title stays, unlinked)
// rather than push a text past Slack's limits, which would get the whole
// message refused.
const maxLinkInLine = 1500

// AlsoLine is the mrkdwn line of an update: "↳ Also reported by <source>:
// <linked title>", escaped like every other item text (no mention, no
// link markup of the item's own can form).
func AlsoLine(it *event.Item) string {
	title := alert.Sanitize(it.Title)
	if title == "" {
		title = "(untitled)"
	}
	linked := Escape(title, 300)
	if link := safeLink(it.Link); link != "" && len(link) <= maxLinkInLine {
		linked = "<" + link + "|" + linked + ">"
	}
	return alsoPrefix + Escape(alert.Source(it), 100) + ": " + linked
}

// buildUpdates renders a batch of updates only: one compact section line
// per update, no summary, no context.
func buildUpdates(b *alert.Batch) *Message {
	msg := &Message{}
	var plain []string
	for i, it := range b.Items {
		if i == MaxItems {
			msg.Blocks = append(msg.Blocks, Block{Type: "context", Elements: []*Text{
				mrkdwn(fmt.Sprintf("…and %d more", len(b.Items)-MaxItems)),
			}})
			break
		}
		msg.Blocks = append(msg.Blocks, Block{Type: "section", Text: mrkdwn(AlsoLine(it))})
		title := alert.Sanitize(it.Title)
		if title == "" {
			title = "(untitled)"
		}
		plain = append(plain, alsoPrefix+alert.Source(it)+": "+title)
	}
	fallback := strings.Join(plain, " · ")
	if len(b.Items) > 1 {
		fallback = fmt.Sprintf("%d updates: %s", len(b.Items), fallback)
	}
	msg.Text = Escape(fallback, MaxFallbackText)
	return msg
}

func mrkdwn(s string) *Text { return &Text{Type: "mrkdwn", Text: s} }

// matched lists the matched terms, topic by topic, without repeats.
func matched(topics []string, m map[string][]string) string {
	seen := map[string]bool{}
	var out []string
	add := func(terms []string) {
		for _, t := range terms {
			t = alert.Sanitize(t)
			if t != "" && !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	for _, t := range topics {
		add(m[t])
	}
	return strings.Join(out, ", ")
}

func published(p string) string {
	if p == "" {
		return ""
	}
	if t, err := time.Parse(time.RFC3339, p); err == nil {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return alert.Sanitize(p)
}

// safeLink returns the link for use inside <...|...>, or "" when it is not
// a plain http(s) URL. Characters that would end or split the link markup
// are percent-encoded, and & < > escaped as Slack requires.
func safeLink(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	r := strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E", " ", "%20", "&", "&amp;", "\n", "", "\r", "")
	return r.Replace(u.String())
}

// specialMention matches the words Slack would treat as broadcast mentions
// if a client ever linkified them outside <...>.
var specialMention = regexp.MustCompile(`(?i)@(channel|here|everyone)\b`)

// Escape escapes s for mrkdwn (& < > become entities, so no <!channel>,
// <@U…> or <url|text> can form) and truncates the result to at most n
// characters, never inside an entity, marking a cut with "…".
func Escape(s string, n int) string {
	s = specialMention.ReplaceAllString(s, "@\u200b$1")
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	if utf8.RuneCountInString(esc) <= n {
		return esc
	}
	if n < 1 {
		return ""
	}
	var b strings.Builder
	count := 0
	for _, r := range s {
		piece := string(r)
		switch r {
		case '&':
			piece = "&amp;"
		case '<':
			piece = "&lt;"
		case '>':
			piece = "&gt;"
		}
		pl := utf8.RuneCountInString(piece)
		if count+pl > n-1 { // keep one for the ellipsis
			break
		}
		b.WriteString(piece)
		count += pl
	}
	return b.String() + "…"
}
