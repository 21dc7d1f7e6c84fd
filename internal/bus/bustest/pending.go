package bustest

import (
	"context"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
)

// PendingWork sums the pending and unacknowledged messages of the
// classifier's and the notifier's consumers: 0 once the pipeline has
// nothing left to do; -1 when NATS cannot say.
func PendingWork(b *bus.Bus) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sum := 0
	for _, ref := range [][2]string{{event.StreamItems, event.ConsumerClassifier}, {event.StreamClassified, event.ConsumerNotifier}} {
		info, err := b.ConsumerInfo(ctx, ref[0], ref[1])
		if err != nil {
			return -1
		}
		sum += int(info.NumPending) + info.NumAckPending
	}
	return sum
}
