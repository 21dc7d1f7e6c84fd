package main

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestSetMemoryLimit(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name       string
		gomemlimit string
		automem    string // AUTOMEMLIMIT; "" unset
		limit      memlimit.Provider
		want       int64
	}{
		{name: "container limit", limit: memlimit.Limit(gib), want: gib * 9 / 10},
		{name: "container without a limit", limit: func() (uint64, error) { return 0, memlimit.ErrNoLimit }, want: math.MaxInt64},
		{name: "not in a container", limit: func() (uint64, error) { return 0, errors.New("no cgroup") }, want: math.MaxInt64},
		// The runtime applied GOMEMLIMIT at start (here: none); the
		// container's limit does not replace it.
		{name: "GOMEMLIMIT set", gomemlimit: "off", limit: memlimit.Limit(gib), want: math.MaxInt64},
		// AUTOMEMLIMIT, as the README documents it: another share of the
		// container's limit, or none.
		{name: "AUTOMEMLIMIT share", automem: "0.5", limit: memlimit.Limit(gib), want: gib / 2},
		{name: "AUTOMEMLIMIT off", automem: "off", limit: memlimit.Limit(gib), want: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := debug.SetMemoryLimit(math.MaxInt64)
			t.Cleanup(func() { debug.SetMemoryLimit(prev) })
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			// The library's own knob (t.Setenv restores it).
			t.Setenv("AUTOMEMLIMIT", tt.automem)
			if tt.automem == "" {
				os.Unsetenv("AUTOMEMLIMIT")
			}
			if got := setMemoryLimit(slog.New(slog.DiscardHandler), tt.limit); got != tt.want {
				t.Errorf("memory limit %d, want %d", got, tt.want)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("runtime memory limit %d, want %d", got, tt.want)
			}
		})
	}
}
