package notifier

import (
	"testing"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestRunLeavesNoGoroutines: once Run returns, nothing it started is
// still running: the consume loop and its handlers, the flusher, the
// parker, their grace timers. Not parallel: it counts goroutines.
func TestRunLeavesNoGoroutines(t *testing.T) {
	b := bustest.New(t)
	sk := newSink(t, nil)
	cfg := testConfig(config.Subscriber{
		Name:    "analysts",
		Topics:  []string{"rare_earths"},
		Webhook: &config.Webhook{URL: sk.srv.URL + "/hook"},
	})
	check := testkit.NoLeftGoroutines(t)
	r := startService(t, b, cfg)
	publishItem(t, b, testItem("item-1", "rare_earths"))
	bustest.Eventually(t, waitLong, func() bool { return sk.count() >= 1 }, "no webhook request")
	waitHandled(t, b)
	r.stop()
	check()
}
