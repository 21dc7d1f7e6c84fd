// Package event is the contract in code: the item schema carried on NATS and
// the subject, stream and bucket names every service agrees on.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Item is one news item as it travels through feedmon. Raw items (on
// feedmon.items.>) leave the classification fields empty; classified items
// (on feedmon.classified.>) carry them.
type Item struct {
	ID        string `json:"id"`
	FeedURL   string `json:"feed_url"`
	FeedTitle string `json:"feed_title"`
	Title     string `json:"title"`
	Link      string `json:"link"`
	Summary   string `json:"summary"`
	Published string `json:"published"`
	FetchedAt string `json:"fetched_at"`
	// Lang is the item's language as the feed declares it (BCP 47 primary
	// subtag, e.g. "en", "ja"), empty when unknown.
	Lang string `json:"lang,omitempty"`

	Topics  []string            `json:"topics"`
	Scores  map[string]float64  `json:"scores,omitempty"`
	Matches map[string][]string `json:"matches,omitempty"`
	StoryID string              `json:"story_id,omitempty"`
}

// FetchedTime parses FetchedAt; the zero time when it is missing or malformed.
func (it *Item) FetchedTime() time.Time {
	t, err := time.Parse(time.RFC3339Nano, it.FetchedAt)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Marshal encodes the item as the JSON carried on NATS. Topics is always an
// array (never null) so consumers can iterate without a nil check.
func (it *Item) Marshal() ([]byte, error) {
	if it.Topics == nil {
		cp := *it
		cp.Topics = []string{}
		return json.Marshal(&cp)
	}
	return json.Marshal(it)
}

// Unmarshal decodes an item from its JSON form.
func Unmarshal(data []byte) (*Item, error) {
	var it Item
	if err := json.Unmarshal(data, &it); err != nil {
		return nil, fmt.Errorf("event: decode item: %w", err)
	}
	if it.ID == "" {
		return nil, fmt.Errorf("event: decode item: missing id")
	}
	return &it, nil
}

// Subject prefixes and wildcards.
const (
	ItemsPrefix      = "feedmon.items."
	ClassifiedPrefix = "feedmon.classified."
	AlertsPrefix     = "feedmon.alerts."
	DeadPrefix       = "feedmon.dead."

	ItemsAll      = ItemsPrefix + ">"
	ClassifiedAll = ClassifiedPrefix + ">"
	AlertsAll     = AlertsPrefix + ">"
	DeadAll       = DeadPrefix + ">"

	// ReplaySubject is where `feedmon replay` asks a running notifier
	// (core NATS, no stream) to send a window of history to a subscriber.
	ReplaySubject = "feedmon.notifier.replay"
)

// Stream, consumer and bucket names. They are part of the deployed state, so
// changing one is a migration.
const (
	StreamItems      = "FEEDMON_ITEMS"
	StreamClassified = "FEEDMON_CLASSIFIED"
	StreamAlerts     = "FEEDMON_ALERTS"
	StreamDead       = "FEEDMON_DEAD"

	ConsumerClassifier = "classifier"
	ConsumerNotifier   = "notifier"

	BucketFeeds     = "feedmon_feeds"
	BucketSeen      = "feedmon_seen"
	BucketDelivered = "feedmon_delivered"
	BucketLeases    = "feedmon_leases"
	BucketWebSub    = "feedmon_websub"
)

// ItemsSubject is where the poller publishes a new item of the feed at feedURL.
func ItemsSubject(feedURL string) string { return ItemsPrefix + FeedToken(feedURL) }

// ClassifiedSubject is where the classifier publishes an item matching topic.
func ClassifiedSubject(topic string) string { return ClassifiedPrefix + Token(topic) }

// AlertsSubject is where the nats receiver publishes one subscriber's alerts.
func AlertsSubject(subscriber string) string { return AlertsPrefix + Token(subscriber) }

// DeadSubject is where failed deliveries of one subscriber are kept.
func DeadSubject(subscriber string) string { return DeadPrefix + Token(subscriber) }

// FeedToken derives the subject token of a feed from its URL: the host with
// dots turned into underscores (readable in `nats sub` output) followed by a
// short hash of the whole URL (so two feeds on one host never share a token).
func FeedToken(feedURL string) string {
	host := ""
	if u, err := url.Parse(feedURL); err == nil {
		host = u.Hostname()
	}
	host = Token(strings.TrimPrefix(host, "www."))
	if host == "" {
		host = "feed"
	}
	if len(host) > 48 {
		host = host[:48]
	}
	sum := sha256.Sum256([]byte(feedURL))
	return host + "-" + hex.EncodeToString(sum[:4])
}

// Token makes s safe as one NATS subject token (and one KV key segment):
// anything outside [A-Za-z0-9_-] becomes '_'.
func Token(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ItemID gives the stable id of an item of feedURL from its key (GUID, link or
// content hash, chosen by the poller). Hashing with the feed URL keeps ids
// per feed: two feeds that reuse a GUID do not collide.
func ItemID(feedURL, key string) string {
	h := sha256.New()
	h.Write([]byte(feedURL))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ClassifiedMsgID is the Nats-Msg-Id of an item published on one topic.
func ClassifiedMsgID(itemID, topic string) string { return itemID + ":" + topic }

// FormatTime renders t as the RFC 3339 form used in messages (UTC). A
// fraction of a second is kept when t has one (fetched_at does, so that
// pipeline latency can be measured in milliseconds) and left out when it
// has none (feeds' publication dates).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
