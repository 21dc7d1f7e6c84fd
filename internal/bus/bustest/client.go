package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
)

// Client opens a plain NATS client connection to the embedded server of b
// (from New or NewListening), closed when the test ends: for tests that
// act on NATS as another client would (subscribe, delete a stream or a
// consumer), below what the bus offers the services.
func Client(t testing.TB, b *bus.Bus) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns := b.Embedded()
	if ns == nil {
		t.Fatal("bustest: Client needs a bus with an embedded server")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name(t.Name()+" client"), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("bustest: client: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("bustest: client: %v", err)
	}
	return nc, js
}
