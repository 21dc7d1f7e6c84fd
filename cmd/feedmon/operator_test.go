package main

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

// serve runs a service command until stop is called, with its output in
// buffers that may be read meanwhile.
type serve struct {
	stdout, stderr testkit.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
}

func startServe(t *testing.T, args ...string) *serve {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serve{cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- run(ctx, args, strings.NewReader(""), &s.stdout, &s.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// waitStarted waits until the process logged its start, and fails the test
// with its output if it exited instead.
func (s *serve) waitStarted(t *testing.T) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.stderr.String(), "feedmon started") {
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("exited %d before starting; stderr:\n%s", code, s.stderr.String())
		case <-deadline:
			t.Fatalf("not started within 30s; stderr:\n%s", s.stderr.String())
		case <-tick.C:
		}
	}
}

// stop asks the process to stop, as SIGTERM does, and returns its exit status.
func (s *serve) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop within 15s")
		return -1
	}
}

// unsetenv removes name from the environment for the duration of the test
// (which therefore cannot be parallel).
func unsetenv(t *testing.T, name string) {
	t.Helper()
	if old, ok := os.LookupEnv(name); ok {
		t.Cleanup(func() { os.Setenv(name, old) })
		os.Unsetenv(name)
	}
}

// The poller, and the classifier, start on the Kubernetes ConfigMap with
// none of the notifier's secrets in their environment: only the notifier
// reads the subscribers. The notifier itself is refused, naming what it
// lacks.
func TestServicesStartOnTheK8sConfigMapWithoutTheNotifiersSecrets(t *testing.T) {
	b, err := os.ReadFile("../../deploy/k8s/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	doc := cm.Data["feedmon.yaml"]
	if !strings.Contains(doc, "${FEEDMON_WEBHOOK_URL}") {
		t.Fatalf("the ConfigMap no longer takes the webhook from the environment; this test needs a new subject:\n%s", doc)
	}
	for _, name := range []string{"FEEDMON_WEBHOOK_URL", "FEEDMON_WEBHOOK_SECRET", "FEEDMON_NATS_URL", "FEEDMON_METRICS_LISTEN"} {
		unsetenv(t, name)
	}
	path := writeFile(t, doc)
	for _, svc := range []string{"poller", "classifier"} {
		t.Run(svc, func(t *testing.T) {
			// The ConfigMap's NATS is not there: the service starts and
			// connects in the background, as in a pod started before NATS.
			s := startServe(t, svc, "-config", path, "-metrics-listen", "127.0.0.1:0")
			s.waitStarted(t)
			if code := s.stop(t); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, s.stderr.String())
			}
		})
	}
	code, _, stderr := runCmd(t, "", "notifier", "-config", path, "-metrics-listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "FEEDMON_WEBHOOK_URL is not set") || !strings.Contains(stderr, "FEEDMON_WEBHOOK_SECRET is not set") {
		t.Fatalf("notifier without its secrets: exit %d, stderr %q", code, stderr)
	}
}

// A config with no feeds or no subscribers is valid but probably a mistake:
// the start-up log says so.
func TestStartupWarnsOfNoFeedsAndNoSubscribers(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "nats:\n  listen: \"\"\n  store_dir: "+t.TempDir()+"\nmetrics:\n  listen: 127.0.0.1:0\n")
	s := startServe(t, "run", "-config", path)
	s.waitStarted(t)
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr.String())
	}
	var warns []string
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	for _, key := range []string{"key=feeds", "key=subscribers"} {
		found := false
		for _, w := range warns {
			found = found || strings.Contains(w, key)
		}
		if !found {
			t.Errorf("no WARN with %s; warnings:\n%s", key, strings.Join(warns, "\n"))
		}
	}
	code, _, stderr := runCmd(t, "", "check", "-config", path)
	if code != 0 || !strings.Contains(stderr, "warning: feeds:") || !strings.Contains(stderr, "warning: subscribers:") {
		t.Errorf("check: exit %d, stderr %q", code, stderr)
	}
}

// `feedmon check` names every mistake of a file in one run.
func TestCheckReportsEveryErrorInOneRun(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "pol:\n  interval: 1m\npoll:\n  interval: soon\n  workers: 0\nsubscribers:\n  - {name: a, topics: [weather], stdout: {}}\n")
	code, _, stderr := runCmd(t, "", "check", "-config", path)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, key := range []string{"feedmon: config: pol:", "feedmon: config: poll.interval:", "feedmon: config: poll.workers:", "feedmon: config: subscribers[0].topics[0]:"} {
		if !strings.Contains(stderr, key) {
			t.Errorf("stderr lacks %q:\n%s", key, stderr)
		}
	}
	// -service checks what that service reads only.
	code, _, stderr = runCmd(t, "", "check", "-config", path, "-service", "classifier")
	if code != 2 || strings.Contains(stderr, "poll.") || strings.Contains(stderr, "subscribers") || !strings.Contains(stderr, "pol:") {
		t.Errorf("check -service classifier: exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "check", "-service", "pollster"); code != 2 || !strings.Contains(stderr, "pollster") {
		t.Errorf("check -service pollster: exit %d, stderr %q", code, stderr)
	}
}

// refusedAddr returns an address on which nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// With nothing listening, the inspection commands fail at once naming the
// address, instead of waiting out nats.connect_timeout.
func TestInspectionFailsAtOnceWhenNothingListens(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"feeds"}, {"dlq", "list"}, {"dlq", "replay"}, {"backtest"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			addr := refusedAddr(t)
			// A connect timeout far longer than the test may wait.
			path := writeFile(t, "nats:\n  url: nats://"+addr+"\n  connect_timeout: 10m\n")
			type result struct {
				code   int
				stderr string
			}
			done := make(chan result, 1)
			go func() {
				code, _, stderr := runCmd(t, "", append(args, "-config", path)...)
				done <- result{code, stderr}
			}()
			select {
			case r := <-done:
				if r.code != 1 || !strings.Contains(r.stderr, addr) {
					t.Fatalf("exit %d, stderr %q; want 1 and the address %s", r.code, r.stderr, addr)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("still waiting after 30s for a server that refuses connections")
			}
		})
	}
	// And they work when the server is there.
	_, url := bustest.NewListening(t)
	code, _, stderr := runCmd(t, "", "dlq", "list", "-config", writeFile(t, "nats:\n  url: "+url+"\n"))
	if code != 0 {
		t.Fatalf("dlq list against a running NATS: exit %d, stderr %q", code, stderr)
	}
}

// An unknown command prints what went wrong and the usage, each once, with
// "feedmon:" only before the message.
func TestUnknownCommandPrintsUsageOnce(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, "", "frobnicate")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.HasPrefix(stderr, "feedmon: unknown command \"frobnicate\"\n") {
		t.Errorf("stderr starts %q", stderr[:min(len(stderr), 80)])
	}
	if strings.Contains(stderr, "feedmon: feedmon") {
		t.Errorf("doubled prefix:\n%s", stderr)
	}
	if strings.Count(stderr, "Usage:") != 1 || !strings.Contains(stderr, "\n  feedmon run ") {
		t.Errorf("usage not printed as it is:\n%s", stderr)
	}
}
