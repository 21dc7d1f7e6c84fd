package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/slack"
)

// mailbox is a real in-process SMTP server that keeps what it receives.
type mailbox struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }

func (mb *mailbox) count() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.msgs)
}

type mailSession struct{ mb *mailbox }

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Reset()                               {}
func (s *mailSession) Logout() error                        { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, b)
	s.mb.mu.Unlock()
	return nil
}

func startMailbox(t *testing.T) (*mailbox, config.SMTP) {
	t.Helper()
	mb := &mailbox{}
	srv := smtp.NewServer(mb)
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return mb, config.SMTP{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "alerts@feedmon.example", TLS: "none"}
}

func TestAllReceivers(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	hook := newSink(t, nil)
	slk := newSink(t, nil)
	mb, smtpCfg := startMailbox(t)
	cfg := testConfig(config.Subscriber{
		Name:    "analysts",
		Topics:  []string{"rare_earths", "defense", "trade"},
		Webhook: &config.Webhook{URL: hook.srv.URL},
		Slack:   &config.Slack{WebhookURL: slk.srv.URL},
		Email:   &config.Email{To: []string{"desk@example.org"}},
		Stdout:  &config.Stdout{},
		NATS:    &config.NATSReceiver{},
	})
	cfg.SMTP = smtpCfg
	r := startService(t, b, cfg)
	it := testItem("all-1", "rare_earths", "defense", "trade")
	publishItem(t, b, it)
	waitHandled(t, b)

	if hook.count() != 1 || slk.count() != 1 || mb.count() != 1 || strings.Count(r.out.String(), "\n") != 1 {
		t.Errorf("webhook %d, slack %d, email %d, stdout %q; want one each", hook.count(), slk.count(), mb.count(), r.out.String())
	}
	var sm slack.Message
	if err := json.Unmarshal(slk.requests()[0].body, &sm); err != nil || len(sm.Blocks) == 0 {
		t.Errorf("slack payload: %v %s", err, slk.requests()[0].body)
	}
	ctx := context.Background()
	st, err := b.Stream(ctx, event.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, event.AlertsSubject("analysts"))
	if err != nil {
		t.Fatal(err)
	}
	var body alert.Body
	if err := json.Unmarshal(msg.Data, &body); err != nil || body.Subscriber != "analysts" || body.Items[0].ID != it.ID {
		t.Errorf("nats alert: %v %s", err, msg.Data)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("alerts stream holds %d messages", info.State.Msgs)
	}
	for _, rc := range []string{KindWebhook, KindSlack, KindEmail, KindStdout, KindNATS} {
		if got := r.count(rc, telemetry.NotifySent); got != 1 {
			t.Errorf("%s sent = %v", rc, got)
		}
	}
	if !bytes.Contains(mb.msgs[0], []byte("multipart/alternative")) {
		t.Errorf("mail is not multipart/alternative")
	}
}

// TestFlakyWebhook: a webhook that fails 30% of requests with 500 and 20%
// with 429 still gets every item exactly once.
func TestFlakyWebhook(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	sk := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) int {
		mu.Lock()
		p := rng.Float64()
		mu.Unlock()
		switch {
		case p < 0.3:
			return http.StatusInternalServerError
		case p < 0.5:
			w.Header().Set("Retry-After", "0")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade", "defense"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	cfg.Notify.MaxAttempts = 40 // 0.5^40: no item may run out of attempts
	r := startService(t, b, cfg, WithInlineWait(20*time.Millisecond))
	const n = 60
	for i := range n {
		topics := []string{"trade"}
		if i%2 == 0 {
			topics = append(topics, "defense")
		}
		publishItem(t, b, testItem(fmt.Sprint("flaky-", i), topics...))
	}
	waitHandled(t, b)
	got := map[string]int{}
	for _, rq := range sk.requests() {
		if rq.status/100 != 2 {
			continue
		}
		var body alert.Body
		if err := json.Unmarshal(rq.body, &body); err != nil {
			t.Fatal(err)
		}
		got[body.Items[0].ID]++
	}
	if len(got) != n {
		t.Errorf("%d distinct items accepted, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("%s accepted %d times", id, c)
		}
	}
	if r.count(KindWebhook, telemetry.NotifySent) != n {
		t.Errorf("sent = %v, want %d", r.count(KindWebhook, telemetry.NotifySent), n)
	}
	retried := r.count(KindWebhook, telemetry.NotifyRetried)
	if retried == 0 || int(retried) != sk.count()-n {
		t.Errorf("retried = %v, failed requests = %d", retried, sk.count()-n)
	}
	if f := r.count(KindWebhook, telemetry.NotifyFailed); f != 0 {
		t.Errorf("failed = %v", f)
	}
}
