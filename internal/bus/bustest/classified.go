package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/event"
)

// PublishClassified publishes it once per topic on the classified subjects,
// with the message ids the classifier gives, as the classifier does.
func PublishClassified(t testing.TB, b *bus.Bus, it *event.Item) {
	t.Helper()
	data, err := it.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range it.Topics {
		if _, err := b.Publish(ctx, event.ClassifiedSubject(topic), event.ClassifiedMsgID(it.ID, topic), data); err != nil {
			t.Fatal(err)
		}
	}
}
