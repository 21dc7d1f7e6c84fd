package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Run starts run (a service's Run) on its own goroutine and returns a
// function that cancels it and waits for it to return, failing the test
// if it returns an error or is still running 15 s after the cancel. The
// function is safe to call more than once and is called when the test
// ends.
func Run(t testing.TB, name string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("%s did not return within 15s of cancel", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
