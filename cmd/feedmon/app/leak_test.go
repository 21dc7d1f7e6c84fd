package app_test

import (
	"io"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestCloseLeavesNoGoroutines: once Close returns, nothing Start began is
// still running: the services, the stream set-up, the lag watcher, the
// metrics server. Not parallel: it counts goroutines.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	feed := testkit.NewFeedServer(t, readFixture(t, "reference.xml"))
	sink := testkit.NewSink(t, secret)
	cfg := testConfig(t, t.TempDir(), feed.URL(), sink.URL())
	check := testkit.NoLeftGoroutines(t)
	m := start(t, cfg, io.Discard)
	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) >= 1 }, "no delivery")
	closeMain(t, m)
	check()
}
