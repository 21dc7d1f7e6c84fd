//go:build !unix

package procstat

import "time"

// CPU is not measured on this system.
func CPU() time.Duration { return 0 }

// PeakRSS is not measured on this system.
func PeakRSS() int64 { return 0 }
