package config

import "github.com/feedmon/feedmon/internal/topics"

// Each service is given the part of the config it reads, and no more: the
// sections readers assigns to it. A service cannot come to depend on a key
// that `feedmon check` does not check for it, and its tests build only what
// it uses.

// PollerConfig is what the poller reads: poll, feeds, opml and websub.
type PollerConfig struct {
	Poll   Poll
	Feeds  []Feed
	OPML   []string
	WebSub WebSub
}

// ClassifierConfig is what the classifier reads: the effective topic set
// (the built-in topics merged with the topics section) and stories.
type ClassifierConfig struct {
	Topics  topics.Set
	Stories Stories
}

// NotifierConfig is what the notifier reads: notify, smtp and subscribers.
type NotifierConfig struct {
	Notify      Notify
	SMTP        SMTP
	Subscribers []Subscriber
}

// FeedsOutConfig is what the topic and subscriber feeds read, served by the
// processes that run the notifier: feeds_out, the topic names and the
// subscribers.
type FeedsOutConfig struct {
	FeedsOut    FeedsOut
	Topics      topics.Set
	Subscribers []Subscriber
}

// PollerConfig returns the poller's part of c.
func (c *Config) PollerConfig() PollerConfig {
	return PollerConfig{Poll: c.Poll, Feeds: c.Feeds, OPML: c.OPML, WebSub: c.WebSub}
}

// ClassifierConfig returns the classifier's part of c.
func (c *Config) ClassifierConfig() ClassifierConfig {
	return ClassifierConfig{Topics: c.TopicSet, Stories: c.Stories}
}

// NotifierConfig returns the notifier's part of c.
func (c *Config) NotifierConfig() NotifierConfig {
	return NotifierConfig{Notify: c.Notify, SMTP: c.SMTP, Subscribers: c.Subscribers}
}

// FeedsOutConfig returns the part of c the topic and subscriber feeds read.
func (c *Config) FeedsOutConfig() FeedsOutConfig {
	return FeedsOutConfig{FeedsOut: c.FeedsOut, Topics: c.TopicSet, Subscribers: c.Subscribers}
}
