package bus

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// ConsumerRef names a durable consumer on a stream.
type ConsumerRef struct{ Stream, Consumer string }

// WatchLag exports how far the given consumers are behind, polled from
// consumer info every interval until ctx ends; then it returns. Polling
// (rather than asking NATS on every scrape) keeps a scrape fast when NATS
// is slow or away. The gauges are registered before the first poll.
func (b *Bus) WatchLag(ctx context.Context, reg prometheus.Registerer, interval time.Duration, refs []ConsumerRef) {
	f := promauto.With(reg)
	pending := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "feedmon_consumer_pending",
		Help: "Messages in the stream not yet delivered to the consumer.",
	}, []string{"stream", "consumer"})
	ackPending := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "feedmon_consumer_ack_pending",
		Help: "Messages delivered to the consumer and not yet acknowledged.",
	}, []string{"stream", "consumer"})
	for _, r := range refs {
		pending.WithLabelValues(r.Stream, r.Consumer)
		ackPending.WithLabelValues(r.Stream, r.Consumer)
	}
	poll := func() {
		for _, r := range refs {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if info, err := b.ConsumerInfo(cctx, r.Stream, r.Consumer); err == nil {
				pending.WithLabelValues(r.Stream, r.Consumer).Set(float64(info.NumPending))
				ackPending.WithLabelValues(r.Stream, r.Consumer).Set(float64(info.NumAckPending))
			}
			cancel()
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		poll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
