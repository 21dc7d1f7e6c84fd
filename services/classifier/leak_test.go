package classifier

import (
	"testing"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestRunLeavesNoGoroutines: once Run returns, nothing it started is
// still running: the consume loop, its handlers and the story follower.
// Not parallel: it counts goroutines.
func TestRunLeavesNoGoroutines(t *testing.T) {
	b := bustest.New(t)
	check := testkit.NoLeftGoroutines(t)
	_, stop := startStoryService(t, b)
	stop()
	check()
}
