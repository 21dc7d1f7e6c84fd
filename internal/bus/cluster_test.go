package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// TestClusterR3SurvivesNodeLoss creates feedmon's R3 streams and buckets on
// a 3-node cluster and keeps publishing and reading KV with a node down.
func TestClusterR3SurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	c := bustest.NewCluster(t, 3)
	b, err := bus.Connect(context.Background(), config.NATS{URL: c.URLs(), Replicas: 3, ConnectTimeout: config.Duration(5 * time.Second)}, t.Name(), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := bus.Retry(ctx, bustest.Logger(t), "streams", b.EnsureStreams); err != nil {
		t.Fatal(err)
	}
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("replicas = %d", r)
	}
	kv, err := b.KV(ctx, event.BucketSeen)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := b.Publish(ctx, "feedmon.items.x", fmt.Sprint(i), []byte("m")); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(0, 50)
	if _, err := kv.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}

	c.Stop(1)
	publish(50, 100)
	if _, err := kv.Put(ctx, "k", []byte("v2")); err != nil {
		t.Fatalf("kv put with a node down: %v", err)
	}
	c.Start(1)
	c.WaitReady()
	publish(100, 150)

	bustest.Eventually(t, 30*time.Second, func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 150
	}, "stream does not hold 150 messages")
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v2" {
		t.Fatalf("kv = %v, %v", e, err)
	}
}

// TestReplicasChangeOnExistingDeployment raises nats.replicas from 1 to 3 on
// a running cluster: the streams and buckets are scaled up in place.
func TestReplicasChangeOnExistingDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t.Parallel()
	c := bustest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, replicas := range []int{1, 3} {
		b, err := bus.Connect(ctx, config.NATS{URL: c.URLs(), Replicas: replicas, ConnectTimeout: config.Duration(5 * time.Second)}, t.Name(), bustest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Retry(ctx, bustest.Logger(t), "streams", b.EnsureStreams); err != nil {
			t.Fatal(err)
		}
		kv, err := b.KV(ctx, event.BucketFeeds)
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Stream(ctx, event.StreamClassified)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != replicas {
			t.Errorf("stream replicas = %d, want %d", got, replicas)
		}
		// Scaling a stream up takes a moment while the new peers catch up.
		bustest.Eventually(t, 30*time.Second, func() bool {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := kv.Put(pctx, "k", []byte("v"))
			if err != nil {
				t.Log(err)
			}
			return err == nil
		}, "kv put after changing replicas to %d", replicas)
		// A bucket is a stream named KV_<bucket>.
		ks, err := b.Stream(ctx, "KV_"+event.BucketFeeds)
		if err != nil {
			t.Fatal(err)
		}
		if got := ks.CachedInfo().Config.Replicas; got != replicas {
			t.Errorf("bucket replicas = %d, want %d", got, replicas)
		}
		b.Close()
	}
}
