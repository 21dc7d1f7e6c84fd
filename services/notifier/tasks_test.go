package notifier

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestTasks: every task handed over runs once and is counted in its wait
// group, whether an idle goroutine takes it, a new one does, the pool is
// nil, or it has stopped.
func TestTasks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pool func() *tasks
	}{
		{"running", newTasks},
		{"nil", func() *tasks { return nil }},
		{"stopped", func() *tasks { p := newTasks(); p.stop(); return p }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.pool()
			var ran atomic.Int64
			// Rounds of parallel tasks: later rounds find idle goroutines.
			for range 20 {
				var wg sync.WaitGroup
				for range 50 {
					p.Go(&wg, func() { ran.Add(1) })
				}
				wg.Wait()
			}
			if got := ran.Load(); got != 20*50 {
				t.Errorf("ran %d tasks, want %d", got, 20*50)
			}
			if p != nil && tt.name == "running" {
				p.stop()
			}
		})
	}
}
