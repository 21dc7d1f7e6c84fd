package classifier

import "github.com/feedmon/feedmon/internal/event"

// ClassifyItem classifies an item as it arrives on feedmon.items.>: its
// title, its summary (plain text: the poller stripped the HTML) and its
// language. The service and `feedmon backtest` both classify through it,
// so that a backtest answers what the service would.
func (c *Classifier) ClassifyItem(it *event.Item, explain bool) Result {
	return c.classify(it.Title, it.Summary, it.Lang, explain)
}

// Topics returns the names of the topics c classifies into, in output
// order (TopicOrder).
func (c *Classifier) Topics() []string {
	names := make([]string, len(c.topics))
	for i := range c.topics {
		names[i] = c.topics[i].name
	}
	return names
}
