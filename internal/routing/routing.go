// Package routing decides which of a subscriber's topics and filters let
// an item through. The notifier routes deliveries with it and the feed
// output builds each subscriber's feed with it, so that a subscriber's feed
// holds what its receivers are sent.
package routing

import (
	"slices"
	"strings"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// Filter is one subscriber's routing: its topics and its filters.
type Filter struct {
	// topics holds the subscriber's topics as subject tokens, which is how
	// a classified message's subject names its topic.
	topics map[string]bool

	// Filters; empty = any.
	feeds    map[string]bool
	langs    map[string]bool
	minScore float64
}

// New returns the routing of cs.
func New(cs *config.Subscriber) *Filter {
	f := &Filter{topics: map[string]bool{}, minScore: cs.MinScore}
	for _, t := range cs.Topics {
		f.topics[event.Token(t)] = true
	}
	for _, u := range cs.Feeds {
		if f.feeds == nil {
			f.feeds = map[string]bool{}
		}
		f.feeds[u] = true
	}
	for _, l := range cs.Languages {
		if f.langs == nil {
			f.langs = map[string]bool{}
		}
		f.langs[primaryLang(l)] = true
	}
	return f
}

// Wants reports whether the filters let it through on topic (a subject
// token of one of the subscriber's topics).
func (f *Filter) Wants(it *event.Item, topic string) bool {
	if len(f.feeds) > 0 && !f.feeds[it.FeedURL] {
		return false
	}
	if len(f.langs) > 0 && it.Lang != "" && !f.langs[primaryLang(it.Lang)] {
		return false
	}
	if f.minScore > 0 {
		best := 0.0
		for t, sc := range it.Scores {
			if event.Token(t) == topic {
				best = max(best, sc)
			}
		}
		if best < f.minScore {
			return false
		}
	}
	return true
}

// Routes reports whether the subscriber takes it from the message published
// on the subject of subjTopic. topics are the item's topics as Topics gives
// them. An item is published once per matched topic; a subscriber takes it
// only on the message of the first of the item's topics that it has and
// wants, so that it gets the item once however many of its topics matched.
func (f *Filter) Routes(topics []string, it *event.Item, subjTopic string) bool {
	for _, t := range topics {
		if f.Selects(it, t) {
			return t == subjTopic
		}
	}
	return false
}

// Selects reports whether the subscriber wants it on topic (a subject
// token): topic is one of its topics and the filters let it through. An
// item the subscriber selects on any of its topics is one it gets.
func (f *Filter) Selects(it *event.Item, topic string) bool {
	return f.topics[topic] && f.Wants(it, topic)
}

// Topics returns the item's topics as subject tokens, for Routes. A message
// whose subject's topic is not among its item's topics adds it: the
// subject is trusted rather than the item lost.
func Topics(it *event.Item, subjTopic string) []string {
	topics := make([]string, 0, len(it.Topics)+1)
	for _, t := range it.Topics {
		topics = append(topics, event.Token(t))
	}
	if !slices.Contains(topics, subjTopic) {
		topics = append(topics, subjTopic)
	}
	return topics
}

// primaryLang is the primary subtag of a language tag, lower case ("en-GB" → "en").
func primaryLang(tag string) string {
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	return strings.ToLower(tag)
}
