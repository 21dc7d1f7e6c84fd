//go:build unix

// Package procstat reads what this process has used so far: CPU time and
// peak resident memory. Benchmarks report throughput per CPU-second as well
// as per wall-second, because on a shared machine wall time includes time
// spent waiting for a core.
package procstat

import (
	"runtime"
	"syscall"
	"time"
)

// CPU is the CPU time (user + system) this process has used; 0 when the
// system does not say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is the most resident memory this process has had, in bytes; 0
// when the system does not say.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // kilobytes on Linux and the BSDs
}
