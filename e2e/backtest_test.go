package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/testkit"
)

// TestBacktestOnAFetchedDeployment: `feedmon run` fetches a feed and
// classifies it into a standalone nats-server; then `feedmon backtest`
// with a topics file that drops trade lists exactly the items that went
// out on trade, with the same counts in text and JSON, and NATS holds the
// same streams, buckets, consumers and messages afterwards.
func TestBacktestOnAFetchedDeployment(t *testing.T) {
	skipShort(t)
	t.Parallel()
	feed := testkit.NewFeedServer(t, fixture(t))
	natsPort := freePort(t)
	startProc(t, "nats-server", "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort))
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	cfg := writeConfig(t, fmt.Sprintf(`
nats:
  url: %s
metrics:
  listen: 127.0.0.1:0
poll:
  interval: 1h
  allow_networks: [127.0.0.0/8]
feeds:
  - url: %s
subscribers:
  - {name: desk, topics: [rare_earths, defense, trade], stdout: {}}
`, url, feed.URL()))
	run := startProc(t, "feedmon", "run", "-config", cfg)

	var nc *nats.Conn
	bustest.Eventually(t, 30*time.Second, func() bool {
		var err error
		nc, err = nats.Connect(url)
		return err == nil
	}, "nats-server up")
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bustest.Eventually(t, 60*time.Second, func() bool {
		st, err := js.Stream(ctx, event.StreamItems)
		if err != nil || st.CachedInfo().State.Msgs == 0 {
			return false
		}
		c, err := js.Consumer(ctx, event.StreamItems, event.ConsumerClassifier)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream == st.CachedInfo().State.LastSeq
	}, "the fetched items classified")
	if code, _ := run.stop(t); code != 0 {
		t.Fatalf("feedmon run: exit %d", code)
	}

	// What went out on trade, as the stream records it.
	trade := map[string]bool{}
	cl, err := js.Stream(ctx, event.StreamClassified)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := cl.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.ClassifiedSubject("trade")}})
	if err != nil {
		t.Fatal(err)
	}
	for n := int(cl.CachedInfo().State.Msgs); n > 0; n-- {
		msg, err := oc.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break // no more on trade
		}
		it, err := event.Unmarshal(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		trade[it.ID] = true
		if md, _ := msg.Metadata(); md != nil && md.NumPending == 0 {
			break
		}
	}
	if len(trade) == 0 {
		t.Fatal("the fixture gave no trade item")
	}
	// The ordered consumer above is NATS's to remove: it is part of the
	// state the backtest must leave as it is.

	before := accountState(t, js)
	rules := writeConfig(t, "topics:\n  trade: {disabled: true}\n")
	backtest := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "feedmon"), append([]string{"backtest", "-config", cfg, "-topics", rules}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("feedmon backtest %v: %v", args, err)
		}
		return string(out)
	}
	jsonOut := backtest("-json")
	textOut := backtest()
	if after := accountState(t, js); !reflect.DeepEqual(after, before) {
		t.Fatalf("NATS after the backtests:\n%s\nbefore:\n%s", after, before)
	}

	lines := strings.Split(strings.TrimSpace(jsonOut), "\n")
	changed := map[string]bool{}
	for _, l := range lines[:len(lines)-1] {
		var ch struct {
			ID            string
			Before, After []string
		}
		if err := json.Unmarshal([]byte(l), &ch); err != nil {
			t.Fatal(err)
		}
		changed[ch.ID] = true
		if !slices.Contains(ch.Before, "trade") || slices.Contains(ch.After, "trade") {
			t.Errorf("changed item %s: %v → %v, want it to lose trade only", ch.ID, ch.Before, ch.After)
		}
	}
	if !reflect.DeepEqual(changed, trade) {
		t.Errorf("changed items %v, want those that went out on trade %v", changed, trade)
	}
	var sum struct {
		Summary map[string]struct{ Before, After, Added, Removed int }
		Items   int
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if tr := sum.Summary["trade"]; tr.Before != len(trade) || tr.After != 0 || tr.Removed != len(trade) || tr.Added != 0 {
		t.Errorf("trade counts %+v, want %d removed of %d", tr, len(trade), len(trade))
	}
	// The text table says the same.
	for topic, c := range sum.Summary {
		row := fmt.Sprintf("%7d  %7d  %7d  %7d", c.Before, c.After, c.Added, c.Removed)
		if !strings.Contains(textOut, "\n"+topic+" ") || !strings.Contains(textOut, row) {
			t.Errorf("text output lacks %s's row %q:\n%s", topic, row, textOut)
		}
		if topic != "trade" && (c.Added != 0 || c.Removed != 0) {
			t.Errorf("%s changed with trade's rules: %+v", topic, c)
		}
	}
	if !strings.Contains(textOut, fmt.Sprintf("%d items read, %d changed", sum.Items, len(trade))) {
		t.Errorf("text header disagrees with JSON (%d items, %d changed):\n%s", sum.Items, len(trade), textOut)
	}
}

// accountState renders what a read-only command must not change: every
// stream (buckets included) with its messages, and every consumer with
// its progress.
func accountState(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	acc, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "streams %d consumers %d store %d\n", acc.Streams, acc.Consumers, acc.Store)
	var names []string
	sl := js.StreamNames(ctx)
	for n := range sl.Name() {
		names = append(names, n)
	}
	if err := sl.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, n := range names {
		st, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		s := st.CachedInfo().State
		fmt.Fprintf(&b, "%s: msgs %d bytes %d seq %d..%d\n", n, s.Msgs, s.Bytes, s.FirstSeq, s.LastSeq)
		var cons []string
		ci := st.ListConsumers(ctx)
		for c := range ci.Info() {
			cons = append(cons, fmt.Sprintf("  %s durable=%q delivered %d acked %d pending %d ack-pending %d", c.Name, c.Config.Durable,
				c.Delivered.Stream, c.AckFloor.Stream, c.NumPending, c.NumAckPending))
		}
		if err := ci.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(cons)
		b.WriteString(strings.Join(cons, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}
