package procstat_test

import (
	"runtime"
	"testing"

	"github.com/feedmon/feedmon/internal/procstat"
)

func TestCPUAndRSSGrow(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" {
		t.Skip("not measured on this system")
	}
	before := procstat.CPU()
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	if after := procstat.CPU(); after <= before {
		t.Fatalf("CPU did not grow: %v → %v (x=%d)", before, after, x)
	}
	if rss := procstat.PeakRSS(); rss < 1<<20 {
		t.Fatalf("peak RSS %d bytes, want at least 1 MiB", rss)
	}
}
