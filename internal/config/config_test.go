package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/config"
)

func env(m map[string]string) config.LookupEnv {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadEnv("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "" || cfg.NATS.StoreDir != "./feedmon-data" || cfg.NATS.Listen != "127.0.0.1:4222" {
		t.Errorf("nats defaults = %+v", cfg.NATS)
	}
	if n := len(cfg.Feeds); n < 12 || n > 20 {
		t.Errorf("built-in feeds: %d, want about 15", n)
	}
	if len(cfg.Subscribers) != 1 || cfg.Subscribers[0].Stdout == nil {
		t.Fatalf("default subscriber = %+v", cfg.Subscribers)
	}
	for _, want := range []string{"rare_earths", "defense", "trade"} {
		found := false
		for _, got := range cfg.Subscribers[0].Topics {
			found = found || got == want
		}
		if !found {
			t.Errorf("default subscriber lacks topic %s: %v", want, cfg.Subscribers[0].Topics)
		}
	}
	if cfg.Poll.Interval.D() != 5*time.Minute || cfg.Poll.Workers != 64 || cfg.Poll.PerHost != 2 {
		t.Errorf("poll defaults = %+v", cfg.Poll)
	}
	if cfg.FeedsOut.MaxItems != 100 || cfg.FeedsOut.Token != "" {
		t.Errorf("feeds_out defaults = %+v", cfg.FeedsOut)
	}
}

const good = `
nats:
  url: nats://127.0.0.1:4222
  replicas: 1
metrics:
  listen: 127.0.0.1:0
poll:
  interval: 1m
  workers: 8
  per_host: 1
  allow_networks: [127.0.0.0/8, "::1"]
feeds:
  - url: https://example.org/world.rss
    interval: 30s
subscribers:
  - name: analysts
    topics: [rare_earths, trade]
    webhook: {url: "http://127.0.0.1:8099/hook", secret: "${HOOK_SECRET}"}
    stdout: {}
`

func TestParseGood(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(good), env(map[string]string{"HOOK_SECRET": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Subscribers[0].Webhook.Secret; got != "s3cret" {
		t.Errorf("secret = %q", got)
	}
	if got := cfg.Feeds[0].Interval.D(); got != 30*time.Second {
		t.Errorf("feed interval = %s", got)
	}
	if got := cfg.Poll.Timeout.D(); got != config.DefaultFetchTimeout {
		t.Errorf("unset key lost its default: poll.timeout = %s", got)
	}
	if len(cfg.Feeds) != 1 {
		t.Errorf("a config file's feeds replace the built-in ones: got %d", len(cfg.Feeds))
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		key  string // must appear in the error
	}{
		{"unknown top-level key", "bogus: 1\n", nil, "bogus: unknown key"},
		{"unknown nested key", "poll:\n  intervall: 1m\n", nil, `poll.intervall: unknown key (did you mean "interval"?)`},
		{"unknown key in a list item", "feeds:\n  - url: https://a.example/x\n    colour: red\n", nil, "feeds[0].colour: unknown key"},
		{"unknown receiver key", "subscribers:\n  - name: a\n    topics: [trade]\n    webhook: {uri: http://x.example/}\n", nil, "subscribers[0].webhook.uri: unknown key"},
		{"bad duration", "poll:\n  interval: soon\n", nil, "poll.interval"},
		{"too short interval", "poll:\n  interval: 10ms\n", nil, "poll.interval: must be at least 1s"},
		{"bad int", "poll:\n  workers: many\n", nil, "poll.workers: invalid value"},
		{"websub without callback", "websub:\n  enabled: true\n", nil, "websub.callback_url: missing"},
		{"feed push without callback", "feeds:\n  - url: https://a.example/x\n    websub: true\n", nil, "websub.callback_url: missing"},
		{"relative callback", "websub:\n  enabled: true\n  callback_url: /websub\n", nil, "websub.callback_url: invalid URL"},
		{"callback scheme", "websub:\n  callback_url: ftp://x.example/websub\n", nil, "websub.callback_url: invalid URL"},
		{"callback query", "websub:\n  callback_url: https://x.example/websub?a=1\n", nil, "websub.callback_url: invalid URL"},
		{"websub listen", "websub:\n  enabled: true\n  callback_url: https://x.example/w\n  listen: nowhere\n", nil, "websub.listen: want host:port"},
		{"websub lease", "websub:\n  lease: 0s\n", nil, "websub.lease: must be between 1s and 8760h"},
		{"websub poll interval", "websub:\n  poll_interval: 10ms\n", nil, "websub.poll_interval: must be at least 1s"},
		{"websub unknown key", "websub:\n  callback: x\n", nil, "websub.callback: unknown key"},
		{"feed hub", "feeds:\n  - url: https://a.example/x\n    hub: pubsubhubbub\n", nil, "feeds[0].hub: invalid URL"},
		{"zero workers", "poll:\n  workers: 0\n", nil, "poll.workers"},
		{"bad replicas", "nats:\n  replicas: 2\n", nil, "nats.replicas: must be 1 or 3"},
		{"bad cidr", "poll:\n  allow_networks: [10.0.0.0/33]\n", nil, "poll.allow_networks[0]"},
		{"bad feed url", "feeds:\n  - url: ftp://x.example/feed\n", nil, "feeds[0].url"},
		{"duplicate feed", "feeds:\n  - url: https://x.example/f\n  - url: https://x.example/f\n", nil, "feeds[1].url: duplicate of feeds[0]"},
		{"undefined topic", "subscribers:\n  - name: a\n    topics: [trade, cheese]\n    stdout: {}\n", nil, `subscribers[0].topics[1]: undefined topic "cheese"`},
		{"no receiver", "subscribers:\n  - name: a\n    topics: [trade]\n", nil, "subscribers[0]: no receiver"},
		{"bad subscriber name", "subscribers:\n  - name: a.b\n    topics: [trade]\n    stdout: {}\n", nil, "subscribers[0].name"},
		{"duplicate subscriber", "subscribers:\n  - {name: a, topics: [trade], stdout: {}}\n  - {name: a, topics: [trade], stdout: {}}\n", nil, "subscribers[1].name"},
		{"bad webhook url", "subscribers:\n  - name: a\n    topics: [trade]\n    webhook: {url: not a url}\n", nil, "subscribers[0].webhook.url"},
		{"email without smtp", "subscribers:\n  - name: a\n    topics: [trade]\n    email: {to: [x@example.org]}\n", nil, "smtp.host: missing"},
		{"bad email address", "smtp: {host: mail.example.org, from: a@example.org}\nsubscribers:\n  - name: a\n    topics: [trade]\n    email: {to: [not-an-address]}\n", nil, "subscribers[0].email.to[0]"},
		{"bad smtp tls", "smtp:\n  tls: maybe\n", nil, "smtp.tls"},
		{"unset env var in used field", "subscribers:\n  - name: a\n    topics: [trade]\n    webhook: {url: \"${HOOK_URL}\"}\n", nil, "subscribers[0].webhook.url: environment variable HOOK_URL is not set"},
		{"wrong shape", "feeds: {url: x}\n", nil, "feeds: expected a list"},
		{"bad log level", "log:\n  level: loud\n", nil, "log.level"},
		{"bad nats url", "nats:\n  url: http://x.example\n", nil, "nats.url"},
		{"invalid yaml", "poll: [\n", nil, "invalid YAML"},
		{"bad quiet time zone", "subscribers:\n  - {name: a, topics: [trade], stdout: {}, quiet: {from: \"22:00\", to: \"07:00\", tz: Mars/Olympus}}\n", nil, "subscribers[0].quiet: tz"},
		{"bad quiet hour", "subscribers:\n  - {name: a, topics: [trade], stdout: {}, quiet: {from: \"25:00\", to: \"07:00\"}}\n", nil, "subscribers[0].quiet: from"},
		{"short digest", "subscribers:\n  - {name: a, topics: [trade], stdout: {}, digest: {every: 5s}}\n", nil, "subscribers[0].digest.every"},
		{"bad rate limit", "subscribers:\n  - {name: a, topics: [trade], webhook: {url: \"http://127.0.0.1:1/h\", rate_limit: {per_second: 0, burst: 1}}}\n", nil, "subscribers[0].webhook.rate_limit"},
		{"whsec secret not base64", "subscribers:\n  - {name: a, topics: [trade], webhook: {url: \"http://127.0.0.1:1/h\", secret: \"whsec_not*base64\"}}\n", nil, "subscribers[0].webhook.secret: whsec_ secret"},
		{"feeds_out max_items zero", "feeds_out: {max_items: 0}\n", nil, "feeds_out.max_items: must be between 1 and 10000, got 0"},
		{"feeds_out max_items too many", "feeds_out: {max_items: 1000000}\n", nil, "feeds_out.max_items"},
		{"feeds_out token with a space", "feeds_out: {token: \"two words\"}\n", nil, "feeds_out.token: must not contain spaces"},
		{"feeds_out unknown key", "feeds_out: {max_itmes: 5}\n", nil, `feeds_out.max_itmes: unknown key (did you mean "max_items"?)`},
		{"feeds_out token unset", "feeds_out: {token: \"${FEEDS_TOKEN}\"}\n", nil, "feeds_out.token: environment variable FEEDS_TOKEN is not set"},
		{"bad language filter", "subscribers:\n  - {name: a, topics: [trade], stdout: {}, languages: [english!]}\n", nil, "subscribers[0].languages[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tt.yaml), env(tt.env))
			if err == nil {
				t.Fatalf("want an error naming %q, got none", tt.key)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a *config.Error: %T %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q does not contain %q", err, tt.key)
			}
		})
	}
}

func TestWebSub(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
websub:
  callback_url: https://feedmon.example.org/websub
  lease: 48h
feeds:
  - url: https://a.example/x
  - url: https://b.example/y
    websub: true
    hub: https://pubsubhubbub.appspot.com/
  - url: https://c.example/z
    websub: false
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.WebSub
	if w.Enabled || w.Listen != "127.0.0.1:9466" || w.Lease.D() != 48*time.Hour || w.PollInterval.D() != time.Hour {
		t.Errorf("websub = %+v", w)
	}
	for i, want := range []bool{false, true, false} {
		if got := w.Push(cfg.Feeds[i]); got != want {
			t.Errorf("feeds[%d]: push %v, want %v", i, got, want)
		}
	}
	w.Enabled = true
	if !w.Push(cfg.Feeds[0]) || w.Push(cfg.Feeds[2]) {
		t.Error("websub.enabled is not the default of feeds without their own setting")
	}
}

func TestUnsetVarInUnusedFieldIsFine(t *testing.T) {
	t.Parallel()
	doc := "smtp:\n  host: mail.example.org\n  password: ${SMTP_PASSWORD}\nsubscribers:\n  - {name: a, topics: [trade], stdout: {}}\n"
	if _, err := config.Parse([]byte(doc), env(nil)); err != nil {
		t.Fatalf("smtp is unused without email receivers: %v", err)
	}
}

func TestEnvExpansionKeepsTypes(t *testing.T) {
	t.Parallel()
	doc := "poll:\n  workers: ${WORKERS}\n  interval: ${EVERY}\n"
	cfg, err := config.Parse([]byte(doc), env(map[string]string{"WORKERS": "12", "EVERY": "90s"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Poll.Workers != 12 || cfg.Poll.Interval.D() != 90*time.Second {
		t.Fatalf("poll = %+v", cfg.Poll)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{
		config.EnvNATSURL:       "nats://10.0.0.1:4222",
		config.EnvMetricsListen: "127.0.0.1:9999",
	})
	cfg, err := config.Parse([]byte(good), func(k string) (string, bool) {
		if k == "HOOK_SECRET" {
			return "x", true
		}
		return e(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://10.0.0.1:4222" || cfg.Metrics.Listen != "127.0.0.1:9999" {
		t.Fatalf("overrides not applied: %+v %+v", cfg.NATS, cfg.Metrics)
	}
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := "subscribers:\n  - name: a\n    topics: [trade]\n    webhook: {url: http://127.0.0.1:1/h, secret_file: " + secret + "}\n"
	cfg, err := config.Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Subscribers[0].Webhook.Secret; got != "from-file" {
		t.Fatalf("secret = %q", got)
	}
	doc = "subscribers:\n  - name: a\n    topics: [trade]\n    webhook: {url: http://127.0.0.1:1/h, secret_file: " + filepath.Join(dir, "missing") + "}\n"
	if _, err := config.Parse([]byte(doc), env(nil)); err == nil || !strings.Contains(err.Error(), "subscribers[0].webhook.secret_file") {
		t.Fatalf("missing secret file: err = %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "feedmon.yaml")
	if err := os.WriteFile(path, []byte("poll:\n  interval: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadEnv(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path || cfg.Poll.Interval.D() != 2*time.Minute {
		t.Fatalf("cfg = %+v", cfg)
	}
	if _, err := config.LoadEnv(filepath.Join(t.TempDir(), "nope.yaml"), env(nil)); err == nil {
		t.Fatal("missing file: want error")
	}
}

func TestEmptyFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Feeds) != 0 || len(cfg.Subscribers) != 0 {
		t.Fatalf("an empty file configures no feeds or subscribers: %+v", cfg)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, out string }{
		{"https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/REDACTED"},
		{"post https://user:pass@example.org/x failed", "post https://REDACTED@example.org/x failed"},
		{"https://example.org/hook?token=abc&x=1", "https://example.org/hook?token=REDACTED&x=1"},
		{"https://example.org/plain", "https://example.org/plain"},
	}
	for _, tt := range tests {
		if got := config.Redact(tt.in); got != tt.out {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.out)
		}
	}
}
