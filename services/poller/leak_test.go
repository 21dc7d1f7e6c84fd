package poller

import (
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestRunLeavesNoGoroutines: once Run returns, nothing it started is
// still running: fetches, the host watcher, lease releases of removed
// feeds. Not parallel: it counts goroutines.
func TestRunLeavesNoGoroutines(t *testing.T) {
	srv := newFeedServer(t, serveXML(fixture(t, "atom.xml"), "application/atom+xml", ""))
	a, b := srv.URL+"/a", srv.URL+"/b"
	h := newHarness(t, nil, fastConfig(50*time.Millisecond, a, b), WithHostGap(0), noJitter)
	check := testkit.NoLeftGoroutines(t)
	stop := run(t, h.svc)
	bustest.Eventually(t, 10*time.Second, func() bool { return srv.hits.Load() >= 4 }, "feeds not polled")
	// b removed: its lease is released in the background.
	if err := h.svc.Reload(*fastConfig(50*time.Millisecond, a)); err != nil {
		t.Fatal(err)
	}
	n := srv.hits.Load()
	bustest.Eventually(t, 10*time.Second, func() bool { return srv.hits.Load() >= n+2 }, "not polled after reload")
	stop()
	check()
}
