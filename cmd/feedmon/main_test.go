package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "feedmon.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBrokenConfigsExit2NamingTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, key string
		// classifier: the classifier reads the key, so `classify` refuses
		// it too; it ignores what only the poller or the notifier reads.
		classifier bool
	}{
		{"unknown key", "pol:\n  interval: 1m\n", "pol", true},
		{"bad duration", "poll:\n  interval: fortnightly\n", "poll.interval", false},
		{"undefined topic", "subscribers:\n  - {name: a, topics: [weather], stdout: {}}\n", "subscribers[0].topics[0]", false},
		{"bad replicas", "nats:\n  replicas: 5\n", "nats.replicas", true},
		{"bad webhook url", "subscribers:\n  - {name: a, topics: [trade], webhook: {url: \"::not a url\"}}\n", "subscribers[0].webhook.url", false},
		{"unset variable", "subscribers:\n  - {name: a, topics: [trade], webhook: {url: \"${FEEDMON_TEST_UNSET_HOOK}\"}}\n", "FEEDMON_TEST_UNSET_HOOK", false},
		{"bad CIDR", "poll:\n  allow_networks: [localhost]\n", "poll.allow_networks[0]", false},
		{"bad story window", "stories:\n  window: 1m\n", "stories.window", true},
		{"bad topic rule", "topics:\n  Weather: {terms: [rain]}\n", "topics.Weather", true},
		{"bad size", "retention:\n  items: {max_bytes: 2G}\n", "retention.items.max_bytes", true},
		{"short max_age", "retention:\n  dead: {max_age: 5m}\n", "retention.dead.max_age", true},
		{"not YAML", "feeds: [\n", "invalid YAML", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.yaml)
			for _, cmd := range []string{"check", "run", "classify"} {
				code, _, stderr := runCmd(t, "", cmd, "-config", path)
				if cmd == "classify" && !tt.classifier {
					if code != 0 {
						t.Errorf("classify: exit %d: refused for a key the classifier does not read (stderr %q)", code, stderr)
					}
					continue
				}
				if code != 2 {
					t.Errorf("%s: exit %d, want 2 (stderr %q)", cmd, code, stderr)
				}
				if !strings.Contains(stderr, tt.key) {
					t.Errorf("%s: stderr %q does not name %q", cmd, stderr, tt.key)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"check", "-nope"},
		{"check", "extra-arg"},
		{"dlq"},
		{"dlq", "purge"},
	} {
		if code, _, _ := runCmd(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestSingleServiceNeedsNATSURL(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, "", "poller", "-config", writeFile(t, "poll:\n  interval: 1m\n"))
	if code != 2 || !strings.Contains(stderr, "nats.url") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestCheckAndVersion(t *testing.T) {
	t.Parallel()
	code, out, stderr := runCmd(t, "", "check")
	if code != 0 || !strings.Contains(out, "config ok") {
		t.Fatalf("check defaults: exit %d, out %q, err %q", code, out, stderr)
	}
	if !strings.Contains(out, "retention: items 168h, classified 168h, alerts 168h, dead 720h;") {
		t.Errorf("check does not say the retention: %q", out)
	}
	path := writeFile(t, "retention: {items: {max_age: 48h, max_bytes: 2GB}}\n")
	if code, out, _ = runCmd(t, "", "check", "-config", path); code != 0 || !strings.Contains(out, "items 48h 2GB") || !strings.Contains(out, "sizes of classified, alerts, dead derived") {
		t.Errorf("check with retention: exit %d, out %q", code, out)
	}
	code, out, _ = runCmd(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "feedmon ") {
		t.Fatalf("version: exit %d, out %q", code, out)
	}
}

func TestTopicsPrintsRulesThatLoadBack(t *testing.T) {
	t.Parallel()
	code, out, _ := runCmd(t, "", "topics")
	if code != 0 || !strings.Contains(out, "rare_earths") || !strings.Contains(out, "defense") || !strings.Contains(out, "trade") {
		t.Fatalf("topics: exit %d, output starts %.200q", code, out)
	}
}

func TestClassifyContract(t *testing.T) {
	t.Parallel()
	in := `{"id":"ref","title":"EU and Japan agree to jointly mine rare earths and counter economic coercion","summary":"<p>The two sides will secure supply chains for critical raw materials and open a defense industry dialogue.</p>","lang":"en"}
not json
{"id":"steak","title":"The perfect rare steak for Earth Day","summary":"Sear it hot."}
`
	code, out, _ := runCmd(t, in, "classify")
	if code != 1 {
		t.Errorf("a bad line must make the exit status 1, got %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 output lines, got %d: %q", len(lines), out)
	}
	var first struct {
		ID     string   `json:"id"`
		Topics []string `json:"topics"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ID != "ref" || strings.Join(first.Topics, ",") != "rare_earths,defense,trade" {
		t.Errorf("line 1 = %s", lines[0])
	}
	var bad struct {
		Line  int    `json:"line"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &bad); err != nil || bad.Line != 2 || bad.Error == "" {
		t.Errorf("line 2 = %s", lines[1])
	}
	var third struct {
		ID     string   `json:"id"`
		Topics []string `json:"topics"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &third); err != nil || third.ID != "steak" || len(third.Topics) != 0 {
		t.Errorf("line 3 = %s", lines[2])
	}
}

// TestClassifyAppliesStoriesConfig: every stories.* key applies to
// `feedmon classify` as it does to the service.
func TestClassifyAppliesStoriesConfig(t *testing.T) {
	t.Parallel()
	in := `{"id":"a","title":"Intel to cut about 15,000 jobs in cost overhaul","summary":"The chipmaker said it would reduce its workforce by more than 15% and save $10 billion in 2025.","published":"2025-08-01T10:00:00Z"}
{"id":"b","title":"Intel slashes 15k roles as losses mount","summary":"Chief executive Pat Gelsinger told staff the company must cut costs by roughly $10bn.","published":"2025-08-01T12:00:00Z"}
{"id":"c","title":"Intel cuts about 15,000 jobs in cost overhaul, it confirms","summary":"The chipmaker confirmed it would reduce its workforce by more than 15% and save $10 billion in 2025.","published":"2025-08-03T12:00:00Z"}
`
	stories := func(cfg string) map[string]string {
		t.Helper()
		return classifyStories(t, in, cfg)
	}
	def := stories("")
	if def["a"] != def["b"] || def["a"] != def["c"] {
		t.Fatalf("default: one story expected, got %v", def)
	}
	if low := stories("stories:\n  threshold: 0.01\n"); low["a"] != low["b"] {
		t.Errorf("threshold 0.01: a and b apart: %v", low)
	}
	if high := stories("stories:\n  threshold: 0.99\n"); high["a"] == high["b"] {
		t.Errorf("threshold 0.99: a and b still one story: %v", high)
	}
	if short := stories("stories:\n  window: 1h\n"); short["c"] == short["a"] {
		t.Errorf("window 1h: c, two days later, joined a: %v", short)
	}
	// An unrelated item between a and b: with room for one item only, a
	// is gone when b comes.
	in2 := strings.Join(strings.Split(in, "\n")[:1], "") + "\n" +
		`{"id":"u","title":"Heavy snow closes mountain passes in the Alps","summary":"Roads over the Gotthard and the Simplon were shut on Sunday.","published":"2025-08-01T11:00:00Z"}` + "\n" +
		strings.Split(in, "\n")[1] + "\n"
	if got := classifyStories(t, in2, ""); got["b"] != got["a"] {
		t.Fatalf("default: a and b apart: %v", got)
	}
	if one := classifyStories(t, in2, "stories:\n  max_entries: 1\n"); one["b"] == one["a"] {
		t.Errorf("max_entries 1: a was kept beside u: %v", one)
	}
}

// classifyStories runs `feedmon classify` on in with the config cfg
// (none when empty) and returns the story id of each line's id.
func classifyStories(t *testing.T, in, cfg string) map[string]string {
	t.Helper()
	args := []string{"classify"}
	if cfg != "" {
		args = []string{"classify", "-config", writeFile(t, cfg)}
	}
	code, out, errs := runCmd(t, in, args...)
	if code != 0 {
		t.Fatalf("classify %s: exit %d: %s", cfg, code, errs)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			ID      string `json:"id"`
			StoryID string `json:"story_id"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		got[r.ID] = r.StoryID
	}
	return got
}
