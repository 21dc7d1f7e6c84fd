package testkit

import (
	"sync"
	"testing"
)

// failRecorder is a testing.TB that records failures instead of failing.
type failRecorder struct {
	testing.TB
	mu     sync.Mutex
	failed bool
}

func (r *failRecorder) Helper() {}
func (r *failRecorder) Errorf(string, ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

// TestNoLeftGoroutines: a goroutine started after the snapshot and still
// running fails the check; one that has ended, or one from before, does
// not. Not parallel: it counts goroutines.
func TestNoLeftGoroutines(t *testing.T) {
	older := make(chan struct{})
	defer close(older)
	go func() { <-older }()

	rec := &failRecorder{TB: t}
	check := NoLeftGoroutines(rec)
	ended := make(chan struct{})
	go func() { close(ended) }()
	<-ended
	check()
	if rec.failed {
		t.Fatal("an ended goroutine, or one from before, counted as left")
	}

	block := make(chan struct{})
	defer close(block)
	go func() { <-block }()
	check()
	if !rec.failed {
		t.Fatal("a goroutine left running was not reported")
	}
}
