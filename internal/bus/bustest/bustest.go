// Package bustest starts real embedded NATS servers with JetStream for
// tests: each test gets its own server and store, removed when it ends.
package bustest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
)

// New starts an in-process NATS server with JetStream (no TCP listener),
// connects to it and creates feedmon's streams. Both are closed when the
// test ends.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	return start(t, config.NATS{Replicas: 1, StoreDir: t.TempDir(), ConnectTimeout: config.Duration(5 * time.Second)})
}

// NewListening is New with a TCP listener on a random loopback port, for
// tests that connect other processes or clients; it returns the client URL.
func NewListening(t testing.TB) (*bus.Bus, string) {
	t.Helper()
	b := start(t, config.NATS{Replicas: 1, StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", ConnectTimeout: config.Duration(5 * time.Second)})
	return b, b.Embedded().ClientURL()
}

// Connect opens a second connection to the NATS at url, closed when the
// test ends.
func Connect(t testing.TB, url string) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), config.NATS{URL: url, Replicas: 1, ConnectTimeout: config.Duration(5 * time.Second)}, t.Name(), Logger(t))
	if err != nil {
		t.Fatalf("bustest: connect: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func start(t testing.TB, cfg config.NATS) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(context.Background(), cfg, t.Name(), Logger(t))
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("bustest: %v", err)
	}
	return b
}

// Logger is a logger for tests: quiet unless FEEDMON_TEST_LOG is set,
// in which case it writes through t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

// Eventually polls cond until it returns true or timeout passes, then
// fails the test with msg. Tests wait with it instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
