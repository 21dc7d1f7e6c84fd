// Package e2e runs the built feedmon binary as a user would: separate
// service processes against a standalone nats-server process, kill -9 and
// restart, SIGTERM. Binaries are built once per test run.
package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/testkit"
)

const secret = "e2e-secret"

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "feedmon-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		for _, b := range []struct{ out, pkg string }{
			{"feedmon", "github.com/feedmon/feedmon/cmd/feedmon"},
			{"nats-server", "github.com/nats-io/nats-server/v2"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", b.pkg, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// skipShort keeps the process tests out of `go test -short` (CI's race
// pass); the plain `go test ./...` always runs them.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test; runs without -short")
	}
}

// proc is a child process whose output is kept for failure messages.
type proc struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "FEEDMON_CONFIG=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s %s output:\n%s", name, strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit code and how long it took.
func (p *proc) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15s after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "feedmon.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../cmd/feedmon/app/testdata/reference.xml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkReference(t *testing.T, sink *testkit.Sink) {
	t.Helper()
	items := sink.Items()
	if len(items) != 1 {
		for _, it := range items {
			t.Logf("delivered %q %v", it.Title, it.Topics)
		}
		t.Fatalf("delivered %d items, want only the reference story", len(items))
	}
	if want := []string{"rare_earths", "defense", "trade"}; !slices.Equal(items[0].Topics, want) {
		t.Errorf("topics %v, want %v", items[0].Topics, want)
	}
	if d := sink.Deliveries()[0]; !d.SignatureOK || !d.StandardOK {
		t.Errorf("signatures verify: X-Feedmon-Signature %v, Standard Webhooks %v", d.SignatureOK, d.StandardOK)
	}
}

// TestSeparateServices runs poller, classifier and notifier as separate
// processes against a standalone nats-server that starts after them: no
// start-up order.
func TestSeparateServices(t *testing.T) {
	skipShort(t)
	t.Parallel()
	feed := testkit.NewFeedServer(t, fixture(t))
	sink := testkit.NewSink(t, secret)
	natsPort := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
nats:
  url: nats://127.0.0.1:%d
poll:
  interval: 1s
  allow_networks: [127.0.0.0/8]
feeds:
  - url: %s
feeds_out: {token: feeds-token}
subscribers:
  - name: desk
    topics: [rare_earths, defense, trade]
    webhook: {url: %q, secret: %q}
`, natsPort, feed.URL(), sink.URL(), secret))

	var services []*proc
	metrics := map[string]string{}
	for _, svc := range []string{"notifier", "classifier", "poller"} {
		metrics[svc] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		services = append(services, startProc(t, "feedmon", svc, "-config", cfg, "-metrics-listen", metrics[svc]))
	}
	startProc(t, "nats-server", "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort))

	bustest.Eventually(t, 60*time.Second, func() bool { return len(sink.Items()) >= 1 }, "no delivery from the separate services")
	polls := feed.Requests()
	bustest.Eventually(t, 20*time.Second, func() bool { return feed.Requests() >= polls+3 }, "no further polls")
	checkReference(t, sink)

	// The notifier process serves the alerts as feeds; the others do not.
	item := sink.Items()[0]
	get := func(addr, path string) (int, []byte) {
		resp, err := http.Get("http://" + addr + path + "?token=feeds-token")
		if err != nil {
			t.Fatalf("%s%s: %v", addr, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, path := range []string{"/feeds/topics/trade.atom", "/feeds/subscribers/desk.json"} {
		var entries []*gofeed.Item
		bustest.Eventually(t, 10*time.Second, func() bool {
			code, body := get(metrics["notifier"], path)
			feed, err := gofeed.NewParser().Parse(bytes.NewReader(body))
			if code != http.StatusOK || err != nil {
				return false
			}
			entries = feed.Items
			return len(entries) > 0
		}, "notifier %s: no entry", path)
		if len(entries) != 1 || entries[0].Link != item.Link {
			t.Errorf("notifier %s: %d entries, want the reference story", path, len(entries))
		}
		for _, svc := range []string{"poller", "classifier"} {
			if code, _ := get(metrics[svc], path); code != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404 (the notifier serves the feeds)", svc, path, code)
			}
		}
	}

	for i, p := range services {
		code, took := p.stop(t)
		if code != 0 || took > 10*time.Second {
			t.Errorf("service %d: exit %d after %s, want 0 within 10s", i, code, took)
		}
	}
}

// TestKillAndRestart kills `feedmon run` with SIGKILL and starts it again on
// the same store: nothing is delivered twice, new items still arrive, and
// SIGTERM ends it with status 0 within 10 s.
func TestKillAndRestart(t *testing.T) {
	skipShort(t)
	t.Parallel()
	feed := testkit.NewFeedServer(t, fixture(t))
	sink := testkit.NewSink(t, secret)
	cfg := writeConfig(t, fmt.Sprintf(`
nats:
  listen: ""
  store_dir: %q
metrics:
  listen: 127.0.0.1:0
poll:
  interval: 1s
  allow_networks: [127.0.0.0/8]
feeds:
  - url: %s
subscribers:
  - name: desk
    topics: [rare_earths, defense, trade]
    webhook: {url: %q, secret: %q}
`, t.TempDir(), feed.URL(), sink.URL(), secret))

	p := startProc(t, "feedmon", "run", "-config", cfg)
	bustest.Eventually(t, 60*time.Second, func() bool { return len(sink.Items()) >= 1 }, "first delivery")
	p.kill9()

	p = startProc(t, "feedmon", "run", "-config", cfg)
	polls := feed.Requests()
	bustest.Eventually(t, 30*time.Second, func() bool { return feed.Requests() >= polls+3 }, "polls after restart")
	feed.SetBody(bytes.Replace(fixture(t), []byte("<item>"), []byte(`<item>
    <title>EU slaps anti-dumping duties on Chinese steel imports</title>
    <link>https://wire.example/steel</link>
    <guid>wire-0005</guid>
    <description>The European Commission imposed provisional anti-dumping duties of up to 30% on imports of Chinese steel, citing injury to EU producers.</description>
  </item>
  <item>`), 1))
	bustest.Eventually(t, 30*time.Second, func() bool { return len(sink.Items()) >= 2 }, "new item after restart")
	polls = feed.Requests()
	bustest.Eventually(t, 20*time.Second, func() bool { return feed.Requests() >= polls+2 }, "polls after the new item")

	for id, n := range sink.CountByID() {
		if n != 1 {
			t.Errorf("item %s delivered %d times", id, n)
		}
	}
	if n := len(sink.Items()); n != 2 {
		t.Errorf("delivered %d items, want 2", n)
	}
	code, took := p.stop(t)
	if code != 0 || took > 10*time.Second {
		t.Errorf("SIGTERM: exit %d after %s, want 0 within 10s", code, took)
	}
}
