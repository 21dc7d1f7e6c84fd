package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
)

func TestEnsureIsIdempotent(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A second service starting against the same NATS must find everything
	// in place and change nothing.
	for i := 0; i < 2; i++ {
		if err := b.EnsureStreams(ctx); err != nil {
			t.Fatalf("EnsureStreams #%d: %v", i, err)
		}
		for _, bucket := range []string{event.BucketFeeds, event.BucketSeen, event.BucketDelivered, event.BucketLeases} {
			if _, err := b.KV(ctx, bucket); err != nil {
				t.Fatalf("KV %s #%d: %v", bucket, i, err)
			}
		}
	}
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != event.ItemsAll {
		t.Fatalf("items stream subjects = %v", got)
	}
}

func TestPublishDedupsByMsgID(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := b.Publish(ctx, event.ItemsSubject("https://example.org/a.rss"), "same-id", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestReplicasRefusedOnSingleNode(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	b.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := b.KV(ctx, event.BucketLeases)
	if err == nil {
		t.Fatal("R3 bucket on a single node: want an error")
	}
	t.Log(err)
}

// TestConsumeNaksOnShutdown: Consume returns once ctx ends, its handlers
// and grace timer gone. Not parallel: it counts goroutines.
func TestConsumeNaksOnShutdown(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	for i := 0; i < 5; i++ {
		if _, err := b.Publish(ctx, "feedmon.items.x", string(rune('a'+i)), []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	check := testkit.NoLeftGoroutines(t)
	handled := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Consume(ctx, bustestConsume(), func(_ context.Context, m jetstream.Msg) {
			_ = m.Ack()
			handled <- struct{}{}
		})
	}()
	for i := 0; i < 5; i++ {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatalf("handled %d of 5", i)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Consume did not return after cancel")
	}
	check()
}
