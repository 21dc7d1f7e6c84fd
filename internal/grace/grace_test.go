package grace_test

import (
	"context"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/testkit"
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

// TestContextLeavesNothing: after cancel, no goroutine of the grace
// period is left, whether the parent ended before or not. Not parallel:
// it counts goroutines.
func TestContextLeavesNothing(t *testing.T) {
	defer testkit.NoLeftGoroutines(t)()
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

// TestStopping: work on a grace context learns when its grace period
// begins, while its own context still runs.
func TestStopping(t *testing.T) {
	t.Parallel()
	if grace.Stopping(context.Background()) || grace.Stopped(context.Background()) != nil {
		t.Fatal("a plain context is stopping")
	}
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	work, cancel := grace.Context(parent, time.Hour)
	defer cancel()
	child, cancelChild := context.WithTimeout(work, time.Hour)
	defer cancelChild()
	if grace.Stopping(child) {
		t.Fatal("stopping while the parent runs")
	}
	cancelParent()
	select {
	case <-grace.Stopped(child):
	case <-time.After(5 * time.Second):
		t.Fatal("Stopped not closed after the parent ended")
	}
	if !grace.Stopping(child) || child.Err() != nil {
		t.Errorf("Stopping = %v, Err = %v; want true, nil during the grace period", grace.Stopping(child), child.Err())
	}
}
