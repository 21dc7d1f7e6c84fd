package classifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// An item leaves the classifier as one message per topic, published
// without waiting: handle hands the item, with the futures of its
// publications, to the settler, and takes the next. The settler
// acknowledges the item once every publication is stored, or hands it
// back (Nak) when one fails; the redelivered item is published again under
// the same message ids, which the stream drops as duplicates. So a worker
// never waits for a round trip to the stream, and an item is acknowledged
// only once its classified copies are stored: a crash in between
// redelivers it.

// errPublishTimeout: a publication's PubAck did not come within
// publishTimeout.
var errPublishTimeout = errors.New("no acknowledgement from the stream")

// outgoing is an item whose classified copies are being published.
type outgoing struct {
	msg    jetstream.Msg
	itemID string
	topics []string
	// futs are the publications, one per topic, in topics' order.
	futs []jetstream.PubAckFuture
	// deadline bounds the wait for the last PubAck.
	deadline time.Time
}

// settle acknowledges or hands back the items of in, in order, until in is
// closed. Publications to one stream are stored in the order they are
// sent, so waiting for them in order waits for little more than the
// slowest. Once ctx ends it stops waiting: what is left is handed back at
// once (its copies, if they were stored, are duplicates next time).
func (s *Service) settle(ctx context.Context, in <-chan *outgoing) {
	timer := time.NewTimer(publishTimeout)
	timer.Stop()
	for o := range in {
		if err := s.await(ctx, o, timer); err != nil {
			if ctx.Err() != nil {
				_ = o.msg.Nak()
				continue
			}
			s.errors.WithLabelValues("publish").Inc()
			s.log.Warn("publish classified item, will retry", "item_id", o.itemID, "err", err)
			_ = o.msg.NakWithDelay(retryDelay)
			continue
		}
		if err := o.msg.Ack(); err != nil {
			s.log.Warn("ack item", "item_id", o.itemID, "err", fmt.Errorf("classifier: %w", err))
		}
		for _, topic := range o.topics {
			s.m.ItemsClassified.WithLabelValues(topic).Inc()
		}
	}
}

// await waits until every publication of o is stored, one fails, o's
// deadline passes or ctx ends. timer is the settler's, stopped.
func (s *Service) await(ctx context.Context, o *outgoing, timer *time.Timer) error {
	for i, f := range o.futs {
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			return fmt.Errorf("classifier: publish %s: %w", o.topics[i], err)
		default:
		}
		timer.Reset(time.Until(o.deadline))
		select {
		case <-f.Ok():
			timer.Stop()
		case err := <-f.Err():
			timer.Stop()
			return fmt.Errorf("classifier: publish %s: %w", o.topics[i], err)
		case <-timer.C:
			return fmt.Errorf("classifier: publish %s: %w", o.topics[i], errPublishTimeout)
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	return nil
}
