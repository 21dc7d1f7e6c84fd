package config_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/feedmon/feedmon/internal/config"
)

// keysOf returns the key of every *config.Error in err, in order.
func keysOf(t *testing.T, err error) []string {
	t.Helper()
	var keys []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Errorf("not a *config.Error: %T %v", e, e)
			return
		}
		keys = append(keys, ce.Key)
	}
	walk(err)
	return keys
}

// A file with a mistake of every kind is refused with all of them named,
// in the order of the file, in one run.
func TestEveryErrorOfAFileInOnePass(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/several-mistakes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Parse(data, env(nil))
	if err == nil {
		t.Fatal("want errors, got none")
	}
	want := []string{
		"nats.replicas",
		"pol",
		"poll.interval",
		"poll.workers",
		"poll.per_host",
		"feeds[0].interval",
		"feeds[1].url",
		"feeds[1].colour",
		"subscribers[0].topics[1]",
		"subscribers[0].webhook.url",
		"subscribers[0].digest.every",
	}
	got := keysOf(t, err)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("no error for %s", k)
		}
	}
	// In file order; a key may have more than one error (an unset variable
	// leaves an empty URL), but never a second one caused by a value that
	// could not be read at all (a bad duration is not also "too short").
	var order []string
	for _, k := range got {
		if len(order) == 0 || order[len(order)-1] != k {
			order = append(order, k)
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("keys in this order:\n  %s\nwant\n  %s\nfull error:\n%v", strings.Join(order, "\n  "), strings.Join(want, "\n  "), err)
	}
	for _, frag := range []string{
		`pol: unknown key (did you mean "poll"?)`,
		`poll.interval: invalid duration "soon"`,
		"poll.workers: invalid value `many`: want int",
		"poll.per_host: must be between 1 and 10000",
		"subscribers[0].webhook.url: environment variable FEEDMON_TEST_HOOK_URL is not set",
		`subscribers[0].digest.every: invalid duration "never"`,
	} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error lacks %q:\n%v", frag, err)
		}
	}
	if strings.Contains(err.Error(), "poll.interval: must be at least") || strings.Contains(err.Error(), "digest.every: must be at least") {
		t.Errorf("a value that could not be read is also validated as its default:\n%v", err)
	}
}

func TestEnvDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		env   map[string]string
		want  string
	}{
		{"set", "${UA}", map[string]string{"UA": "bot/1"}, "bot/1"},
		{"unset, default", "${UA:-feedmon-test}", nil, "feedmon-test"},
		{"empty, default", "${UA:-feedmon-test}", map[string]string{"UA": ""}, "feedmon-test"},
		{"set wins over default", "${UA:-feedmon-test}", map[string]string{"UA": "bot/2"}, "bot/2"},
		{"empty default", "x${UA:-}y", nil, "xy"},
		{"default with punctuation", "${UA:-a:b/c-d e}", nil, "a:b/c-d e"},
		{"several", "${A:-a}-${B}-${C:-c}", map[string]string{"B": "b"}, "a-b-c"},
		{"default is not expanded", "${UA:-$HOME}", nil, "$HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := "poll:\n  user_agent: \"" + tt.value + "\"\n"
			cfg, err := config.Parse([]byte(doc), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Poll.UserAgent != tt.want {
				t.Fatalf("user_agent = %q, want %q", cfg.Poll.UserAgent, tt.want)
			}
		})
	}
}

func TestEnvDefaultKeepsTypes(t *testing.T) {
	t.Parallel()
	doc := "nats:\n  replicas: ${REPLICAS:-3}\n  url: ${NATS:-nats://127.0.0.1:4222}\npoll:\n  interval: ${EVERY:-90s}\n  workers: ${WORKERS:-12}\n"
	cfg, err := config.Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Replicas != 3 || cfg.NATS.URL != "nats://127.0.0.1:4222" || cfg.Poll.Interval.D().String() != "1m30s" || cfg.Poll.Workers != 12 {
		t.Fatalf("nats %+v, poll %+v", cfg.NATS, cfg.Poll)
	}
}

func TestMalformedVariableNamesTheKey(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"${UA", "${1UA}", "${UA:-x", "${UA-x}", "${}"} {
		doc := "poll:\n  user_agent: \"" + v + "\"\n"
		_, err := config.Parse([]byte(doc), env(map[string]string{"UA": "x"}))
		if err == nil || !strings.Contains(err.Error(), "poll.user_agent: malformed variable reference") {
			t.Errorf("%s: err = %v", v, err)
		}
	}
}

// A service is not refused for a key only another service reads: the
// poller and the classifier start on a shared file without the notifier's
// secrets; the notifier, and a check of the whole file, refuse it.
func TestErrorsScopedToTheServicesThatReadTheKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/shared.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{config.Poller, config.Classifier} {
		if _, err := config.ParseFor(data, env(nil), svc); err != nil {
			t.Errorf("%s: %v", svc, err)
		}
	}
	_, err = config.ParseFor(data, env(nil), config.Notifier)
	if err == nil || !strings.Contains(err.Error(), "subscribers[0].webhook.url: environment variable HOOK_URL is not set") ||
		!strings.Contains(err.Error(), "subscribers[0].webhook.secret: environment variable HOOK_SECRET is not set") {
		t.Errorf("notifier: err = %v", err)
	}
	for _, svcs := range [][]string{nil, {config.Poller, config.Notifier}} {
		if _, err := config.ParseFor(data, env(nil), svcs...); err == nil {
			t.Errorf("%v: want the notifier's errors", svcs)
		}
	}
	if _, err := config.Parse(data, env(nil)); err == nil {
		t.Error("Parse (every service): want the notifier's errors")
	}
	if _, err := config.ParseFor(data, env(map[string]string{"HOOK_URL": "https://hooks.example.org/x", "HOOK_SECRET": "s"}), config.Notifier); err != nil {
		t.Errorf("notifier with its secrets: %v", err)
	}

	// Scoping is by what a service reads, not by what is an error: a bad
	// feed refuses the poller but not the notifier.
	bad := []byte("feeds:\n  - url: ftp://example.org/x\n")
	if _, err := config.ParseFor(bad, env(nil), config.Poller); err == nil {
		t.Error("poller: a bad feed URL must be refused")
	}
	if _, err := config.ParseFor(bad, env(nil), config.Notifier); err != nil {
		t.Errorf("notifier: %v", err)
	}
	// The feeds are served by the notifier's processes: their token is
	// none of the poller's business.
	feedsOut := []byte("feeds_out: {token: \"${FEEDS_TOKEN}\"}\n")
	if _, err := config.ParseFor(feedsOut, env(nil), config.Poller); err != nil {
		t.Errorf("poller: %v", err)
	}
	if _, err := config.ParseFor(feedsOut, env(nil), config.Notifier); err == nil || !strings.Contains(err.Error(), "feeds_out.token: environment variable FEEDS_TOKEN is not set") {
		t.Errorf("notifier: err = %v", err)
	}
	// Keys every service reads are checked for every service.
	if _, err := config.ParseFor([]byte("nats:\n  replicas: 2\n"), env(nil), config.Classifier); err == nil {
		t.Error("classifier: nats.replicas 2 must be refused")
	}
	if _, err := config.ParseFor([]byte("bogus: 1\n"), env(nil), config.Classifier); err == nil {
		t.Error("classifier: an unknown top-level key must be refused")
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	keys := func(ws []config.Warning) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.Key)
		}
		return out
	}
	if got := keys(cfg.Warnings()); !slices.Equal(got, []string{"feeds", "subscribers"}) {
		t.Errorf("empty file: warnings for %v, want feeds and subscribers", got)
	}
	if got := keys(cfg.Warnings(config.Poller)); !slices.Equal(got, []string{"feeds"}) {
		t.Errorf("poller: warnings for %v, want feeds", got)
	}
	if got := keys(cfg.Warnings(config.Notifier)); !slices.Equal(got, []string{"subscribers"}) {
		t.Errorf("notifier: warnings for %v, want subscribers", got)
	}
	if got := cfg.Warnings(config.Classifier); len(got) != 0 {
		t.Errorf("classifier: warnings %v, want none", got)
	}
	cfg, err = config.Parse([]byte("opml: [feeds.opml]\nsubscribers:\n  - {name: a, topics: [trade], stdout: {}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Warnings(); len(got) != 0 {
		t.Errorf("feeds from OPML and a subscriber: warnings %v, want none", got)
	}
	def, err := config.LoadEnv("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := def.Warnings(); len(got) != 0 {
		t.Errorf("built-in defaults: warnings %v, want none", got)
	}
}
