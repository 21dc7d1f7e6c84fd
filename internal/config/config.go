// Package config loads feedmon's YAML configuration: strict keys, ${ENV}
// expansion, FEEDMON_* overrides, defaults and validation. A Config is
// returned to the caller and passed down; nothing here is global.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/topics"
)

// Config is the whole configuration file.
type Config struct {
	NATS        NATS         `yaml:"nats"`
	Metrics     Metrics      `yaml:"metrics"`
	Log         Log          `yaml:"log"`
	Poll        Poll         `yaml:"poll"`
	Feeds       []Feed       `yaml:"feeds"`
	WebSub      WebSub       `yaml:"websub"`
	OPML        []string     `yaml:"opml"`
	Topics      topics.Set   `yaml:"topics"`
	SMTP        SMTP         `yaml:"smtp"`
	Notify      Notify       `yaml:"notify"`
	Stories     Stories      `yaml:"stories"`
	FeedsOut    FeedsOut     `yaml:"feeds_out"`
	Retention   Retention    `yaml:"retention"`
	Subscribers []Subscriber `yaml:"subscribers"`

	// Path is the file the config was read from ("" for the built-in defaults).
	Path string `yaml:"-"`
	// TopicSet is the effective topic set: built-ins merged with Topics.
	TopicSet topics.Set `yaml:"-"`
}

// NATS says where the message bus is.
type NATS struct {
	// URL of an external NATS (comma-separated for a cluster); empty starts
	// an embedded server.
	URL      string `yaml:"url"`
	Replicas int    `yaml:"replicas"`
	// Listen is the embedded server's client address; "" keeps it in-process.
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"store_dir"`
	// Credentials for an external NATS; optional.
	CredsFile string `yaml:"creds_file"`
	Token     string `yaml:"token"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	// ConnectTimeout bounds the first connection attempt.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// Retention is the top-level retention section, copied here when the
	// config is loaded: the bus is configured from NATS alone, and every
	// process that sets up streams must set them up alike.
	Retention Retention `yaml:"-"`
}

// Metrics configures the HTTP endpoint for /metrics, /healthz and /readyz.
type Metrics struct {
	Listen string `yaml:"listen"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Poll configures the poller.
type Poll struct {
	Interval      Duration `yaml:"interval"`
	Workers       int      `yaml:"workers"`
	PerHost       int      `yaml:"per_host"`
	AllowNetworks []string `yaml:"allow_networks"`
	// Timeout bounds one whole fetch (connect, headers and body).
	Timeout Duration `yaml:"timeout"`
	// MaxBodyBytes caps a feed body after decompression.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxItems caps the items taken from one fetch.
	MaxItems int `yaml:"max_items"`
	// MaxBackoff caps the delay after repeated errors.
	MaxBackoff Duration `yaml:"max_backoff"`
	// UserAgent overrides the default "feedmon/<version> (+<project URL>)".
	UserAgent string `yaml:"user_agent"`
}

// Feed is one feed to poll.
type Feed struct {
	URL      string   `yaml:"url"`
	Interval Duration `yaml:"interval"`
	Title    string   `yaml:"title"`
	// WebSub switches push on or off for this feed (default websub.enabled).
	WebSub *bool `yaml:"websub"`
	// Hub is a WebSub hub to subscribe at although the feed names none.
	Hub string `yaml:"hub"`
}

// WebSub configures the WebSub subscriber: feeds whose hubs push new items
// are subscribed to, and polled only every PollInterval while the push
// subscription is active.
type WebSub struct {
	Enabled bool `yaml:"enabled"`
	// Listen is the address of the callback server.
	Listen string `yaml:"listen"`
	// CallbackURL is the public base URL that reaches Listen; each
	// subscription gets a path of its own below it.
	CallbackURL string `yaml:"callback_url"`
	// Lease is the hub.lease_seconds asked for.
	Lease Duration `yaml:"lease"`
	// PollInterval is the safety poll of a feed while push is active.
	PollInterval Duration `yaml:"poll_interval"`
}

// Push reports whether f is to be subscribed to by WebSub: its own websub
// setting, else websub.enabled.
func (w WebSub) Push(f Feed) bool {
	if f.WebSub != nil {
		return *f.WebSub
	}
	return w.Enabled
}

// SMTP is the mail server used by email receivers.
type SMTP struct {
	Host         string `yaml:"host"`
	Port         int    `yaml:"port"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	From         string `yaml:"from"`
	TLS          string `yaml:"tls"` // none | starttls | tls
}

// Notify holds delivery settings shared by every receiver.
type Notify struct {
	// MaxAttempts is how often one delivery is tried before it is dead-lettered.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxAge is how long a delivery keeps being retried before it is dead-lettered.
	MaxAge Duration `yaml:"max_age"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `yaml:"timeout"`
	// Workers is how many classified items are delivered at once.
	Workers int `yaml:"workers"`
}

// Stories configures the grouping of near-duplicate reports into stories.
// Zero values take the story package's defaults.
type Stories struct {
	// Window is how far apart two reports of one story may be published.
	Window Duration `yaml:"window"`
	// Threshold is the similarity (0 to 1) from which two reports are one story.
	Threshold float64 `yaml:"threshold"`
	// MaxEntries caps the reports kept in memory per classifier.
	MaxEntries int `yaml:"max_entries"`
}

// FeedsOut configures the Atom and JSON feeds of every topic and subscriber
// served on metrics.listen.
type FeedsOut struct {
	// MaxItems is the number of entries of each feed.
	MaxItems int `yaml:"max_items"`
	// Token, when set, is required of every request (?token= or
	// Authorization: Bearer), since the listener may be reachable by others.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// Subscriber is someone who wants alerts on some topics.
type Subscriber struct {
	Name   string   `yaml:"name"`
	Topics []string `yaml:"topics"`

	// Optional filters: an item must also come from one of Feeds (URLs),
	// be in one of Languages (items whose feed declares no language pass),
	// and score at least MinScore on one of the subscriber's topics.
	Feeds     []string `yaml:"feeds"`
	Languages []string `yaml:"languages"`
	MinScore  float64  `yaml:"min_score"`

	// Digest sends one message per window instead of one per item.
	Digest *Digest `yaml:"digest"`
	// Quiet holds alerts during a daily window and sends them as one
	// digest when it ends.
	Quiet *Quiet `yaml:"quiet"`
	// GroupStories sends one alert per story: later reports of a story
	// already alerted are sent as updates (default true).
	GroupStories *bool `yaml:"group_stories"`

	Webhook *Webhook      `yaml:"webhook"`
	Slack   *Slack        `yaml:"slack"`
	Email   *Email        `yaml:"email"`
	Stdout  *Stdout       `yaml:"stdout"`
	NATS    *NATSReceiver `yaml:"nats"`
}

// Digest collects alerts and sends them together every Every.
type Digest struct {
	Every Duration `yaml:"every"`
}

// Quiet is a daily window, From to To (24-hour "HH:MM", To before From
// spans midnight) in the time zone TZ (IANA name, default UTC).
type Quiet struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	TZ   string `yaml:"tz"`
}

// RateLimit is a token bucket: PerSecond sends a second on average, Burst
// at once.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Webhook posts alerts as JSON to a URL.
type Webhook struct {
	URL        string     `yaml:"url"`
	URLFile    string     `yaml:"url_file"`
	Secret     string     `yaml:"secret"`
	SecretFile string     `yaml:"secret_file"`
	RateLimit  *RateLimit `yaml:"rate_limit"`
}

// StandardSecretPrefix marks a secret written the Standard Webhooks way:
// the base64 of the key bytes follows it.
const StandardSecretPrefix = "whsec_"

// StandardKey is the HMAC key of the Standard Webhooks signature: the
// secret's bytes as written (what the reference libraries call a raw
// key), or, for a secret written whsec_<base64>, the decoded bytes, as the
// specification's own secrets are.
func (w *Webhook) StandardKey() ([]byte, error) {
	enc, ok := strings.CutPrefix(w.Secret, StandardSecretPrefix)
	if !ok {
		return []byte(w.Secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%s secret: the part after the prefix is not base64: %w", StandardSecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New(StandardSecretPrefix + " secret: empty key")
	}
	return key, nil
}

// Slack posts alerts to a Slack incoming webhook.
type Slack struct {
	WebhookURL     string     `yaml:"webhook_url"`
	WebhookURLFile string     `yaml:"webhook_url_file"`
	RateLimit      *RateLimit `yaml:"rate_limit"`
}

// Email mails alerts through the smtp section's server.
type Email struct {
	To        []string   `yaml:"to"`
	RateLimit *RateLimit `yaml:"rate_limit"`
}

// GroupsStories reports whether the subscriber wants one alert per story.
func (s *Subscriber) GroupsStories() bool { return s.GroupStories == nil || *s.GroupStories }

// QuietWindow parses Quiet: offsets from midnight and the location.
func (q *Quiet) QuietWindow() (from, to time.Duration, loc *time.Location, err error) {
	if from, err = clock(q.From); err != nil {
		return 0, 0, nil, fmt.Errorf("from: %w", err)
	}
	if to, err = clock(q.To); err != nil {
		return 0, 0, nil, fmt.Errorf("to: %w", err)
	}
	if from == to {
		return 0, 0, nil, fmt.Errorf("from and to are the same time")
	}
	loc = time.UTC
	if q.TZ != "" {
		if loc, err = time.LoadLocation(q.TZ); err != nil {
			return 0, 0, nil, fmt.Errorf("tz: unknown time zone %q", q.TZ)
		}
	}
	return from, to, loc, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Stdout prints one line per alert.
type Stdout struct{}

// NATSReceiver publishes alerts on feedmon.alerts.<subscriber>.
type NATSReceiver struct{}

// Receivers lists the names of the receivers a subscriber has configured.
func (s *Subscriber) Receivers() []string {
	var out []string
	if s.Webhook != nil {
		out = append(out, "webhook")
	}
	if s.Slack != nil {
		out = append(out, "slack")
	}
	if s.Email != nil {
		out = append(out, "email")
	}
	if s.Stdout != nil {
		out = append(out, "stdout")
	}
	if s.NATS != nil {
		out = append(out, "nats")
	}
	return out
}

// Error is a configuration error that names the key at fault. Commands
// exit with status 2 on it.
type Error struct {
	Key string
	Msg string

	unset bool // an unset ${NAME}: the cause of whatever else is wrong with Key
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Msg
	}
	return fmt.Sprintf("config: %s: %s", e.Key, e.Msg)
}

// Unset reports whether the error is an environment variable (${NAME}) that
// is not set: the rest of the config may still serve a process that does
// not use the value (a command that leaves the sending to the notifier,
// which has the secret).
func (e *Error) Unset() bool { return e.unset }

func errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}
