package testkit

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ownCode marks the frames of feedmon's own code in a goroutine's stack.
const ownCode = "github.com/feedmon/feedmon/"

// NoLeftGoroutines returns a function that fails the test when goroutines
// running feedmon's code, started after this call, are still running
// (given a moment, 500 ms, to return once they are done). Call it when
// the component under test has returned: everything it started must have
// ended.
//
// Only goroutines with a frame of feedmon's code count: the embedded NATS
// server and the client connection keep goroutines of their own for as
// long as the streams, consumers and connection exist, which is theirs to
// manage. The test must not run in parallel with others, whose goroutines
// would count.
func NoLeftGoroutines(t testing.TB) (check func()) {
	t.Helper()
	before := map[string]bool{}
	for id := range ownGoroutines() {
		before[id] = true
	}
	return func() {
		t.Helper()
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			left := map[string]string{}
			for id, stack := range ownGoroutines() {
				if !before[id] {
					left[id] = stack
				}
			}
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, stack := range left {
					t.Errorf("goroutine left running:\n%s", stack)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// ownGoroutines returns the stacks, by goroutine id, of the goroutines
// that are running feedmon's code (a frame of it, not only a "created by"
// line), other than the caller's.
func ownGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller's own
		}
		stack := string(g)
		header, _, _ := strings.Cut(stack, "\n")
		id := strings.Fields(header + " ?")[1]
		for _, line := range strings.Split(stack, "\n")[1:] {
			if strings.HasPrefix(line, ownCode) && !strings.HasPrefix(line, ownCode+"internal/testkit.Run") {
				out[id] = stack
				break
			}
		}
	}
	return out
}
