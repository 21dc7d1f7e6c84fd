package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestWatchLagReturnsWhenDone: WatchLag runs until its context ends and
// then returns, leaving nothing behind; the gauges are there meanwhile.
// Not parallel: it counts goroutines.
func TestWatchLagReturnsWhenDone(t *testing.T) {
	b := bustest.New(t)
	reg := prometheus.NewRegistry()
	check := testkit.NoLeftGoroutines(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WatchLag(ctx, reg, 10*time.Millisecond, []bus.ConsumerRef{{Stream: event.StreamItems, Consumer: event.ConsumerClassifier}})
	}()
	bustest.Eventually(t, 5*time.Second, func() bool {
		mfs, err := reg.Gather()
		return err == nil && len(mfs) == 2
	}, "lag gauges not registered")
	select {
	case <-done:
		t.Fatal("WatchLag returned before its context ended")
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchLag still running 5s after its context ended")
	}
	check()
}
