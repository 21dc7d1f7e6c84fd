// Package config loads feedmon's YAML configuration: strict keys, ${ENV}
// expansion, FEEDMON_* overrides, defaults and validation. A Config is
// returned to the caller and passed down; nothing here is global.
package config

import (
	"fmt"
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
	OPML        []string     `yaml:"opml"`
	Topics      topics.Set   `yaml:"topics"`
	SMTP        SMTP         `yaml:"smtp"`
	Notify      Notify       `yaml:"notify"`
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

// Subscriber is someone who wants alerts on some topics.
type Subscriber struct {
	Name   string   `yaml:"name"`
	Topics []string `yaml:"topics"`

	Webhook *Webhook      `yaml:"webhook"`
	Slack   *Slack        `yaml:"slack"`
	Email   *Email        `yaml:"email"`
	Stdout  *Stdout       `yaml:"stdout"`
	NATS    *NATSReceiver `yaml:"nats"`
}

// Webhook posts alerts as JSON to a URL.
type Webhook struct {
	URL        string `yaml:"url"`
	URLFile    string `yaml:"url_file"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// Slack posts alerts to a Slack incoming webhook.
type Slack struct {
	WebhookURL     string `yaml:"webhook_url"`
	WebhookURLFile string `yaml:"webhook_url_file"`
}

// Email mails alerts through the smtp section's server.
type Email struct {
	To []string `yaml:"to"`
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

// FeedInterval is the poll interval of f: its own, else the default.
func (c *Config) FeedInterval(f Feed) time.Duration {
	if f.Interval > 0 {
		return f.Interval.D()
	}
	return c.Poll.Interval.D()
}

// Error is a configuration error that names the key at fault. Commands
// exit with status 2 on it.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Msg
	}
	return fmt.Sprintf("config: %s: %s", e.Key, e.Msg)
}

func errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}
