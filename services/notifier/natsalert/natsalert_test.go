package natsalert_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/natsalert"
)

func TestPublish(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := &event.Item{ID: "x1", Title: "EU and Japan <agree>", Link: "https://e.org/x1", Topics: []string{"trade"}}
	batch := alert.NewBatch("analysts", "nats", it)
	n := natsalert.New(b)
	for range 2 { // the second is a re-send: deduplicated by Nats-Msg-Id
		if retry, err := n.Notify(ctx, batch); err != nil || retry {
			t.Fatalf("Notify = %v, %v", retry, err)
		}
	}
	st, err := b.Stream(ctx, event.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("alerts stream holds %d messages, want 1", info.State.Msgs)
	}
	msg, err := st.GetLastMsgForSubject(ctx, event.AlertsSubject("analysts"))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != batch.Key {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, batch.Key)
	}
	var body alert.Body
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatal(err)
	}
	if body.Subscriber != "analysts" || len(body.Items) != 1 || body.Items[0].ID != "x1" || body.Items[0].Title != it.Title {
		t.Errorf("body = %s", msg.Data)
	}
}

func TestPublishUpdate(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	batch := alert.NewBatch("analysts", "nats", &event.Item{ID: "u1", StoryID: "x1", Topics: []string{"trade"}})
	batch.Updates = map[string]string{"u1": "x1"}
	if retry, err := natsalert.New(b).Notify(ctx, batch); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	st, err := b.Stream(ctx, event.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, event.AlertsSubject("analysts"))
	if err != nil {
		t.Fatal(err)
	}
	var body alert.Body
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatal(err)
	}
	if body.Kind != alert.EventUpdate || body.Updates["u1"] != "x1" || len(body.Items) != 1 || body.Items[0].ID != "u1" {
		t.Errorf("body = %s", msg.Data)
	}
}

func TestPublishFailureIsRetryable(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, js := bustest.Client(t, b)
	if err := js.DeleteStream(ctx, event.StreamAlerts); err != nil {
		t.Fatal(err)
	}
	retry, err := natsalert.New(b).Notify(ctx, alert.NewBatch("s", "nats", &event.Item{ID: "a"}))
	if err == nil || !retry {
		t.Errorf("Notify = %v, %v; want a retryable error", retry, err)
	}
}
