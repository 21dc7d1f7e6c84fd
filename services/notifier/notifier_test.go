package notifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

func TestWebhookDeliveryBodyAndHeaders(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	const secret = "s3cret"
	cfg := testConfig(config.Subscriber{
		Name:    "analysts",
		Topics:  []string{"rare_earths", "trade"},
		Webhook: &config.Webhook{URL: sk.srv.URL + "/hook", Secret: secret},
		Stdout:  &config.Stdout{},
	})
	r := startService(t, b, cfg)
	it := testItem("item-1", "rare_earths", "defense", "trade")
	it.Title = "EU & Japan <agree>\non rare earths"
	it.Matches = map[string][]string{"rare_earths": {"rare earths"}}
	it.Scores = map[string]float64{"rare_earths": 2.5}
	it.StoryID = "story-1"
	publishItem(t, b, it)

	bustest.Eventually(t, waitLong, func() bool { return sk.count() >= 1 }, "no webhook request")
	waitHandled(t, b)
	reqs := sk.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.method != http.MethodPost {
		t.Errorf("method = %s, want POST", req.method)
	}
	if got := req.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	wantKey := alert.Key("analysts", KindWebhook, it)
	if got := req.header.Get("Idempotency-Key"); got != wantKey || got == "" {
		t.Errorf("Idempotency-Key = %q, want %q", got, wantKey)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(req.body)
	if got, want := req.header.Get("X-Feedmon-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("signature = %q, want %q", got, want)
	}

	var body struct {
		Subscriber string            `json:"subscriber"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, req.body)
	}
	if body.Subscriber != "analysts" {
		t.Errorf("subscriber = %q", body.Subscriber)
	}
	if len(body.Items) != 1 {
		t.Fatalf("items = %d, want 1", len(body.Items))
	}
	got, err := event.Unmarshal(body.Items[0])
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ field, got, want string }{
		{"id", got.ID, it.ID},
		{"feed_url", got.FeedURL, it.FeedURL},
		{"feed_title", got.FeedTitle, it.FeedTitle},
		{"title", got.Title, it.Title},
		{"link", got.Link, it.Link},
		{"summary", got.Summary, it.Summary},
		{"published", got.Published, it.Published},
		{"fetched_at", got.FetchedAt, it.FetchedAt},
		{"story_id", got.StoryID, it.StoryID},
		{"topics", strings.Join(got.Topics, ","), "rare_earths,defense,trade"},
		{"matches", fmt.Sprint(got.Matches), fmt.Sprint(it.Matches)},
		{"scores", fmt.Sprint(got.Scores), fmt.Sprint(it.Scores)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("item %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	var raw map[string]any
	_ = json.Unmarshal(body.Items[0], &raw)
	if _, ok := raw["topics"].([]any); !ok {
		t.Errorf("topics is not an array in %s", body.Items[0])
	}

	wantLine := "[rare_earths,defense,trade] EU & Japan <agree> on rare earths https://news.example.org/articles/item-1\n"
	if got := r.out.String(); got != wantLine {
		t.Errorf("stdout = %q, want %q", got, wantLine)
	}
	for _, rc := range []string{KindWebhook, KindStdout} {
		if got := r.count(rc, telemetry.NotifySent); got != 1 {
			t.Errorf("%s sent = %v, want 1", rc, got)
		}
	}
	if n := histogramCount(r.m.PipelineLatency); n != 2 {
		t.Errorf("pipeline latency observations = %d, want 2", n)
	}
	for _, name := range []string{"feedmon_notification_duration_seconds", "feedmon_notifications_dead_lettered_total"} {
		if !gathered(r.reg, name) {
			t.Errorf("%s not exported", name)
		}
	}
}

func TestRetryThenDeliverOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fails   int
		status  int
		header  func() map[string]string // at the time of the answer
		minWait time.Duration            // at least this between the last failure and the success
	}{
		{name: "5xx then 2xx", fails: 2, status: http.StatusInternalServerError},
		{name: "503", fails: 1, status: http.StatusServiceUnavailable},
		{name: "429 with Retry-After seconds", fails: 1, status: http.StatusTooManyRequests, header: func() map[string]string { return map[string]string{"Retry-After": "1"} }, minWait: 900 * time.Millisecond},
		{name: "429 with Retry-After date", fails: 1, status: http.StatusTooManyRequests, header: func() map[string]string {
			return map[string]string{"Retry-After": time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)}
		}, minWait: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := newSink(t, func(n int, _ *http.Request, w http.ResponseWriter) int {
				if n < tc.fails {
					if tc.header != nil {
						for k, v := range tc.header() {
							w.Header().Set(k, v)
						}
					}
					return tc.status
				}
				return http.StatusOK
			})
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL, Secret: "k"}})
			r := startService(t, b, cfg)
			publishItem(t, b, testItem("a", "trade"))
			waitHandled(t, b)
			reqs := sk.requests()
			if len(reqs) != tc.fails+1 || sk.accepted() != 1 {
				t.Fatalf("requests = %d (accepted %d), want %d (1)", len(reqs), sk.accepted(), tc.fails+1)
			}
			for i, rq := range reqs[1:] {
				if rq.header.Get("Idempotency-Key") != reqs[0].header.Get("Idempotency-Key") {
					t.Errorf("attempt %d: Idempotency-Key changed", i+2)
				}
				if string(rq.body) != string(reqs[0].body) {
					t.Errorf("attempt %d: body changed", i+2)
				}
				if rq.header.Get("X-Feedmon-Signature") != reqs[0].header.Get("X-Feedmon-Signature") {
					t.Errorf("attempt %d: signature changed", i+2)
				}
			}
			if gap := reqs[len(reqs)-1].at.Sub(reqs[len(reqs)-2].at); gap < tc.minWait {
				t.Errorf("retried after %s, want at least %s (Retry-After)", gap, tc.minWait)
			}
			if got := r.count(KindWebhook, telemetry.NotifyRetried); got != float64(tc.fails) {
				t.Errorf("retried = %v, want %d", got, tc.fails)
			}
			if got := r.count(KindWebhook, telemetry.NotifySent); got != 1 {
				t.Errorf("sent = %v, want 1", got)
			}
		})
	}
}

func TestPermanentFailureIsDeadLettered(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int { return status })
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"},
				Webhook: &config.Webhook{URL: sk.srv.URL + "/hook?token=abcdef123"}, Stdout: &config.Stdout{}})
			r := startService(t, b, cfg)
			it := testItem("bad", "trade")
			publishItem(t, b, it)
			waitHandled(t, b)
			if sk.count() != 1 {
				t.Errorf("requests = %d, want 1 (no retry of a %d)", sk.count(), status)
			}
			var dls []jetstream.Msg
			bustest.Eventually(t, waitLong, func() bool { dls = deadLetters(t, b); return len(dls) == 1 }, "no dead letter")
			if got, want := dls[0].Subject(), event.DeadSubject("desk"); got != want {
				t.Errorf("dead subject = %q, want %q", got, want)
			}
			var dl DeadLetter
			if err := json.Unmarshal(dls[0].Data(), &dl); err != nil {
				t.Fatal(err)
			}
			if dl.Subscriber != "desk" || dl.Receiver != KindWebhook || dl.Attempts != 1 || len(dl.Items) != 1 || dl.Items[0].ID != it.ID {
				t.Errorf("dead letter = %+v", dl)
			}
			if !strings.Contains(dl.Reason, fmt.Sprint(status)) {
				t.Errorf("reason %q does not name the status", dl.Reason)
			}
			if strings.Contains(string(dls[0].Data()), "abcdef123") {
				t.Errorf("dead letter leaks the URL token: %s", dls[0].Data())
			}
			if _, err := time.Parse(time.RFC3339Nano, dl.Time); err != nil {
				t.Errorf("time %q: %v", dl.Time, err)
			}
			if dl.IdempotencyKey != alert.Key("desk", KindWebhook, it) {
				t.Errorf("idempotency key = %q", dl.IdempotencyKey)
			}
			if got := r.count(KindWebhook, telemetry.NotifyFailed); got != 1 {
				t.Errorf("failed = %v, want 1", got)
			}
			if got := counterValue(r.svc.dead.WithLabelValues(KindWebhook)); got != 1 {
				t.Errorf("dead-lettered = %v, want 1", got)
			}
			// The other receiver of the subscriber is not affected.
			if got := r.count(KindStdout, telemetry.NotifySent); got != 1 {
				t.Errorf("stdout sent = %v, want 1", got)
			}
		})
	}
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int { return http.StatusBadGateway })
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	cfg.Notify.MaxAttempts = 3
	r := startService(t, b, cfg)
	publishItem(t, b, testItem("x", "trade"))
	waitHandled(t, b)
	if sk.count() != 3 {
		t.Errorf("requests = %d, want 3", sk.count())
	}
	var dls []jetstream.Msg
	bustest.Eventually(t, waitLong, func() bool { dls = deadLetters(t, b); return len(dls) == 1 }, "no dead letter")
	var dl DeadLetter
	_ = json.Unmarshal(dls[0].Data(), &dl)
	if dl.Attempts != 3 || !strings.Contains(dl.Reason, "502") {
		t.Errorf("dead letter = %+v", dl)
	}
	if r.count(KindWebhook, telemetry.NotifyRetried) != 3 || r.count(KindWebhook, telemetry.NotifyFailed) != 1 {
		t.Errorf("retried = %v failed = %v, want 3 and 1", r.count(KindWebhook, telemetry.NotifyRetried), r.count(KindWebhook, telemetry.NotifyFailed))
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sinks := map[string]*sink{}
	var subs []config.Subscriber
	for _, s := range []struct {
		name   string
		topics []string
	}{
		{"all", []string{"rare_earths", "defense", "trade"}},
		{"trade_only", []string{"trade"}},
		{"defense_first", []string{"defense", "rare_earths"}},
		{"none", []string{"energy"}},
	} {
		sk := newSink(t, nil)
		sinks[s.name] = sk
		subs = append(subs, config.Subscriber{Name: s.name, Topics: s.topics, Webhook: &config.Webhook{URL: sk.srv.URL}})
	}
	startService(t, b, testConfig(subs...))
	publishItem(t, b, testItem("three", "rare_earths", "defense", "trade"))
	publishItem(t, b, testItem("two", "defense", "trade"))
	publishItem(t, b, testItem("one", "rare_earths"))
	waitHandled(t, b)
	want := map[string][]string{
		"all":           {"one", "three", "two"},
		"trade_only":    {"three", "two"},
		"defense_first": {"one", "three", "two"},
		"none":          nil,
	}
	for name, ids := range want {
		var got []string
		for _, rq := range sinks[name].requests() {
			var body alert.Body
			if err := json.Unmarshal(rq.body, &body); err != nil {
				t.Fatal(err)
			}
			got = append(got, body.Items[0].ID)
		}
		slicesSort(got)
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("%s got %v, want %v", name, got, ids)
		}
	}
}

// TestNoResend covers the ways the same item can reach the notifier again
// after it was delivered: a restart, a replayed consumer, a republished
// copy, a NATS redelivery after a lost ack. None may send it twice.
func TestNoResend(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*sink, *config.NotifierConfig) {
		sk := newSink(t, nil)
		return sk, testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade", "defense"},
			Webhook: &config.Webhook{URL: sk.srv.URL}, Stdout: &config.Stdout{}})
	}

	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		b := bustest.New(t)
		sk, cfg := setup(t)
		r1 := startService(t, b, cfg)
		publishItem(t, b, testItem("a", "trade", "defense"))
		waitHandled(t, b)
		r1.stop()
		r2 := startService(t, b, cfg)
		publishItem(t, b, testItem("b", "trade"))
		waitHandled(t, b)
		if sk.count() != 2 {
			t.Errorf("requests = %d, want 2", sk.count())
		}
		if got := r1.out.String() + r2.out.String(); strings.Count(got, "\n") != 2 {
			t.Errorf("stdout lines: %q", got)
		}
	})

	t.Run("consumer replayed from the start", func(t *testing.T) {
		t.Parallel()
		b := bustest.New(t)
		sk, cfg := setup(t)
		r1 := startService(t, b, cfg)
		for i := range 5 {
			publishItem(t, b, testItem(fmt.Sprint("item-", i), "trade", "defense"))
		}
		waitHandled(t, b)
		r1.stop()
		// A lost consumer (or a new deployment) replays the whole stream.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, js := bustest.Client(t, b)
		if err := js.DeleteConsumer(ctx, event.StreamClassified, event.ConsumerNotifier); err != nil {
			t.Fatal(err)
		}
		r2 := startService(t, b, cfg)
		waitHandled(t, b)
		if sk.count() != 5 {
			t.Errorf("requests = %d, want 5", sk.count())
		}
		if r2.out.String() != "" || r2.count(KindWebhook, telemetry.NotifySent) != 0 {
			t.Errorf("replay re-sent: stdout %q", r2.out.String())
		}
	})

	t.Run("republished copy", func(t *testing.T) {
		t.Parallel()
		b := bustest.New(t)
		sk, cfg := setup(t)
		startService(t, b, cfg)
		it := testItem("a", "trade")
		publishItem(t, b, it)
		waitHandled(t, b)
		// Outside the stream's duplicate window: a new message, same item.
		data, _ := it.Marshal()
		if _, err := b.Publish(context.Background(), event.ClassifiedSubject("trade"), "other-msg-id", data); err != nil {
			t.Fatal(err)
		}
		waitHandled(t, b)
		if sk.count() != 1 {
			t.Errorf("requests = %d, want 1", sk.count())
		}
	})

	t.Run("redelivery after a lost ack", func(t *testing.T) {
		t.Parallel()
		b := bustest.New(t)
		sk, cfg := setup(t)
		var acks atomic.Int32
		r := startService(t, b, cfg, WithAckWait(300*time.Millisecond), func(o *options) {
			o.beforeAck = func(jetstream.Msg) bool { return acks.Add(1) > 1 } // lose the first ack
		})
		publishItem(t, b, testItem("a", "trade"))
		waitHandled(t, b)
		if acks.Load() < 2 {
			t.Fatalf("message handled %d times, want a redelivery", acks.Load())
		}
		if sk.count() != 1 || strings.Count(r.out.String(), "\n") != 1 {
			t.Errorf("requests = %d, stdout %q; want one each", sk.count(), r.out.String())
		}
	})
}

func TestTwoReplicasDeliverOnce(t *testing.T) {
	t.Parallel()
	b, url := bustest.NewListening(t)
	b2 := bustest.Connect(t, url)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade", "defense"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	startService(t, b, cfg)
	startService(t, b2, cfg)
	const n = 30
	for i := range n {
		publishItem(t, b, testItem(fmt.Sprint("i", i), "trade", "defense"))
	}
	waitHandled(t, b)
	seen := map[string]int{}
	for _, rq := range sk.requests() {
		var body alert.Body
		_ = json.Unmarshal(rq.body, &body)
		seen[body.Items[0].ID]++
	}
	if len(seen) != n {
		t.Errorf("distinct items = %d, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("item %s sent %d times", id, c)
		}
	}
}

// TestCrashWindow: a "sending" entry left by a crashed sender is sent once
// more with the same key once its lease has run out; a live lease or a
// "done" entry is left alone.
func TestCrashWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rec      record
		wantSent int
	}{
		{"expired sending lease is resent once", record{State: stateSending, Attempts: 1, Lease: time.Now().Add(-time.Second)}, 1},
		{"live sending lease is waited for, then resent once", record{State: stateSending, Attempts: 1, Lease: time.Now().Add(time.Second)}, 1},
		{"retry state is attempted", record{State: stateRetry, Attempts: 2, Next: time.Now().Add(-time.Second)}, 1},
		{"done is not resent", record{State: stateDone, Attempts: 1}, 0},
		{"dead is not resent", record{State: stateDead, Attempts: 1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := newSink(t, nil)
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			it := testItem("c", "trade")
			ctx := context.Background()
			kv, err := b.KV(ctx, event.BucketDelivered)
			if err != nil {
				t.Fatal(err)
			}
			rec := tc.rec
			rec.Key = alert.Key("desk", KindWebhook, it)
			rec.First = time.Now().Add(-time.Minute)
			data, _ := json.Marshal(rec)
			if _, err := kv.Put(ctx, deliveredKey("desk", KindWebhook, it.ID), data); err != nil {
				t.Fatal(err)
			}
			startService(t, b, cfg)
			publishItem(t, b, it)
			waitHandled(t, b)
			if sk.count() != tc.wantSent {
				t.Fatalf("requests = %d, want %d", sk.count(), tc.wantSent)
			}
			if tc.wantSent > 0 && sk.requests()[0].header.Get("Idempotency-Key") != rec.Key {
				t.Errorf("resend carries another key")
			}
		})
	}
}

// TestHandBackKeepsOtherReceiversDone: when one receiver's retry is handed
// back to NATS, the receivers that already delivered are not repeated.
func TestHandBackKeepsOtherReceiversDone(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}, Stdout: &config.Stdout{}})
	// No waiting in place: every retry goes back to NATS as NakWithDelay.
	r := startService(t, b, cfg, WithInlineWait(0))
	publishItem(t, b, testItem("h", "trade"))
	waitHandled(t, b)
	if sk.count() != 4 || sk.accepted() != 1 {
		t.Errorf("webhook requests = %d (accepted %d), want 4 (1)", sk.count(), sk.accepted())
	}
	if got := strings.Count(r.out.String(), "\n"); got != 1 {
		t.Errorf("stdout printed %d lines, want 1", got)
	}
}

// TestShutdownHandsBackWaitingWork: a delivery waiting for its next attempt
// when the service stops is handed back and completed by the next run.
func TestShutdownHandsBackWaitingWork(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	var fail atomic.Bool
	fail.Store(true)
	sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int {
		if fail.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	cfg.Notify.MaxAttempts = 100
	r1 := startService(t, b, cfg, WithBackoff(5*time.Second, 5*time.Second), WithInlineWait(time.Minute))
	publishItem(t, b, testItem("s", "trade"))
	bustest.Eventually(t, waitLong, func() bool { return sk.count() >= 1 }, "no attempt")
	start := time.Now()
	r1.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %s while only waiting for a retry", d)
	}
	fail.Store(false)
	startService(t, b, cfg, WithBackoff(10*time.Millisecond, 10*time.Millisecond))
	waitHandled(t, b)
	if sk.accepted() != 1 {
		t.Errorf("accepted = %d, want 1", sk.accepted())
	}
}

func TestReceiverNames(t *testing.T) {
	t.Parallel()
	cfg := testConfig(
		config.Subscriber{Name: "a", Stdout: &config.Stdout{}, Webhook: &config.Webhook{URL: "http://x"}},
		config.Subscriber{Name: "b", Webhook: &config.Webhook{URL: "http://y"}},
	)
	if got := strings.Join(ReceiverNames(cfg.Subscribers), ","); got != "webhook,stdout" {
		t.Errorf("ReceiverNames = %s", got)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inline time.Duration
	}{
		{"waits in place", 10 * time.Second},
		{"hands back", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			sk := newSink(t, nil)
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			startService(t, b, cfg, WithRateLimit(KindWebhook, 5, 1), WithInlineWait(tc.inline))
			const n = 6
			for i := range n {
				publishItem(t, b, testItem(fmt.Sprint("r", i), "trade"))
			}
			waitHandled(t, b)
			reqs := sk.requests()
			if len(reqs) != n {
				t.Fatalf("requests = %d, want %d", len(reqs), n)
			}
			// 5/s with a burst of 1: n sends take at least (n-1)/5 s.
			// (Measured at the server, so allow for the first request's
			// connection set-up.)
			if span := reqs[n-1].at.Sub(reqs[0].at); span < time.Duration(n-1)*200*time.Millisecond*4/5 {
				t.Errorf("%d sends within %s: not paced", n, span)
			}
		})
	}
}

// TestZeroNotifyConfig: a Config built in code, without the loader's
// defaults, still delivers.
func TestZeroNotifyConfig(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	sk := newSink(t, nil)
	cfg := &config.NotifierConfig{Subscribers: []config.Subscriber{{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}}}}
	startService(t, b, cfg)
	publishItem(t, b, testItem("z", "trade"))
	waitHandled(t, b)
	if sk.accepted() != 1 {
		t.Errorf("accepted = %d, want 1", sk.accepted())
	}
}

// TestParkedDeliveries: deliveries whose retry is far off leave NATS (their
// messages are acked, so a long outage cannot exhaust MaxAckPending) and
// are sent once when due.
func TestParkedDeliveries(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	var down atomic.Bool
	down.Store(true)
	sk := newSink(t, func(_ int, _ *http.Request, w http.ResponseWriter) int {
		if down.Load() {
			w.Header().Set("Retry-After", "1")
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}, Stdout: &config.Stdout{}})
	cfg.Notify.MaxAttempts = 100
	r := startService(t, b, cfg, WithParkAfter(500*time.Millisecond), WithInlineWait(0), WithFlushInterval(20*time.Millisecond))
	const n = 5
	for i := range n {
		publishItem(t, b, testItem(fmt.Sprint("p", i), "trade"))
	}
	waitHandled(t, b) // acked although the webhook is still down
	if sk.accepted() != 0 {
		t.Fatal("webhook accepted while down")
	}
	if got := strings.Count(r.out.String(), "\n"); got != n {
		t.Errorf("stdout lines = %d, want %d", got, n)
	}
	ctx := context.Background()
	kv, err := b.KV(ctx, event.BucketDelivered)
	if err != nil {
		t.Fatal(err)
	}
	countParked := func() int {
		l, err := kv.ListKeysFiltered(ctx, parkFilter)
		if err != nil {
			return -1
		}
		c := 0
		for range l.Keys() {
			c++
		}
		return c
	}
	if c := countParked(); c != n {
		t.Errorf("parked = %d, want %d", c, n)
	}
	down.Store(false)
	bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == n && countParked() == 0 }, "parked deliveries not sent")
	seen := map[string]int{}
	for _, rq := range sk.requests() {
		if rq.status == http.StatusOK {
			var body alert.Body
			_ = json.Unmarshal(rq.body, &body)
			seen[body.Items[0].ID]++
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s accepted %d times", id, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d items accepted, want %d", len(seen), n)
	}
}
