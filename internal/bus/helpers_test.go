package bus_test

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
)

func bustestConsume() bus.ConsumeOptions {
	return bus.ConsumeOptions{
		Stream: event.StreamItems,
		Consumer: jetstream.ConsumerConfig{
			Durable:       "t",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			FilterSubject: event.ItemsAll,
		},
		Workers: 2,
		Grace:   time.Second,
	}
}
