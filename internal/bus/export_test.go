package bus

import "github.com/nats-io/nats.go/jetstream"

// JetStream exposes the bus's JetStream context to the package's own
// tests, which inspect what the bus made (footprints, other accounts'
// streams) below the methods the services use.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }
