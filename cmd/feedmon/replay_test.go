package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
)

const replaySecretVar = "FEEDMON_TEST_REPLAY_SECRET"

// publishClassified publishes it once per topic, as the classifier does.
func publishClassified(t *testing.T, b *bus.Bus, it *event.Item) {
	t.Helper()
	bustest.PublishClassified(t, b, it)
}

func classified(id string, topics ...string) *event.Item {
	return &event.Item{
		ID: id, FeedURL: "https://news.example.org/world.rss", Title: "Report " + id,
		Link: "https://news.example.org/" + id, Published: "2026-11-26T08:00:00Z",
		FetchedAt: event.FormatTime(time.Now()), Topics: topics,
	}
}

// waitNotifierDone waits until the notifier's consumer has taken every
// classified message.
func waitNotifierDone(t *testing.T, b *bus.Bus) {
	t.Helper()
	bustest.WaitConsumed(t, b, event.StreamClassified, event.ConsumerNotifier, 30*time.Second)
}

// A deployment whose notifier alone has the webhook's secret: a replay to
// a subscriber added after its items arrived is sent by that notifier,
// each item once and signed; a second replay sends nothing; -dry-run lists
// and sends nothing; with no notifier, the command sends itself only if
// it has the secret, and otherwise says what is missing.
func TestReplayCommand(t *testing.T) {
	unsetenv(t, replaySecretVar)
	b, url := bustest.NewListening(t)
	sink := testkit.NewSink(t, "s3cret")
	for _, it := range []*event.Item{classified("t1", "trade"), classified("d1", "defense"), classified("t2", "defense", "trade"), classified("t3", "trade")} {
		publishClassified(t, b, it)
	}
	base := "nats:\n  url: " + url + "\nsubscribers:\n  - {name: old, topics: [defense], stdout: {}}\n"
	desk := "  - {name: desk, topics: [trade], webhook: {url: %q, secret: %q}}\n"
	before := writeFile(t, base)
	withSecret := writeFile(t, base+fmt.Sprintf(desk, sink.URL(), "s3cret"))
	fromEnv := writeFile(t, base+fmt.Sprintf(desk, sink.URL(), "${"+replaySecretVar+"}"))
	replay := func(path string, extra ...string) (int, string, string) {
		return runCmd(t, "", append([]string{"replay", "-subscriber", "desk", "-config", path}, extra...)...)
	}

	// The notifier took the items before desk existed.
	n := startServe(t, "notifier", "-config", before, "-metrics-listen", "127.0.0.1:0")
	n.waitStarted(t)
	waitNotifierDone(t, b)
	if code := n.stop(t); code != 0 {
		t.Fatalf("notifier exit %d:\n%s", code, n.stderr.String())
	}

	// No notifier, and no secret here: nothing is sent, and it says why.
	code, _, stderr := replay(fromEnv)
	if code != 1 || !strings.Contains(stderr, "no notifier") || !strings.Contains(stderr, replaySecretVar+" is not set") {
		t.Errorf("no notifier, no secret: exit %d, stderr %q", code, stderr)
	}

	code, stdout, stderr := replay(fromEnv, "-dry-run")
	if code != 0 || strings.Count(stdout, "would send") != 3 || !strings.Contains(stdout, "3 would be sent, 0 skipped (already delivered), 0 failed") {
		t.Errorf("dry run: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	if len(sink.Deliveries()) != 0 {
		t.Fatalf("sent before the replay: %v", sink.CountByID())
	}

	// The notifier, restarted with desk and its secret, does the sending.
	metrics := refusedAddr(t)
	n = startServe(t, "notifier", "-config", withSecret, "-metrics-listen", metrics)
	n.waitStarted(t)
	waitReady(t, metrics)
	code, stdout, stderr = replay(fromEnv)
	if code != 0 || !strings.Contains(stdout, "3 sent, 0 skipped (already delivered), 0 failed") || !strings.Contains(stdout, "sent by the notifier on") {
		t.Errorf("replay: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	wantOnceEachSigned(t, sink)

	code, stdout, _ = replay(fromEnv)
	if code != 0 || !strings.Contains(stdout, "0 sent, 3 skipped (already delivered), 0 failed") {
		t.Errorf("second replay: exit %d, stdout:\n%s", code, stdout)
	}
	if code := n.stop(t); code != 0 {
		t.Fatalf("notifier exit %d:\n%s", code, n.stderr.String())
	}

	// No notifier, but the secret is here: the command sends itself, and
	// finds everything delivered.
	t.Setenv(replaySecretVar, "s3cret")
	code, stdout, stderr = replay(fromEnv, "-since", "1h")
	if code != 0 || !strings.Contains(stderr, "sending from this process") || !strings.Contains(stdout, "0 sent, 3 skipped (already delivered), 0 failed") {
		t.Errorf("local replay: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	if len(sink.Deliveries()) != 3 {
		t.Errorf("%d deliveries in all, want 3", len(sink.Deliveries()))
	}
}

func TestReplayCommandErrors(t *testing.T) {
	t.Parallel()
	addr := refusedAddr(t)
	noNATS := writeFile(t, "nats:\n  url: nats://"+addr+"\nsubscribers:\n  - {name: desk, topics: [trade], stdout: {}}\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no subscriber flag", []string{"-config", noNATS}, 2, []string{"-subscriber is required"}},
		{"unknown subscriber", []string{"-config", noNATS, "-subscriber", "nobody"}, 2, []string{"-subscriber", `"nobody"`, "desk"}},
		{"bad until", []string{"-config", noNATS, "-subscriber", "desk", "-until", "yesterday"}, 2, []string{"-until", "RFC 3339"}},
		{"negative since", []string{"-config", noNATS, "-subscriber", "desk", "-since", "-1h"}, 2, []string{"-since"}},
		{"no deployment", []string{"-config", noNATS, "-subscriber", "desk"}, 1, []string{addr}},
		{"no deployment, dry", []string{"-config", noNATS, "-subscriber", "desk", "-dry-run"}, 1, []string{addr}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			code, _, stderr := runCmd(t, "", append([]string{"replay"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// The acceptance path on the all-in-one deployment: `feedmon run` (its
// embedded NATS reached through nats.listen) took the items before the
// subscriber existed, and keeps running with the old config; the replay,
// given the new config with the webhook's secret, finds the running
// notifier without the subscriber and sends itself, each item once; the
// second replay sends nothing.
func TestReplayAgainstRunningRun(t *testing.T) {
	t.Parallel()
	sink := testkit.NewSink(t, "s3cret")
	natsAddr, metrics := refusedAddr(t), refusedAddr(t)
	base := fmt.Sprintf("nats:\n  listen: %s\n  store_dir: %s\nmetrics:\n  listen: %s\nsubscribers:\n  - {name: old, topics: [defense], stdout: {}}\n",
		natsAddr, t.TempDir(), metrics)
	s := startServe(t, "run", "-config", writeFile(t, base))
	s.waitStarted(t)
	waitReady(t, metrics)

	b := bustest.Connect(t, "nats://"+natsAddr)
	for _, it := range []*event.Item{classified("t1", "trade"), classified("d1", "defense"), classified("t2", "defense", "trade"), classified("t3", "trade")} {
		publishClassified(t, b, it)
	}
	waitNotifierDone(t, b)

	withDesk := writeFile(t, base+fmt.Sprintf("  - {name: desk, topics: [trade], webhook: {url: %q, secret: s3cret}}\n", sink.URL()))
	code, stdout, stderr := runCmd(t, "", "replay", "-subscriber", "desk", "-config", withDesk)
	if code != 0 || !strings.Contains(stderr, "no such subscriber") || !strings.Contains(stdout, "3 sent, 0 skipped (already delivered), 0 failed") {
		t.Fatalf("replay: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	wantOnceEachSigned(t, sink)
	code, stdout, _ = runCmd(t, "", "replay", "-subscriber", "desk", "-config", withDesk)
	if code != 0 || !strings.Contains(stdout, "0 sent, 3 skipped (already delivered), 0 failed") || len(sink.Deliveries()) != 3 {
		t.Errorf("second replay: exit %d, %d deliveries, stdout:\n%s", code, len(sink.Deliveries()), stdout)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("run exit %d:\n%s", code, s.stderr.String())
	}
}

// waitReady waits until the process serving metrics at addr is ready.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	bustest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "not ready at %s", addr)
}

// wantOnceEachSigned checks that the sink got t1, t2 and t3 once each, every
// delivery signed both ways.
func wantOnceEachSigned(t *testing.T, sink *testkit.Sink) {
	t.Helper()
	got := sink.CountByID()
	if len(got) != 3 || got["t1"] != 1 || got["t2"] != 1 || got["t3"] != 1 {
		t.Errorf("webhook got %v, want t1, t2, t3 once each", got)
	}
	for _, d := range sink.Deliveries() {
		if !d.SignatureOK || !d.StandardOK {
			t.Errorf("unsigned or badly signed delivery: %+v", d)
		}
	}
}
