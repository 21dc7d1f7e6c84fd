package grace_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/feedmon/feedmon/internal/grace"
)

type key struct{}

func TestContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// act ends parent and/or calls cancel, then says how long the
		// work context may take to end at most and at least.
		act         func(cancelParent, cancel func())
		grace       time.Duration
		least, most time.Duration
	}{
		{"parent ends: work ends after the grace", func(p, _ func()) { p() }, 100 * time.Millisecond, 100 * time.Millisecond, 5 * time.Second},
		{"cancel ends work at once", func(_, c func()) { c() }, time.Hour, 0, 5 * time.Second},
		{"cancel during the grace", func(p, c func()) { p(); c() }, time.Hour, 0, 5 * time.Second},
		{"no grace", func(p, _ func()) { p() }, 0, 0, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
			defer cancelParent()
			work, cancel := grace.Context(parent, tc.grace)
			defer cancel()
			if work.Value(key{}) != "v" {
				t.Error("work context lost the parent's values")
			}
			start := time.Now()
			tc.act(cancelParent, cancel)
			select {
			case <-work.Done():
			case <-time.After(tc.most):
				t.Fatalf("work context still running %s after", tc.most)
			}
			if took := time.Since(start); took < tc.least {
				t.Errorf("work context ended after %s, want at least %s", took, tc.least)
			}
		})
	}
}

// TestContextRunsWithParent: while the parent runs, the work
// context runs too, however long the grace.
func TestContextRunsWithParent(t *testing.T) {
	t.Parallel()
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	work, cancel := grace.Context(parent, 0)
	defer cancel()
	select {
	case <-work.Done():
		t.Fatal("work context ended while its parent runs")
	case <-time.After(50 * time.Millisecond):
	}
}

// TestContextLeavesNothing: after cancel, no timer or goroutine of the
// grace period is left, whether the parent ended before or not.
func TestContextLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, endParent := range []bool{false, true} {
		parent, cancelParent := context.WithCancel(context.Background())
		work, cancel := grace.Context(parent, time.Hour)
		if endParent {
			cancelParent()
		}
		cancel()
		<-work.Done()
		cancelParent()
	}
}
