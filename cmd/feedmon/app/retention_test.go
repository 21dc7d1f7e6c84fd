package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/testkit"
)

// limitedConfig is the three services against an external NATS, with
// retention as doc says (nothing: the defaults).
func limitedConfig(t *testing.T, natsURL, feedURL, hookURL, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: {url: %q}
metrics: {listen: "127.0.0.1:0"}
poll: {interval: 1s, allow_networks: [127.0.0.0/8]}
feeds: [{url: %q}]
subscribers:
  - {name: desk, topics: [rare_earths, defense, trade], webhook: {url: %q, secret: %q}}
%s`, natsURL, feedURL, hookURL, secret, doc)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readyz(t *testing.T, m *app.Main) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + m.Telemetry.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyOnNATSWith1GiB runs every service against a nats-server with
// 1 GiB of JetStream storage and no retention keys: ready, and delivers.
func TestReadyOnNATSWith1GiB(t *testing.T) {
	t.Parallel()
	ns := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 })
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	sink := testkit.NewSink(t, secret)
	m := start(t, limitedConfig(t, ns.URLs(), feed.URL(), sink.URL(), ""), io.Discard)
	defer closeMain(t, m)

	bustest.Eventually(t, 30*time.Second, func() bool { return m.Ready() == nil }, "not ready: %v", m.Ready())
	if code, body := readyz(t, m); code != http.StatusOK {
		t.Errorf("/readyz = %d %q", code, body)
	}
	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) == 1 }, "no delivery")
}

// TestReadyzSaysWhatNATSRefused asks a 1 GiB server for 2 GB of items:
// /readyz answers 503 naming the key to change, and the log has one ERROR
// line about it, not one per retry.
func TestReadyzSaysWhatNATSRefused(t *testing.T) {
	t.Parallel()
	ns := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 })
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	sink := testkit.NewSink(t, secret)
	var rec bustest.Recorder
	cfg := limitedConfig(t, ns.URLs(), feed.URL(), sink.URL(), "retention: {items: {max_bytes: 2GB}}")
	m := &app.Main{Config: cfg, Log: rec.Logger(), Stdout: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer closeMain(t, m)

	var code int
	var body string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last /readyz: %d %q", code, body)
		}
	})
	bustest.Eventually(t, 30*time.Second, func() bool {
		code, body = readyz(t, m)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "retention.items.max_bytes")
	}, "/readyz never answered 503 naming retention.items.max_bytes")
	for _, want := range []string{"FEEDMON_ITEMS", "2GB", "insufficient storage"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body %q lacks %q", body, want)
		}
	}
	// Let every service retry several times.
	bustest.Eventually(t, 30*time.Second, func() bool {
		return len(rec.Lines(slog.LevelDebug, "setup refused")) >= 10
	}, "services did not retry")
	if lines := rec.Lines(slog.LevelError); len(lines) != 1 || !strings.Contains(lines[0], "key=retention.items.max_bytes") {
		t.Errorf("ERROR lines after %d retries = %q, want one naming retention.items.max_bytes",
			len(rec.Lines(slog.LevelDebug, "setup refused")), lines)
	}
	if len(sink.Items()) != 0 {
		t.Errorf("delivered %d items without an items stream", len(sink.Items()))
	}
}
