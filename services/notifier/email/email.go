// Package email mails alerts through the configured SMTP server: one
// multipart/alternative message (plain text and HTML) per batch. Item text
// only ever reaches a header after CR, LF and other control characters are
// flattened, and the library encodes it, so it can never add a header.
// A digest lists later reports of a story under its first report ("Also
// reported by"); the notifier sends no mail of its own for such a report.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/textproto"
	"strings"
	texttemplate "text/template"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// maxSubject keeps the subject readable (and its encoded header short).
const maxSubject = 200

// Header names feedmon adds so a receiving system can drop a re-send.
const (
	HeaderIdempotencyKey = "X-Feedmon-Idempotency-Key"
	HeaderSubscriber     = "X-Feedmon-Subscriber"
)

// Notifier mails alerts to a fixed list of recipients.
type Notifier struct {
	smtp config.SMTP
	to   []string
	tls  *tls.Config
	now  func() time.Time
	text *texttemplate.Template
	html *htmltemplate.Template
}

// Option changes a Notifier's defaults.
type Option func(*Notifier)

// WithTLSConfig sets the TLS configuration for starttls and tls (for a
// private CA, or tests); the default verifies the server against the system
// roots.
func WithTLSConfig(c *tls.Config) Option { return func(n *Notifier) { n.tls = c } }

// WithClock sets the clock for the Date header.
func WithClock(now func() time.Time) Option { return func(n *Notifier) { n.now = now } }

// New returns a notifier sending through server to the recipients of to.
func New(server config.SMTP, to config.Email, opts ...Option) *Notifier {
	n := &Notifier{
		smtp: server,
		to:   append([]string(nil), to.To...),
		now:  time.Now,
		text: texttemplate.Must(texttemplate.New("text").Parse(textTemplate)),
		html: htmltemplate.Must(htmltemplate.New("html").Parse(htmlTemplate)),
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// Notify mails the batch. An SMTP 4xx and any failure to talk to the
// server (refused, timeout, TLS) are retryable; a 5xx answer is permanent.
func (n *Notifier) Notify(ctx context.Context, b *alert.Batch) (retry bool, err error) {
	msg, err := n.Message(b)
	if err != nil {
		return false, err
	}
	c, err := n.client()
	if err != nil {
		return false, err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(err), fmt.Errorf("email: send via %s:%d: %w", n.smtp.Host, n.smtp.Port, err)
	}
	return false, nil
}

func (n *Notifier) client() (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(n.smtp.Port)}
	switch n.smtp.TLS {
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case "tls":
		opts = append(opts, mail.WithSSL())
	default: // starttls: refuse to send in the clear
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if n.tls != nil {
		opts = append(opts, mail.WithTLSConfig(n.tls))
	}
	if n.smtp.Username != "" {
		auth := mail.SMTPAuthAutoDiscover
		if n.smtp.TLS == "none" {
			// The operator chose an unencrypted link (a local relay);
			// without this go-mail would refuse PLAIN/LOGIN on it.
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(n.smtp.Username), mail.WithPassword(n.smtp.Password))
	}
	c, err := mail.NewClient(n.smtp.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("email: client: %w", err)
	}
	return c, nil
}

// classify says whether a send error may pass: SMTP 5xx is permanent,
// 4xx and everything that is not an SMTP answer (network, TLS) transient.
func classify(err error) bool {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code/100 != 5
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code >= 500 && code < 600 {
			return false
		}
	}
	return true
}

// Message builds the mail for a batch. Its Message-ID derives from the
// idempotency key, so a re-send is recognisable as the same message.
func (n *Notifier) Message(b *alert.Batch) (*mail.Msg, error) {
	m := mail.NewMsg()
	if err := m.From(n.smtp.From); err != nil {
		return nil, fmt.Errorf("email: from %q: %w", n.smtp.From, err)
	}
	if err := m.To(n.to...); err != nil {
		return nil, fmt.Errorf("email: to: %w", err)
	}
	m.Subject(Subject(b))
	m.SetMessageIDWithValue(b.Key + "@feedmon")
	m.SetDateWithValue(n.now())
	m.SetGenHeader(HeaderIdempotencyKey, b.Key)
	m.SetGenHeader(HeaderSubscriber, alert.Sanitize(b.Subscriber))
	m.SetBulk()
	data := view(b)
	if err := m.SetBodyTextTemplate(n.text, data); err != nil {
		return nil, fmt.Errorf("email: text body: %w", err)
	}
	if err := m.AddAlternativeHTMLTemplate(n.html, data); err != nil {
		return nil, fmt.Errorf("email: html body: %w", err)
	}
	return m, nil
}

// Subject is the one-line subject of a batch, safe for a header. A digest
// counts stories: later reports of a story are listed under its first.
func Subject(b *alert.Batch) string {
	var s string
	stories := b.Stories()
	switch len(stories) {
	case 0:
		s = "feedmon alert"
	case 1:
		it, prefix := lead(stories[0])
		s = prefix + "[" + strings.Join(it.Topics, ", ") + "] " + it.Title
	default:
		it, _ := lead(stories[0])
		s = fmt.Sprintf("%d alerts: %s", len(stories), it.Title)
	}
	s = alert.Sanitize(s)
	if r := []rune(s); len(r) > maxSubject {
		s = string(r[:maxSubject-1]) + "…"
	}
	return s
}

// lead is the item that stands for a story in a subject.
func lead(st alert.Story) (*event.Item, string) {
	if st.Head != nil {
		return st.Head, ""
	}
	return st.Also[0], "Also reported: "
}

type itemView struct {
	Title, Link, Source, Topics, Matched, Published, Summary string
	// Also lists the later reports of the item's story.
	Also []alsoView
}

// alsoView is one "Also reported by: <source> — <linked title>" line.
type alsoView struct {
	Source, Title, Link string
}

// storyView is an item with its story's later reports, or (Item nil) the
// later reports of a story alerted in an earlier mail.
type storyView struct {
	Item *itemView
	Also []alsoView
}

type batchView struct {
	Subscriber string
	Stories    []storyView
}

func view(b *alert.Batch) batchView {
	v := batchView{Subscriber: b.Subscriber}
	for _, st := range b.Stories() {
		var sv storyView
		if st.Head != nil {
			iv := itemOf(st.Head)
			sv.Item = &iv
		}
		for _, it := range st.Also {
			title := alert.Sanitize(it.Title)
			if title == "" {
				title = "(untitled)"
			}
			sv.Also = append(sv.Also, alsoView{Source: alert.Source(it), Title: title, Link: alert.Sanitize(it.Link)})
		}
		v.Stories = append(v.Stories, sv)
	}
	return v
}

func itemOf(it *event.Item) itemView {
	var terms []string
	seen := map[string]bool{}
	for _, t := range it.Topics {
		for _, term := range it.Matches[t] {
			if !seen[term] {
				seen[term] = true
				terms = append(terms, alert.Sanitize(term))
			}
		}
	}
	pub := it.Published
	if t, err := time.Parse(time.RFC3339, pub); err == nil {
		pub = t.UTC().Format("2006-01-02 15:04 UTC")
	}
	title := alert.Sanitize(it.Title)
	if title == "" {
		title = "(untitled)"
	}
	return itemView{
		Title:     title,
		Link:      alert.Sanitize(it.Link),
		Source:    alert.Sanitize(it.FeedTitle),
		Topics:    alert.Sanitize(strings.Join(it.Topics, ", ")),
		Matched:   strings.Join(terms, ", "),
		Published: alert.Sanitize(pub),
		Summary:   it.Summary,
	}
}

// The templates show each story's first report in full and its later
// reports as "Also reported by" lines under it; later reports of a story
// mailed earlier stand under a line saying so.
const textTemplate = `{{range $i, $st := .Stories}}{{if $i}}
----
{{end}}{{with $it := $st.Item}}{{$it.Title}}
{{if $it.Link}}{{$it.Link}}
{{end}}{{if $it.Source}}Source: {{$it.Source}}
{{end}}{{if $it.Topics}}Topics: {{$it.Topics}}
{{end}}{{if $it.Matched}}Matched: {{$it.Matched}}
{{end}}{{if $it.Published}}Published: {{$it.Published}}
{{end}}{{if $it.Summary}}
{{$it.Summary}}
{{end}}{{else}}More reports of a story alerted earlier:
{{end}}{{if $st.Also}}{{if $st.Item}}
{{end}}{{range $st.Also}}Also reported by: {{.Source}} — {{.Title}}{{if .Link}} <{{.Link}}>{{end}}
{{end}}{{end}}{{end}}
-- 
feedmon alerts for {{.Subscriber}}
`

const htmlTemplate = `<!DOCTYPE html>
<html><body style="font-family: sans-serif">
{{range $i, $st := .Stories}}{{if $i}}<hr>{{end}}
{{with $it := $st.Item}}<h3>{{if $it.Link}}<a href="{{$it.Link}}">{{$it.Title}}</a>{{else}}{{$it.Title}}{{end}}</h3>
<p style="color: #555; font-size: 90%">
{{if $it.Source}}<b>Source:</b> {{$it.Source}}<br>{{end}}
{{if $it.Topics}}<b>Topics:</b> {{$it.Topics}}<br>{{end}}
{{if $it.Matched}}<b>Matched:</b> {{$it.Matched}}<br>{{end}}
{{if $it.Published}}<b>Published:</b> {{$it.Published}}{{end}}
</p>
{{if $it.Summary}}<p>{{$it.Summary}}</p>{{end}}
{{else}}<p style="color: #555">More reports of a story alerted earlier:</p>
{{end}}{{if $st.Also}}<ul style="color: #555; font-size: 90%">
{{range $st.Also}}<li>Also reported by: {{.Source}} — {{if .Link}}<a href="{{.Link}}">{{.Title}}</a>{{else}}{{.Title}}{{end}}</li>
{{end}}</ul>
{{end}}{{end}}
<p style="color: #888; font-size: 80%">feedmon alerts for {{.Subscriber}}</p>
</body></html>
`
