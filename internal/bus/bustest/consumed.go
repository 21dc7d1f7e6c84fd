package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
)

// WaitConsumed waits until the durable consumer has acked (or termed) every
// message its stream holds: none pending, none awaiting an ack, and its ack
// floor at the stream's last sequence.
func WaitConsumed(t testing.TB, b *bus.Bus, stream, consumer string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := b.Stream(ctx, stream)
		if err != nil {
			return false
		}
		si, err := st.Info(ctx)
		if err != nil {
			return false
		}
		c, err := st.Consumer(ctx, consumer)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= si.State.LastSeq && ci.NumAckPending == 0 && ci.NumPending == 0
	}, "consumer %s did not finish stream %s", consumer, stream)
}
