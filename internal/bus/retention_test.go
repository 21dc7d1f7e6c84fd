package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

var (
	allStreams = []string{event.StreamItems, event.StreamClassified, event.StreamAlerts, event.StreamDead}
	allBuckets = []string{event.BucketFeeds, event.BucketSeen, event.BucketLeases, event.BucketDelivered, event.BucketWebSub}
)

// natsConfig is what a user with an external NATS writes: a URL and
// nothing about retention (the config's defaults).
func natsConfig(t *testing.T, url string, replicas int, doc string) config.NATS {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	n.URL, n.Replicas, n.ConnectTimeout = url, replicas, config.Duration(5*time.Second)
	return n
}

func connectTo(t *testing.T, n config.NATS) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), n, t.Name(), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// setUp creates every stream and bucket, as the three services do between
// them, retrying like they do until timeout.
func setUp(ctx context.Context, b *bus.Bus) error {
	if err := b.EnsureStreams(ctx); err != nil {
		return err
	}
	for _, name := range allBuckets {
		if _, err := b.KV(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// footprint sums MaxBytes × replicas over feedmon's streams and buckets,
// and fails the test on any of them without a byte cap.
func footprint(t *testing.T, js jetstream.JetStream) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sum int64
	names := append([]string(nil), allStreams...)
	for _, b := range allBuckets {
		names = append(names, "KV_"+b)
	}
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		c := s.CachedInfo().Config
		if c.MaxBytes <= 0 {
			t.Errorf("%s has no byte cap (MaxBytes %d): it could fill the server, which then refuses every write", name, c.MaxBytes)
		}
		if c.MaxAge <= 0 && name[:3] != "KV_" {
			t.Errorf("%s has no age limit", name)
		}
		if name[:3] != "KV_" && c.Discard != jetstream.DiscardOld {
			t.Errorf("%s discards %v, want old items dropped first", name, c.Discard)
		}
		t.Logf("%s: max_bytes %s max_age %s replicas %d", name, config.ByteSize(c.MaxBytes), c.MaxAge, c.Replicas)
		sum += c.MaxBytes * int64(c.Replicas)
	}
	return sum
}

// TestReadyOnServerWithLittleStorage is a nats-server with 1 GiB (or 1 GB)
// of JetStream file storage and a config without retention keys: every
// stream and bucket must be created, within what the server has.
func TestReadyOnServerWithLittleStorage(t *testing.T) {
	t.Parallel()
	for _, store := range []int64{1 << 30, 1_000_000_000} {
		t.Run(config.ByteSize(store).String(), func(t *testing.T) {
			t.Parallel()
			c := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = store })
			b := connectTo(t, natsConfig(t, c.URLs(), 1, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := setUp(ctx, b); err != nil {
				t.Fatalf("setup on a server with %s: %v", config.ByteSize(store), err)
			}
			if sum := footprint(t, b.JetStream()); sum > store {
				t.Errorf("feedmon reserves %s, the server has %s", config.ByteSize(sum), config.ByteSize(store))
			}
		})
	}
}

// TestReadyInAccountWithLimits is an account with 1 GiB of JetStream file
// storage that requires every stream to state its size (as hosted NATS and
// operator-mode accounts do), part of which another application already
// holds.
func TestReadyInAccountWithLimits(t *testing.T) {
	t.Parallel()
	url := bustest.NewServerFromConfig(t, "testdata/accounts.conf")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	other := connectTo(t, withUser(natsConfig(t, url, 1, ""), "other"))
	const otherBytes = 300 << 20
	if _, err := other.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}, MaxBytes: otherBytes}); err != nil {
		t.Fatal(err)
	}

	b := connectTo(t, withUser(natsConfig(t, url, 1, ""), "feedmon"))
	if err := setUp(ctx, b); err != nil {
		t.Fatalf("setup in an account with 1 GiB: %v", err)
	}
	if sum := footprint(t, b.JetStream()); sum > 1<<30-otherBytes {
		t.Errorf("feedmon reserves %s; the account has 1GiB, of which %s is another's", config.ByteSize(sum), config.ByteSize(otherBytes))
	}
	// A second service starting later finds the same plan: nothing changes.
	before := footprint(t, b.JetStream())
	b2 := connectTo(t, withUser(natsConfig(t, url, 1, ""), "feedmon"))
	if err := setUp(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if after := footprint(t, b.JetStream()); after != before {
		t.Errorf("a second service changed the caps: %d → %d bytes", before, after)
	}
}

func withUser(n config.NATS, user string) config.NATS {
	n.User, n.Password = user, user
	return n
}

// TestReadyOnR3ClusterWith4GBANode is three nodes with 4 GB of JetStream
// storage each and nats.replicas 3: every node holds a replica of every
// stream, so all of them together must fit in one node's 4 GB.
func TestReadyOnR3ClusterWith4GBANode(t *testing.T) {
	t.Parallel()
	const perNode = 4_000_000_000
	c := bustest.NewCluster(t, 3, func(o *server.Options) { o.JetStreamMaxStore = perNode })
	b := connectTo(t, natsConfig(t, c.URLs(), 3, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := bus.Retry(ctx, bustest.Logger(t), "setup", func(ctx context.Context) error { return setUp(ctx, b) }); err != nil {
		t.Fatalf("setup on 3 × 4GB with replicas 3: %v", err)
	}
	if sum := footprint(t, b.JetStream()); sum/3 > perNode {
		t.Errorf("each node holds %s, it has %s", config.ByteSize(sum/3), config.ByteSize(perNode))
	}
}

// TestRefusalNamesTheKeyOnce asks a 1 GiB server for 2 GB of items: the
// stream is refused with an error that names the stream, what was asked,
// the key to change and what NATS has, logged as one ERROR however often
// the services retry.
func TestRefusalNamesTheKeyOnce(t *testing.T) {
	t.Parallel()
	c := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 })
	var rec bustest.Recorder
	b, err := bus.Connect(context.Background(), natsConfig(t, c.URLs(), 1, "retention: {items: {max_bytes: 2GB}}"), t.Name(), rec.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if b.SetupError() != nil {
		t.Fatalf("setup error before any attempt: %v", b.SetupError())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	attempts := 0
	for ; attempts < 5; attempts++ {
		err = b.EnsureStreams(ctx)
		if err == nil {
			t.Fatal("2GB of items on a 1GiB server: want a refusal")
		}
	}
	var refused *bus.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("error %v (%T) is not a RefusedError", err, err)
	}
	t.Log(err)
	for _, want := range []string{"FEEDMON_ITEMS", "retention.items.max_bytes", "2GB", "insufficient storage"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if refused.Key != "retention.items.max_bytes" || refused.Has == "" {
		t.Errorf("refusal = %+v", refused)
	}
	if lines := rec.Lines(slog.LevelError); len(lines) != 1 {
		t.Errorf("%d ERROR lines after %d attempts, want 1: %q", len(lines), attempts, lines)
	} else {
		for _, want := range []string{"stream=FEEDMON_ITEMS", "key=retention.items.max_bytes", "asked=2GB", "server=insufficient storage", "has="} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("ERROR line %q lacks %q", lines[0], want)
			}
		}
	}
	if err := b.SetupError(); err == nil || !strings.Contains(err.Error(), "retention.items.max_bytes") {
		t.Errorf("SetupError = %v, want the refusal", err)
	}
}

// TestRefusedStreamCount is an account that allows fewer streams than
// feedmon needs.
func TestRefusedStreamCount(t *testing.T) {
	t.Parallel()
	url := bustest.NewServerFromConfig(t, "testdata/accounts.conf")
	var rec bustest.Recorder
	b, err := bus.Connect(context.Background(), withUser(natsConfig(t, url, 1, ""), "few"), t.Name(), rec.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 {
		err = setUp(ctx, b)
	}
	var refused *bus.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("error %v is not a RefusedError", err)
	}
	t.Log(err)
	if !strings.Contains(refused.Has, "allows 3 streams") || !strings.Contains(refused.Fix, "max_streams") {
		t.Errorf("refusal = %+v", refused)
	}
	if lines := rec.Lines(slog.LevelError, "maximum number of streams"); len(lines) != 1 {
		t.Errorf("ERROR lines = %q, want 1", lines)
	}
}

// TestRetentionChangeUpdatesInPlace changes max_age and max_bytes of a
// deployment that already holds messages: the streams are updated, not
// recreated, and the delivered log's TTL follows the longest max_age.
func TestRetentionChangeUpdatesInPlace(t *testing.T) {
	t.Parallel()
	c := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	old := connectTo(t, natsConfig(t, c.URLs(), 1, ""))
	if err := setUp(ctx, old); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := old.Publish(ctx, event.ItemsSubject("https://example.org/a.rss"), fmt.Sprint(i), []byte("m")); err != nil {
			t.Fatal(err)
		}
	}

	changed := connectTo(t, natsConfig(t, c.URLs(), 1, `
retention:
  items: {max_age: 24h, max_bytes: 100MB}
  dead: {max_age: 2160h}
`))
	if err := setUp(ctx, changed); err != nil {
		t.Fatalf("setup with changed retention: %v", err)
	}
	s, err := changed.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 24*time.Hour || info.Config.MaxBytes != 100_000_000 {
		t.Errorf("items stream max_age %s max_bytes %d, want 24h and 100MB", info.Config.MaxAge, info.Config.MaxBytes)
	}
	if info.State.Msgs != 3 {
		t.Errorf("items stream holds %d messages after the update, want the 3 it had", info.State.Msgs)
	}
	d, err := changed.Stream(ctx, event.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.CachedInfo().Config.MaxAge; got != 2160*time.Hour {
		t.Errorf("dead stream max_age %s, want 2160h", got)
	}
	kv, err := changed.Stream(ctx, "KV_"+event.BucketDelivered)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := kv.CachedInfo().Config.MaxAge; ttl <= 2160*time.Hour {
		t.Errorf("delivered log TTL %s does not outlive retention.dead.max_age 2160h", ttl)
	}
	if sum := footprint(t, changed.JetStream()); sum > 1<<30 {
		t.Errorf("after the change feedmon reserves %s of 1GiB", config.ByteSize(sum))
	}
}

// TestStoredItemSize measures what one item takes in the items stream,
// the figure README's sizing notes rest on (about 0.8 KB with a 300
// character summary, 2.5 KB at the 2,000-character maximum).
func TestStoredItemSize(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ summary, most int }{{300, 900}, {2000, 2600}} {
		now := time.Now().UTC().Format(time.RFC3339)
		data, err := json.Marshal(&event.Item{
			ID: strings.Repeat("i", 40), FeedURL: "https://www.example.org/news/world/rss.xml", FeedTitle: "Example World News",
			Title: strings.Repeat("t", 90), Link: "https://www.example.org/news/world/2026/12/04/a-story-slug-of-the-usual-length",
			Summary: strings.Repeat("s", tt.summary), Published: now, FetchedAt: now,
		})
		if err != nil {
			t.Fatal(err)
		}
		before, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		for i := range n {
			if _, err := b.Publish(ctx, event.ItemsSubject("https://www.example.org/news/world/rss.xml"), fmt.Sprint(tt.summary, "-", i), data); err != nil {
				t.Fatal(err)
			}
		}
		after, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		per := (after.State.Bytes - before.State.Bytes) / n
		t.Logf("summary of %d characters: %d bytes of JSON, %d bytes stored a message", tt.summary, len(data), per)
		if per > uint64(tt.most) {
			t.Errorf("an item with a %d-character summary takes %d bytes, README says at most about %d", tt.summary, per, tt.most)
		}
	}
}
