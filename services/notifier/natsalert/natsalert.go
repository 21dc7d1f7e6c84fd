// Package natsalert is the nats receiver: it publishes a subscriber's
// alerts on feedmon.alerts.<subscriber> (JSON, as the webhook body), for
// the subscriber's own tools.
package natsalert

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// Publisher publishes with a Nats-Msg-Id; *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error)
}

// Notifier publishes alerts on the subscriber's alerts subject.
type Notifier struct {
	pub Publisher
}

// New returns a notifier publishing through pub.
func New(pub Publisher) *Notifier { return &Notifier{pub: pub} }

// Notify publishes the batch with the delivery's idempotency key as
// Nats-Msg-Id, so a re-send inside the stream's duplicate window is
// dropped by JetStream itself. Every failure is transient: the stream or
// the connection comes back.
func (n *Notifier) Notify(ctx context.Context, b *alert.Batch) (retry bool, err error) {
	body, err := alert.MarshalBody(b)
	if err != nil {
		return false, fmt.Errorf("natsalert: %w", err)
	}
	if _, err := n.pub.Publish(ctx, event.AlertsSubject(b.Subscriber), b.Key, body); err != nil {
		return true, fmt.Errorf("natsalert: %w", err)
	}
	return false, nil
}
