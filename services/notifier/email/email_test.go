package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/email"
)

// received is one message as the SMTP server got it.
type received struct {
	from   string
	to     []string
	data   []byte
	tls    bool
	authed string
}

// backend is a real in-process SMTP server's storage.
type backend struct {
	user, pass string
	rcptErr    error

	mu   sync.Mutex
	msgs []received
}

func (be *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{be: be, conn: c}, nil
}

func (be *backend) messages() []received {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]received(nil), be.msgs...)
}

type session struct {
	be   *backend
	conn *smtp.Conn
	cur  received
	user string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.be.user || password != s.be.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = received{from: from, authed: s.user}
	_, s.cur.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.rcptErr != nil {
		return s.be.rcptErr
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// selfSigned returns a server certificate for 127.0.0.1 and a client
// config trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// startSMTP starts the server in mode none, starttls or tls and returns
// the smtp config pointing at it and the client TLS config.
func startSMTP(t *testing.T, be *backend, mode string) (config.SMTP, *tls.Config) {
	t.Helper()
	srvTLS, cliTLS := selfSigned(t)
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = mode == "none"
	var ln net.Listener
	var err error
	switch mode {
	case "tls":
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	case "starttls":
		srv.TLSConfig = srvTLS
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	return config.SMTP{Host: "127.0.0.1", Port: port, From: "alerts@feedmon.example", TLS: mode, Username: be.user, Password: be.pass}, cliTLS
}

func item() *event.Item {
	return &event.Item{
		ID:        "mail-1",
		FeedTitle: "Example <News>",
		Title:     "EU & Japan agree on <rare earths>",
		Link:      "https://example.org/a?x=1&y=2",
		Summary:   "The EU and Japan <b>agreed</b>.\n\nSecond paragraph.",
		Published: "2026-11-26T08:00:00Z",
		Topics:    []string{"rare_earths", "trade"},
		Matches:   map[string][]string{"rare_earths": {"rare earths"}, "trade": {"economic coercion"}},
	}
}

type part struct {
	contentType string
	body        string
}

// parse reads a received message: its headers and its decoded parts.
func parse(t *testing.T, data []byte) (*mail.Message, []part) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	var parts []part
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, _ := io.ReadAll(r)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, part{ct, strings.ReplaceAll(string(b), "\r\n", "\n")})
	}
	return msg, parts
}

func TestSendMIME(t *testing.T) {
	t.Parallel()
	be := &backend{}
	cfg, _ := startSMTP(t, be, "none")
	n := email.New(cfg, config.Email{To: []string{"desk@example.org", "boss@example.org"}})
	b := alert.NewBatch("analysts", "email", item())
	if retry, err := n.Notify(context.Background(), b); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.from != "alerts@feedmon.example" || strings.Join(got.to, ",") != "desk@example.org,boss@example.org" {
		t.Errorf("envelope from %q to %v", got.from, got.to)
	}
	msg, parts := parse(t, got.data)
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{
		"Subject":                   subject,
		"From":                      msg.Header.Get("From"),
		"To":                        msg.Header.Get("To"),
		"Message-Id":                msg.Header.Get("Message-ID"),
		"X-Feedmon-Idempotency-Key": msg.Header.Get("X-Feedmon-Idempotency-Key"),
		"X-Feedmon-Subscriber":      msg.Header.Get("X-Feedmon-Subscriber"),
	}
	for k, want := range map[string]string{
		"Subject":                   "[rare_earths, trade] EU & Japan agree on <rare earths>",
		"From":                      "<alerts@feedmon.example>",
		"To":                        "<desk@example.org>, <boss@example.org>",
		"Message-Id":                "<" + b.Key + "@feedmon>",
		"X-Feedmon-Idempotency-Key": b.Key,
		"X-Feedmon-Subscriber":      "analysts",
	} {
		if headers[k] != want {
			t.Errorf("%s = %q, want %q", k, headers[k], want)
		}
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if len(parts) != 2 || parts[0].contentType != "text/plain" || parts[1].contentType != "text/html" {
		t.Fatalf("parts = %+v", parts)
	}
	text, html := parts[0].body, parts[1].body
	for _, want := range []string{
		"EU & Japan agree on <rare earths>\nhttps://example.org/a?x=1&y=2\n",
		"Source: Example <News>\n", "Topics: rare_earths, trade\n", "Matched: rare earths, economic coercion\n",
		"Published: 2026-11-26 08:00 UTC\n", "Second paragraph.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{
		`<a href="https://example.org/a?x=1&amp;y=2">EU &amp; Japan agree on &lt;rare earths&gt;</a>`,
		"Example &lt;News&gt;", "&lt;b&gt;agreed&lt;/b&gt;",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("html part lacks %q:\n%s", want, html)
		}
	}
}

func TestHeaderInjection(t *testing.T) {
	t.Parallel()
	be := &backend{}
	cfg, _ := startSMTP(t, be, "none")
	it := item()
	it.Title = "Breaking\r\nBcc: victim@evil.example\r\nX-Injected: yes\nContent-Type: text/evil"
	it.Topics = []string{"trade\r\nX-Topic-Injected: 1"}
	it.Link = "javascript:alert(1)"
	n := email.New(cfg, config.Email{To: []string{"desk@example.org"}})
	if _, err := n.Notify(context.Background(), alert.NewBatch("s", "email", it)); err != nil {
		t.Fatal(err)
	}
	got := be.messages()[0]
	if strings.Join(got.to, ",") != "desk@example.org" {
		t.Errorf("envelope recipients %v", got.to)
	}
	msg, parts := parse(t, got.data)
	for _, h := range []string{"Bcc", "X-Injected", "X-Topic-Injected"} {
		if v := msg.Header.Get(h); v != "" {
			t.Errorf("header %s injected: %q", h, v)
		}
	}
	headerBlock, _, _ := strings.Cut(string(got.data), "\r\n\r\n")
	for _, line := range strings.Split(headerBlock, "\r\n") {
		if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "X-Injected:") || strings.HasPrefix(line, "Content-Type: text/evil") {
			t.Errorf("injected header line %q", line)
		}
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "Bcc: victim@evil.example") {
		t.Errorf("subject %q", subject)
	}
	if strings.Contains(parts[1].body, "javascript:") {
		t.Errorf("html part links javascript:")
	}
}

func TestTLSModesAndAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"none", "starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			be := &backend{user: "feedmon", pass: "pa55"}
			cfg, cliTLS := startSMTP(t, be, mode)
			n := email.New(cfg, config.Email{To: []string{"desk@example.org"}}, email.WithTLSConfig(cliTLS))
			if retry, err := n.Notify(context.Background(), alert.NewBatch("s", "email", item())); err != nil {
				t.Fatalf("Notify = %v, %v", retry, err)
			}
			got := be.messages()
			if len(got) != 1 || got[0].authed != "feedmon" || got[0].tls != (mode != "none") {
				t.Errorf("messages = %+v", got)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tests := []struct {
		name      string
		be        *backend
		mode      string
		cfg       func(config.SMTP) config.SMTP
		wantRetry bool
	}{
		{name: "550 rejected recipient", be: &backend{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}, mode: "none"},
		{name: "451 try later", be: &backend{rcptErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}, mode: "none", wantRetry: true},
		{name: "bad password", be: &backend{user: "feedmon", pass: "right"}, mode: "starttls", cfg: func(c config.SMTP) config.SMTP { c.Password = "wrong"; return c }},
		{name: "connection refused", be: &backend{}, mode: "none", cfg: func(c config.SMTP) config.SMTP { c.Port = closedPort; return c }, wantRetry: true},
		{name: "starttls not offered", be: &backend{}, mode: "none", cfg: func(c config.SMTP) config.SMTP { c.TLS = "starttls"; return c }, wantRetry: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, cliTLS := startSMTP(t, tc.be, tc.mode)
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			retry, err := email.New(cfg, config.Email{To: []string{"desk@example.org"}}, email.WithTLSConfig(cliTLS)).
				Notify(ctx, alert.NewBatch("s", "email", item()))
			if err == nil || retry != tc.wantRetry {
				t.Errorf("Notify = %v, %v; want retry %v", retry, err, tc.wantRetry)
			}
			if err != nil && strings.Contains(err.Error(), "wrong") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestDigestGroupsStories: a digest shows each story's first report in
// full and its later reports as "Also reported by" lines under it; later
// reports of a story mailed earlier stand on their own.
func TestDigestGroupsStories(t *testing.T) {
	t.Parallel()
	be := &backend{}
	cfg, _ := startSMTP(t, be, "none")
	first := item()
	later := &event.Item{ID: "mail-2", FeedTitle: "Other <Wire>", Title: "Japan, EU seal <minerals> pact", Link: "javascript:alert(1)", Topics: []string{"trade"}}
	orphan := &event.Item{ID: "mail-3", FeedURL: "https://www.wire.example/rss", Title: "Earlier story, new outlet", Link: "https://wire.example/3", Topics: []string{"trade"}}
	b := alert.NewBatch("analysts", "email", later, first, orphan)
	b.Updates = map[string]string{"mail-2": "mail-1", "mail-3": "mail-0"}
	if _, err := email.New(cfg, config.Email{To: []string{"desk@example.org"}}).Notify(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	msg, parts := parse(t, be.messages()[0].data)
	text, html := parts[0].body, parts[1].body
	wantText := []string{
		"EU & Japan agree on <rare earths>\nhttps://example.org/a?x=1&y=2\n",
		"Second paragraph.\n\nAlso reported by: Other <Wire> — Japan, EU seal <minerals> pact <javascript:alert(1)>\n",
		"\n----\nMore reports of a story alerted earlier:\nAlso reported by: wire.example — Earlier story, new outlet <https://wire.example/3>\n",
	}
	for _, want := range wantText {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "\n----\n"); n != 1 {
		t.Errorf("%d separators, want 1 (two stories):\n%s", n, text)
	}
	for _, want := range []string{
		"<li>Also reported by: Other &lt;Wire&gt; — <a href=\"#ZgotmplZ\">Japan, EU seal &lt;minerals&gt; pact</a></li>",
		"<li>Also reported by: wire.example — <a href=\"https://wire.example/3\">Earlier story, new outlet</a></li>",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("html part lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "javascript:") {
		t.Error("html part links javascript:")
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if want := "2 alerts: EU & Japan agree on <rare earths>"; subject != want {
		t.Errorf("subject %q, want %q", subject, want)
	}
}
