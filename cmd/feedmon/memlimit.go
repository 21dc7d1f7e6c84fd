package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/feedmon/feedmon/internal/config"
)

// memLimitRatio is the share of a container's memory limit that the Go
// runtime is asked to keep its memory under: the rest is for what the
// runtime does not count (the binary, memory outside the Go heap, the
// page cache charged to the container).
const memLimitRatio = 0.9

// setMemoryLimit gives the Go runtime a soft memory limit of
// memLimitRatio of the memory limit of the container feedmon runs in, as
// limit reads it (memlimit.FromCgroup), unless GOMEMLIMIT is set (the
// runtime applies it itself; GOMEMLIMIT=off: no limit). The library reads
// AUTOMEMLIMIT for another share ("0.8") or none ("off"). Without a limit
// the garbage collector lets the heap grow to about twice what is live
// whatever the container allows: a first fetch of a long feed list could
// get the process killed for memory it would have collected. It returns
// the limit in force (math.MaxInt64: none).
func setMemoryLimit(log *slog.Logger, limit memlimit.Provider) int64 {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Debug("go memory limit from GOMEMLIMIT", "gomemlimit", v)
		return debug.SetMemoryLimit(-1)
	}
	n, err := memlimit.Set(memlimit.WithProvider(limit), memlimit.WithRatio(memLimitRatio))
	switch {
	case err != nil:
		// Not in a container, or one whose limit cannot be read.
		log.Debug("no container memory limit", "err", err)
	case n < math.MaxInt64:
		// The share is memLimitRatio unless AUTOMEMLIMIT gave another.
		log.Info("go memory limit set from the container's", "limit", config.ByteSize(n).String())
	}
	return debug.SetMemoryLimit(-1)
}
