package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

func TestCall(t *testing.T) {
	t.Parallel()
	b, url := bustest.NewListening(t)
	caller := bustest.Connect(t, url)
	var stopped atomic.Int32
	var ready atomic.Bool
	testkit.Run(t, "serve", func(ctx context.Context) error {
		return b.Serve(ctx, "test.call", "q", &ready, func(ctx context.Context, data []byte, reply func([]byte) error) {
			switch string(data) {
			case "count":
				for i := range 3 {
					_ = reply(fmt.Appendf(nil, "%d", i))
				}
			case "silent":
				// Says nothing; only the heartbeats show it is alive.
				// It runs until the caller gives up.
				<-ctx.Done()
				stopped.Add(1)
			}
		})
	})
	bustest.Eventually(t, 10*time.Second, ready.Load, "not serving")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	err := caller.Call(ctx, "test.call", []byte("count"), bus.CallOptions{}, func(r []byte) (bool, error) {
		got = append(got, string(r))
		return len(got) == 3, nil
	})
	if err != nil || strings.Join(got, ",") != "0,1,2" {
		t.Errorf("count: %v, %v", got, err)
	}

	// No one serves the subject: an answer at once.
	start := time.Now()
	err = caller.Call(ctx, "test.nobody", nil, bus.CallOptions{}, func([]byte) (bool, error) { return true, nil })
	if !errors.Is(err, bus.ErrNoResponders) || time.Since(start) > 2*time.Second {
		t.Errorf("nobody: %v after %s", err, time.Since(start))
	}

	// A server that says nothing but heartbeats is waited for beyond
	// Idle; when the caller gives up, the handler is told to stop.
	short, cancelShort := context.WithTimeout(ctx, 2*bus.CallHeartbeat+bus.CallHeartbeat/2)
	defer cancelShort()
	err = caller.Call(short, "test.call", []byte("silent"), bus.CallOptions{FirstReply: time.Second, Idle: bus.CallHeartbeat + bus.CallHeartbeat/2}, func([]byte) (bool, error) {
		t.Error("silent handler replied")
		return true, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent: %v, want the caller's deadline (heartbeats keep the call alive)", err)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return stopped.Load() == 1 }, "handler not stopped by the caller giving up")
}
