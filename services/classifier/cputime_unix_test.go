//go:build unix

package classifier

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used. Benchmarks report
// throughput per CPU-second as well as per wall-second, because on a
// shared machine wall time includes time spent waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
