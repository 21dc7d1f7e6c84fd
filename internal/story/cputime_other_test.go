//go:build !unix

package story_test

import "time"

// processCPU is not measured here: the cpu-ns/item metric is left out.
func processCPU() time.Duration { return 0 }
