package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream looks up one of feedmon's streams without creating or updating
// it, for commands that only read a running deployment (EnsureStream
// would create a missing stream and rewrite a stream's limits).
func (b *Bus) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := b.JS.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("bus: stream %s not found: no feedmon has run against this NATS", name)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", name, err)
	}
	return s, nil
}
