package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/slack"
	"github.com/feedmon/feedmon/services/notifier/stdout"
	"github.com/feedmon/feedmon/services/notifier/webhook"
)

// storyItem is a report of story by another outlet than testItem's.
func storyItem(id, story, source string) *event.Item {
	it := testItem(id, "trade")
	it.StoryID = story
	it.FeedTitle = source
	it.FeedURL = "https://" + strings.ToLower(strings.ReplaceAll(source, " ", "")) + ".example/feed"
	it.Title = "Tariff truce agreed (" + source + " " + id + ")"
	return it
}

// hookBody is the webhook/nats body as a receiver reads it.
type hookBody struct {
	Subscriber string            `json:"subscriber"`
	Kind       string            `json:"kind"`
	Updates    map[string]string `json:"updates"`
	Items      []event.Item      `json:"items"`
}

func decodeBody(t *testing.T, data []byte) hookBody {
	t.Helper()
	var b hookBody
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("body: %v\n%s", err, data)
	}
	return b
}

// alertBodies reads every message of the subscriber's alerts subject.
func alertBodies(t *testing.T, b *bus.Bus, subscriber string) []hookBody {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, js := bustest.Client(t, b)
	c, err := js.OrderedConsumer(ctx, event.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.AlertsSubject(subscriber)}})
	if err != nil {
		t.Fatal(err)
	}
	n := alertsCount(t, b)
	if n == 0 {
		return nil
	}
	batch, err := c.Fetch(int(n), jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []hookBody
	for m := range batch.Messages() {
		out = append(out, decodeBody(t, m.Data()))
	}
	return out
}

// storyKeys lists the story entries in the delivered-log bucket.
func storyKeys(t *testing.T, b *bus.Bus) []string {
	t.Helper()
	ctx := context.Background()
	kv, err := b.KV(ctx, event.BucketDelivered)
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeysFiltered(ctx, "story.>")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys
}

// TestOneAlertPerStory: two reports of one story give one alert and one
// update per receiver when the subscriber groups stories, two alerts when
// it does not or when the items carry no story id.
func TestOneAlertPerStory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		group      *bool
		noStory    bool
		wantUpdate bool
	}{
		{name: "group_stories unset (default)", wantUpdate: true},
		{name: "group_stories true", group: new(true), wantUpdate: true},
		{name: "group_stories false", group: new(false)},
		{name: "no story id", noStory: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			hook := newSink(t, nil)
			slk := newSink(t, nil)
			mb, smtpCfg := startMailbox(t)
			const secret = "k3y"
			cfg := testConfig(config.Subscriber{
				Name:         "desk",
				Topics:       []string{"trade"},
				GroupStories: tc.group,
				Webhook:      &config.Webhook{URL: hook.srv.URL, Secret: secret},
				Slack:        &config.Slack{WebhookURL: slk.srv.URL},
				Email:        &config.Email{To: []string{"desk@example.org"}},
				Stdout:       &config.Stdout{},
				NATS:         &config.NATSReceiver{},
			})
			cfg.SMTP = smtpCfg
			r := startService(t, b, cfg)
			if !gathered(r.reg, "feedmon_story_updates_total") {
				t.Error("feedmon_story_updates_total not exported from start-up")
			}
			first := storyItem("s1", "s1", "Example News")
			later := storyItem("s2", "s1", "Other <Wire> @here")
			if tc.noStory {
				first.StoryID, later.StoryID = "", ""
			}
			publishItem(t, b, first)
			waitHandled(t, b)
			publishItem(t, b, later)
			waitHandled(t, b)

			wantKind := alert.EventAlert
			var wantUpdates map[string]string
			if tc.wantUpdate {
				wantKind = alert.EventUpdate
				wantUpdates = map[string]string{"s2": "s1"}
			}

			// Webhook: the kind in the body and the header, the body signed.
			reqs := hook.requests()
			if len(reqs) != 2 {
				t.Fatalf("webhook requests = %d, want 2", len(reqs))
			}
			for i, want := range []struct {
				id, kind string
				updates  map[string]string
			}{{"s1", alert.EventAlert, nil}, {"s2", wantKind, wantUpdates}} {
				rq := reqs[i]
				body := decodeBody(t, rq.body)
				if body.Kind != want.kind || rq.header.Get(webhook.HeaderEvent) != want.kind {
					t.Errorf("webhook %s: kind %q, header %q; want %q", want.id, body.Kind, rq.header.Get(webhook.HeaderEvent), want.kind)
				}
				if fmt.Sprint(body.Updates) != fmt.Sprint(want.updates) {
					t.Errorf("webhook %s: updates %v, want %v", want.id, body.Updates, want.updates)
				}
				if want.updates == nil && strings.Contains(string(rq.body), `"updates"`) {
					t.Errorf("webhook %s: an alert carries updates: %s", want.id, rq.body)
				}
				if len(body.Items) != 1 || body.Items[0].ID != want.id {
					t.Errorf("webhook %s: items %+v", want.id, body.Items)
				}
				if got := rq.header.Get(webhook.HeaderSignature); got != webhook.Sign([]byte(secret), rq.body) {
					t.Errorf("webhook %s: signature does not cover the body", want.id)
				}
				if rq.header.Get("Idempotency-Key") != alert.Key("desk", KindWebhook, &event.Item{ID: want.id}) {
					t.Errorf("webhook %s: idempotency key changed", want.id)
				}
			}
			if !strings.HasPrefix(string(reqs[1].body), `{"subscriber":"desk","kind":`) {
				t.Errorf("body fields out of order: %s", reqs[1].body)
			}

			// NATS: the same body.
			nb := alertBodies(t, b, "desk")
			if len(nb) != 2 || nb[0].Kind != alert.EventAlert || nb[1].Kind != wantKind || fmt.Sprint(nb[1].Updates) != fmt.Sprint(wantUpdates) {
				t.Errorf("nats alerts = %+v", nb)
			}

			// Slack: a full alert, then (grouped) the compact line only.
			sr := slk.requests()
			if len(sr) != 2 {
				t.Fatalf("slack requests = %d, want 2", len(sr))
			}
			var sm slack.Message
			if err := json.Unmarshal(sr[1].body, &sm); err != nil {
				t.Fatal(err)
			}
			if tc.wantUpdate {
				if len(sm.Blocks) != 1 || sm.Blocks[0].Text == nil || sm.Blocks[0].Text.Text != slack.AlsoLine(later) {
					t.Errorf("slack update = %s", sr[1].body)
				}
				wantLine := "↳ Also reported by Other &lt;Wire&gt; @\u200bhere: <https://news.example.org/articles/s2|Tariff truce agreed (Other &lt;Wire&gt; @\u200bhere s2)>"
				if got := slack.AlsoLine(later); got != wantLine {
					t.Errorf("slack line\n got %q\nwant %q", got, wantLine)
				}
				if strings.ContainsAny(sm.Text, "<>") {
					t.Errorf("slack fallback text %q", sm.Text)
				}
			} else if len(sm.Blocks) < 2 || sm.Blocks[0].Type != "section" {
				t.Errorf("slack second alert is not a full alert: %s", sr[1].body)
			}

			// Email: no mail for an update.
			wantMails := 2
			if tc.wantUpdate {
				wantMails = 1
			}
			if mb.count() != wantMails {
				t.Errorf("mails = %d, want %d", mb.count(), wantMails)
			}

			// stdout: the update's usual line behind the prefix.
			line2 := stdout.Format(later.Topics, later.Title, later.Link)
			if tc.wantUpdate {
				line2 = stdout.UpdatePrefix + line2
			}
			wantOut := stdout.Format(first.Topics, first.Title, first.Link) + "\n" + line2 + "\n"
			if got := r.out.String(); got != wantOut {
				t.Errorf("stdout\n got %q\nwant %q", got, wantOut)
			}

			for _, rc := range []string{KindWebhook, KindSlack, KindEmail, KindStdout, KindNATS} {
				wantUpd, wantSent := 0.0, 2.0
				if tc.wantUpdate {
					wantUpd = 1
					if rc == KindEmail {
						wantSent = 1
					}
				}
				if got := counterValue(r.svc.storyUpdates.WithLabelValues(rc)); got != wantUpd {
					t.Errorf("story updates{%s} = %v, want %v", rc, got, wantUpd)
				}
				if got := r.count(rc, telemetry.NotifySent); got != wantSent {
					t.Errorf("sent{%s} = %v, want %v", rc, got, wantSent)
				}
			}
			if keys := storyKeys(t, b); (len(keys) == 1) != tc.wantUpdate {
				t.Errorf("story entries = %v", keys)
			}
		})
	}
}

// TestStoryFirstSurvivesRedelivery: the first report handled again (a
// NATS redelivery after a failed attempt, a republished copy) is still the
// first report, never an update of itself.
func TestStoryFirstSurvivesRedelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		again func(t *testing.T, b *bus.Bus, it *event.Item)
	}{
		{name: "redelivered after a failed attempt"},
		{name: "republished copy", again: func(t *testing.T, b *bus.Bus, it *event.Item) {
			data, _ := it.Marshal()
			if _, err := b.Publish(context.Background(), event.ClassifiedSubject("trade"), "another-msg-id", data); err != nil {
				t.Fatal(err)
			}
			waitHandled(t, b)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			var failed atomic.Bool
			sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int {
				if failed.CompareAndSwap(false, true) {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			})
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			// No retry in place: the failed attempt goes back to NATS,
			// which redelivers the message and the role is decided again.
			startService(t, b, cfg, WithInlineWait(0))
			first := storyItem("f1", "f1", "Example News")
			publishItem(t, b, first)
			waitHandled(t, b)
			if tc.again != nil {
				tc.again(t, b, first)
			}
			publishItem(t, b, storyItem("f2", "f1", "Other Wire"))
			waitHandled(t, b)

			reqs := sk.requests()
			if len(reqs) != 3 {
				t.Fatalf("requests = %d, want 3 (a failure, the alert, the update)", len(reqs))
			}
			for i, want := range []struct{ id, kind string }{{"f1", alert.EventAlert}, {"f1", alert.EventAlert}, {"f2", alert.EventUpdate}} {
				body := decodeBody(t, reqs[i].body)
				if body.Kind != want.kind || body.Items[0].ID != want.id {
					t.Errorf("request %d: %s %s, want %s %s", i, body.Items[0].ID, body.Kind, want.id, want.kind)
				}
			}
			if string(reqs[0].body) != string(reqs[1].body) {
				t.Error("the redelivered first report is not sent as it was")
			}
		})
	}
}

// TestStoryTwoReplicas: reports of one story handled at once by two
// notifiers give exactly one alert per story; the rest are updates naming
// that alert's item, and every item is delivered once.
func TestStoryTwoReplicas(t *testing.T) {
	t.Parallel()
	b, url := bustest.NewListening(t)
	b2 := bustest.Connect(t, url)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r1 := startService(t, b, cfg)
	r2 := startService(t, b2, cfg)
	const stories, reports = 8, 4
	for i := range reports {
		for s := range stories {
			publishItem(t, b, storyItem(fmt.Sprintf("st%d-r%d", s, i), fmt.Sprint("story-", s), fmt.Sprint("Outlet ", i)))
		}
	}
	waitHandled(t, b)

	alerts := map[string]string{} // story -> the alerted item
	seen := map[string]int{}
	var updates []hookBody
	for _, rq := range sk.requests() {
		body := decodeBody(t, rq.body)
		it := body.Items[0]
		seen[it.ID]++
		if rq.header.Get(webhook.HeaderEvent) != body.Kind {
			t.Errorf("%s: header %q, body kind %q", it.ID, rq.header.Get(webhook.HeaderEvent), body.Kind)
		}
		switch body.Kind {
		case alert.EventAlert:
			if prev, ok := alerts[it.StoryID]; ok {
				t.Errorf("story %s alerted twice: %s and %s", it.StoryID, prev, it.ID)
			}
			alerts[it.StoryID] = it.ID
		case alert.EventUpdate:
			updates = append(updates, body)
		default:
			t.Errorf("%s: kind %q", it.ID, body.Kind)
		}
	}
	if len(alerts) != stories {
		t.Errorf("alerted stories = %d, want %d", len(alerts), stories)
	}
	for _, u := range updates {
		it := u.Items[0]
		if u.Updates[it.ID] != alerts[it.StoryID] {
			t.Errorf("update %s names %q as first, the alert was %q", it.ID, u.Updates[it.ID], alerts[it.StoryID])
		}
	}
	if len(seen) != stories*reports {
		t.Errorf("distinct items = %d, want %d", len(seen), stories*reports)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s sent %d times", id, c)
		}
	}
	got := counterValue(r1.svc.storyUpdates.WithLabelValues(KindWebhook)) + counterValue(r2.svc.storyUpdates.WithLabelValues(KindWebhook))
	if want := float64(stories * (reports - 1)); got != want {
		t.Errorf("story updates = %v, want %v", got, want)
	}
}

// mailParts decodes a raw mail into its text and HTML parts.
func mailParts(t *testing.T, raw []byte) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		body, _ := io.ReadAll(r)
		s := strings.ReplaceAll(string(body), "\r\n", "\n")
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = s
		} else {
			text = s
		}
	}
	return text, html
}

// TestStoryDigest: a digest lists a story's later reports under its first
// ("Also reported by") in the mail, and the webhook gets it as "mixed".
func TestStoryDigest(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	hook := newSink(t, nil)
	mb, smtpCfg := startMailbox(t)
	clock := newFakeClock(time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"},
		Webhook: &config.Webhook{URL: hook.srv.URL}, Email: &config.Email{To: []string{"desk@example.org"}}})
	cfg.SMTP = smtpCfg
	r := startService(t, b, cfg, WithClock(clock.Now), WithSchedule("desk", Schedule{Digest: time.Hour}), WithFlushInterval(10*time.Millisecond))

	first := storyItem("d1", "d1", "Example News")
	later := storyItem("d2", "d1", "Other Wire")
	single := storyItem("d3", "", "Third Post")
	for _, it := range []*event.Item{first, later, single} {
		publishItem(t, b, it)
		waitHandled(t, b) // in order: d1 is the first report
	}
	clock.Set(time.Date(2026, 11, 27, 11, 0, 1, 0, time.UTC))
	bustest.Eventually(t, waitLong, func() bool { return mb.count() == 1 && hook.accepted() == 1 }, "no digest")
	idle(t, r)
	if mb.count() != 1 || hook.count() != 1 {
		t.Fatalf("mails %d, webhook requests %d; want one digest each", mb.count(), hook.count())
	}

	mb.mu.Lock()
	raw := mb.msgs[0]
	mb.mu.Unlock()
	text, html := mailParts(t, raw)
	wantAlso := "Also reported by: Other Wire — " + later.Title + " <" + later.Link + ">"
	if !strings.Contains(text, first.Title+"\n") || !strings.Contains(text, wantAlso+"\n") || !strings.Contains(text, single.Title+"\n") {
		t.Errorf("text part lacks the story grouping (%q):\n%s", wantAlso, text)
	}
	if i, j := strings.Index(text, first.Title), strings.Index(text, wantAlso); i < 0 || j < i || strings.Count(text[i:j], "----") != 0 {
		t.Errorf("the later report is not listed under its first report:\n%s", text)
	}
	if strings.Count(text, "\n----\n") != 1 {
		t.Errorf("want two stories in the digest:\n%s", text)
	}
	if !strings.Contains(html, `Also reported by: Other Wire — <a href="`+later.Link+`">`) {
		t.Errorf("html part lacks the also-reported line:\n%s", html)
	}

	body := decodeBody(t, hook.requests()[0].body)
	if body.Kind != alert.EventMixed || fmt.Sprint(body.Updates) != "map[d2:d1]" || len(body.Items) != 3 {
		t.Errorf("webhook digest: kind %q updates %v items %d", body.Kind, body.Updates, len(body.Items))
	}
	if got := hook.requests()[0].header.Get(webhook.HeaderEvent); got != alert.EventMixed {
		t.Errorf("X-Feedmon-Event = %q", got)
	}
	for _, rc := range []string{KindWebhook, KindEmail} {
		if got := counterValue(r.svc.storyUpdates.WithLabelValues(rc)); got != 1 {
			t.Errorf("story updates{%s} = %v, want 1", rc, got)
		}
	}
}

// TestStoryKeys: story entries cannot meet the other entries of the
// delivered-log bucket, whatever the subscriber is called (a story id is an
// item id, so a three-token story key could equal a log key).
func TestStoryKeys(t *testing.T) {
	t.Parallel()
	const id = "https://news.example.org/a"
	tests := []struct{ sub, other, kind string }{
		{"webhook", "story", KindWebhook},
		{"slack", "story", KindSlack},
		{"email", "story", KindEmail},
		{"desk", "desk", KindStdout},
	}
	for _, tc := range tests {
		sk := storyKey(tc.sub, id)
		lk := deliveredKey(tc.other, tc.kind, id)
		for _, k := range []string{lk, queueKey(lk), parkKey(lk), batchKey(tc.other, tc.kind)} {
			if sk == k {
				t.Errorf("story key %s of %q equals %s", sk, tc.sub, k)
			}
		}
		if strings.HasPrefix(sk, "park.") || strings.HasPrefix(sk, "queue.") || strings.HasPrefix(sk, "batch.") {
			t.Errorf("story key %s would be read as another entry", sk)
		}
		if n := strings.Count(sk, ".") + 1; n == strings.Count(lk, ".")+1 {
			t.Errorf("story key %s has as many tokens as a log key", sk)
		}
	}
	if storyKey("desk", "a") == storyKey("desk", "b") || storyKey("desk", "a") == storyKey("team", "a") {
		t.Error("story keys collide")
	}
}

// TestStoryUpdateKeepsItsRole: an update that waits (parked for a far-off
// retry) or fails for good (dead-lettered, then replayed) still goes out
// as an update naming its first report.
func TestStoryUpdateKeepsItsRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int // the webhook's answer to the update until it is fixed
		opts   []Option
	}{
		{name: "parked", status: http.StatusServiceUnavailable, opts: []Option{WithParkAfter(300 * time.Millisecond), WithInlineWait(0), WithFlushInterval(20 * time.Millisecond)}},
		{name: "dead-lettered and replayed", status: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			var broken atomic.Bool
			broken.Store(true)
			sk := newSink(t, func(_ int, r *http.Request, w http.ResponseWriter) int {
				if broken.Load() && r.Header.Get(webhook.HeaderEvent) == alert.EventUpdate {
					w.Header().Set("Retry-After", "1")
					return tc.status
				}
				return http.StatusOK
			})
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			cfg.Notify.MaxAttempts = 100
			r := startService(t, b, cfg, tc.opts...)
			publishItem(t, b, storyItem("k1", "k1", "Example News"))
			waitHandled(t, b)
			publishItem(t, b, storyItem("k2", "k1", "Other Wire"))
			waitHandled(t, b) // acked: parked, or dead-lettered
			if sk.accepted() != 1 {
				t.Fatalf("accepted = %d before the fix, want 1 (the alert)", sk.accepted())
			}
			if tc.status == http.StatusBadRequest {
				var dls []jetstream.Msg
				bustest.Eventually(t, waitLong, func() bool { dls = deadLetters(t, b); return len(dls) == 1 }, "not dead-lettered")
				var dl DeadLetter
				if err := json.Unmarshal(dls[0].Data(), &dl); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(dl.Updates) != "map[k2:k1]" {
					t.Errorf("dead letter updates = %v", dl.Updates)
				}
				r.stop()
				broken.Store(false)
				var out strings.Builder
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := ReplayDead(ctx, b, *cfg, &out); err != nil {
					t.Fatalf("ReplayDead: %v\n%s", err, out.String())
				}
			} else {
				broken.Store(false)
			}
			bustest.Eventually(t, waitLong, func() bool { return sk.accepted() == 2 }, "update not sent")
			var last sinkReq
			for _, rq := range sk.requests() {
				if rq.status == http.StatusOK {
					last = rq
				}
			}
			body := decodeBody(t, last.body)
			if body.Kind != alert.EventUpdate || body.Updates["k2"] != "k1" || body.Items[0].ID != "k2" {
				t.Errorf("late update: kind %q updates %v item %s", body.Kind, body.Updates, body.Items[0].ID)
			}
		})
	}
}
