package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/services/classifier"
)

// deployment is a NATS with feedmon's streams, whose items the real
// classifier service classified with testdata/deployed.yaml.
type deployment struct {
	owner *bus.Bus // the deployment's own connection (publishes, classifies)
	b     *bus.Bus // the backtest's connection, as the command's
	js    jetstream.JetStream
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	owner, url := bustest.NewListening(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{owner: owner, b: bustest.Connect(t, url), js: js}
}

func (d *deployment) publish(t *testing.T, items ...event.Item) {
	t.Helper()
	for _, it := range items {
		data, err := it.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.owner.Publish(context.Background(), event.ItemsSubject(it.FeedURL), it.ID, data); err != nil {
			t.Fatal(err)
		}
	}
}

// classify runs the classifier service with testdata/deployed.yaml until
// it has classified every item stored, then stops it.
func (d *deployment) classify(t *testing.T) {
	t.Helper()
	cfg, err := config.LoadFor("testdata/deployed.yaml", func(string) (string, bool) { return "", false }, config.Classifier)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := classifier.New(cfg.ClassifierConfig(), d.owner, telemetry.NewMetrics(reg, nil, nil), reg, bustest.Logger(t), classifier.WithoutStories())
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Run(t, "classifier", svc.Run)
	ctx := context.Background()
	bustest.Eventually(t, 20*time.Second, func() bool {
		st, err := d.js.Stream(ctx, event.StreamItems)
		if err != nil {
			return false
		}
		ci, err := d.js.Consumer(ctx, event.StreamItems, event.ConsumerClassifier)
		if err != nil {
			return false
		}
		info, err := ci.Info(ctx)
		return err == nil && info.AckFloor.Stream == st.CachedInfo().State.LastSeq && info.NumPending == 0 && info.NumAckPending == 0
	}, "the classifier took every item")
	stop()
}

// fixture returns testdata/items.jsonl by id.
func fixture(t *testing.T) map[string]event.Item {
	t.Helper()
	out := map[string]event.Item{}
	for _, it := range testkit.ReadJSONL[event.Item](t, "testdata/items.jsonl") {
		out[it.ID] = it
	}
	return out
}

// setUp builds the deployment every test reads: i1–i4 stored before
// mark, i5 and i6 after it, all six classified with deployed.yaml, and
// i7 stored after the classifier stopped (never classified).
func setUp(t *testing.T) (d *deployment, mark time.Time) {
	t.Helper()
	items := fixture(t)
	d = newDeployment(t)
	d.publish(t, items["i1"], items["i2"], items["i3"], items["i4"])
	mark = time.Now()
	d.publish(t, items["i5"], items["i6"])
	d.classify(t)
	d.publish(t, items["i7"])
	return d, mark
}

// backtest runs Run with the rules of a topics file.
func backtest(t *testing.T, d *deployment, rules string, opts Options) (*Report, string) {
	t.Helper()
	set, err := config.LoadTopics(rules, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	c, err := classifier.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, d.b, c, &out, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep, out.String()
}

// jsonReport is the -json output, decoded.
type jsonReport struct {
	changes map[string]changeJSON
	order   []string
	summary map[string]Counts
	items   int
}

func parseJSON(t *testing.T, out string) jsonReport {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	r := jsonReport{changes: map[string]changeJSON{}}
	for _, l := range lines[:len(lines)-1] {
		var ch changeJSON
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ch); err != nil {
			t.Fatalf("changed item line %q: %v", l, err)
		}
		r.changes[ch.ID] = ch
		r.order = append(r.order, ch.ID)
	}
	var sum struct {
		Summary map[string]Counts `json:"summary"`
		Items   *int              `json:"items"`
	}
	dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sum); err != nil || sum.Items == nil || sum.Summary == nil {
		t.Fatalf("summary line %q: %v", lines[len(lines)-1], err)
	}
	r.summary, r.items = sum.Summary, *sum.Items
	return r
}

type change struct{ before, after []string }

// The counts and the changed items of the fixture under changed.yaml,
// worked out by hand from the rules (see testdata).
var (
	wantCounts = map[string]Counts{
		"mining":   {Before: 3, After: 4, Added: 2, Removed: 1}, // i1 i2 i5 → i1 i3 i5 i7
		"shipping": {Before: 1, After: 0, Added: 0, Removed: 1}, // i4 →
		"ports":    {Before: 0, After: 1, Added: 1, Removed: 0}, //  → i5
	}
	wantChanges = map[string]change{
		"i2": {[]string{"mining"}, []string{}},
		"i3": {[]string{}, []string{"mining"}},
		"i4": {[]string{"shipping"}, []string{}},
		"i5": {[]string{"mining"}, []string{"mining", "ports"}},
		"i7": {[]string{}, []string{"mining"}}, // never classified
	}
)

func TestBacktest(t *testing.T) {
	t.Parallel()
	d, mark := setUp(t)
	items := fixture(t)

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		rep, out := backtest(t, d, "testdata/changed.yaml", Options{JSON: true})
		got := parseJSON(t, out)
		if got.items != 7 || rep.Items != 7 {
			t.Errorf("items %d (report %d), want 7", got.items, rep.Items)
		}
		if !reflect.DeepEqual(got.summary, wantCounts) {
			t.Errorf("summary %v\nwant    %v", got.summary, wantCounts)
		}
		checkChanges(t, got, wantChanges, items)
		// In stream order.
		if want := []string{"i2", "i3", "i4", "i5", "i7"}; !slices.Equal(got.order, want) {
			t.Errorf("changed items in order %v, want %v", got.order, want)
		}
		if m := got.changes["i5"].Matches; !reflect.DeepEqual(m, map[string][]string{"mining": {"lithium"}, "ports": {"Port"}}) {
			t.Errorf("i5 matches %v", m)
		}
	})

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		rep, out := backtest(t, d, "testdata/changed.yaml", Options{Source: "changed.yaml"})
		if rep.Items != 7 || rep.Changed != 5 {
			t.Errorf("report: %d items, %d changed; want 7 and 5", rep.Items, rep.Changed)
		}
		want := "backtest of changed.yaml on every item FEEDMON_ITEMS keeps: 7 items read, 5 changed\n\n" +
			"topic      before    after    added  removed\n" +
			"mining          3        4        2        1\n" +
			"ports           0        1        1        0\n" +
			"shipping        1        0        0        1\n"
		if !strings.HasPrefix(out, want) {
			t.Fatalf("output starts\n%s\nwant\n%s", out, want)
		}
		for id, ch := range wantChanges {
			it := items[id]
			block := it.Title + "\n  link:   " + it.Link + "\n  feed:   " + it.FeedURL + "\n  topics: " + topicList(ch.before) + " → " + topicList(ch.after) + "\n"
			if !strings.Contains(out, "\n"+block) {
				t.Errorf("output lacks\n%s", block)
			}
		}
		for _, id := range []string{"i1", "i6"} {
			if strings.Contains(out, items[id].Title) {
				t.Errorf("unchanged %s listed", id)
			}
		}
	})

	t.Run("topic", func(t *testing.T) {
		t.Parallel()
		_, out := backtest(t, d, "testdata/changed.yaml", Options{JSON: true, Topic: "mining"})
		got := parseJSON(t, out)
		if want := map[string]Counts{"mining": wantCounts["mining"]}; !reflect.DeepEqual(got.summary, want) || got.items != 7 {
			t.Errorf("summary %v, %d items; want %v, 7", got.summary, got.items, want)
		}
		checkChanges(t, got, pick(wantChanges, "i2", "i3", "i7"), items)

		// A topic the new rules drop: what it loses.
		_, out = backtest(t, d, "testdata/changed.yaml", Options{JSON: true, Topic: "shipping"})
		got = parseJSON(t, out)
		if want := map[string]Counts{"shipping": wantCounts["shipping"]}; !reflect.DeepEqual(got.summary, want) {
			t.Errorf("shipping summary %v, want %v", got.summary, want)
		}
		checkChanges(t, got, pick(wantChanges, "i4"), items)

		_, text := backtest(t, d, "testdata/changed.yaml", Options{Topic: "mining"})
		if strings.Contains(text, "ports") || strings.Contains(text, "shipping") || !strings.Contains(text, "\nmining ") {
			t.Errorf("-topic mining text shows other topics:\n%s", text)
		}
	})

	t.Run("since", func(t *testing.T) {
		t.Parallel()
		// The window starts at mark: i5, i6 and i7.
		now := mark.Add(time.Hour)
		rep, out := backtest(t, d, "testdata/changed.yaml", Options{JSON: true, Since: time.Hour, Now: func() time.Time { return now }})
		got := parseJSON(t, out)
		want := map[string]Counts{
			"mining": {Before: 1, After: 2, Added: 1},
			"ports":  {After: 1, Added: 1},
		}
		if !reflect.DeepEqual(got.summary, want) || got.items != 3 || !rep.From.Equal(mark) {
			t.Errorf("summary %v, %d items, from %v; want %v, 3, %v", got.summary, got.items, rep.From, want, mark)
		}
		checkChanges(t, got, pick(wantChanges, "i5", "i7"), items)

		// A window after the last item: nothing read.
		later := time.Now().Add(time.Hour)
		rep, _ = backtest(t, d, "testdata/changed.yaml", Options{JSON: true, Since: time.Minute, Now: func() time.Time { return later }})
		if rep.Items != 0 || rep.Changed != 0 {
			t.Errorf("empty window: %+v", rep)
		}
	})

	t.Run("same rules", func(t *testing.T) {
		t.Parallel()
		// The rules the deployment classified with change nothing, but
		// for the item it never classified.
		_, out := backtest(t, d, "testdata/deployed.yaml", Options{JSON: true})
		got := parseJSON(t, out)
		checkChanges(t, got, map[string]change{"i7": {[]string{}, []string{"mining"}}}, items)
		want := map[string]Counts{"mining": {Before: 3, After: 4, Added: 1}, "shipping": {Before: 1, After: 1}}
		if !reflect.DeepEqual(got.summary, want) {
			t.Errorf("summary %v, want %v", got.summary, want)
		}
	})

	t.Run("explain", func(t *testing.T) {
		t.Parallel()
		_, out := backtest(t, d, "testdata/changed.yaml", Options{Explain: true})
		for _, want := range []string{
			"  mining: matched, score 1.5 (threshold 1)\n    fired      \"nickel\" as \"Nickel\" in title: +1.5\n",
			"  ports: matched, score 1.5 (threshold 1)\n    fired      \"port\" as \"Port\" in title: +1.5\n",
			"  shipping: not in the rules backtested\n",
			"  mining: not matched, no term of it in the item\n", // i2: cobalt is gone
		} {
			if !strings.Contains(out, want) {
				t.Errorf("explain output lacks %q:\n%s", want, out)
			}
		}
		_, out = backtest(t, d, "testdata/changed.yaml", Options{Explain: true, JSON: true})
		got := parseJSON(t, out)
		if ex := got.changes["i3"].Explain; len(ex) != 1 || ex[0].Topic != "mining" || !ex[0].Matched || ex[0].Fired[0].Text != "Nickel" {
			t.Errorf("i3 explain %+v", ex)
		}
	})
}

func pick(m map[string]change, ids ...string) map[string]change {
	out := map[string]change{}
	for _, id := range ids {
		out[id] = m[id]
	}
	return out
}

// checkChanges checks that got lists exactly want's items, with their
// fields and topics.
func checkChanges(t *testing.T, got jsonReport, want map[string]change, items map[string]event.Item) {
	t.Helper()
	if len(got.changes) != len(want) {
		t.Errorf("changed items %v, want %v", got.order, keys(want))
	}
	for id, w := range want {
		g, ok := got.changes[id]
		if !ok {
			t.Errorf("%s not listed as changed", id)
			continue
		}
		it := items[id]
		if g.Title != it.Title || g.Link != it.Link || g.FeedURL != it.FeedURL || g.Published != it.Published {
			t.Errorf("%s: %+v, want the item's title, link, feed_url and published", id, g)
		}
		if !slices.Equal(g.Before, w.before) || !slices.Equal(g.After, w.after) || g.Before == nil || g.After == nil {
			t.Errorf("%s: before %q after %q, want %q → %q", id, g.Before, g.After, w.before, w.after)
		}
	}
}

func keys(m map[string]change) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// natsState is what a read-only command must leave as it found it: the
// streams, their messages and consumers, and each consumer's progress.
type natsState struct {
	Streams, Consumers int
	Store, Memory      uint64
	PerStream          map[string]streamState
}

type streamState struct {
	Msgs, Bytes, FirstSeq, LastSeq uint64
	Consumers                      map[string]consumerState
}

type consumerState struct {
	Delivered, AckFloor        jetstream.SequenceInfo
	NumPending                 uint64
	NumAckPending, Redelivered int
	Durable                    string
	AckPolicy                  jetstream.AckPolicy
}

func snapshot(t *testing.T, js jetstream.JetStream) natsState {
	t.Helper()
	ctx := context.Background()
	acc, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := natsState{Streams: acc.Streams, Consumers: acc.Consumers, Store: acc.Store, Memory: acc.Memory, PerStream: map[string]streamState{}}
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		ss := streamState{Msgs: info.State.Msgs, Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Consumers: map[string]consumerState{}}
		cl := st.ListConsumers(ctx)
		for ci := range cl.Info() {
			// LastActive moves on reads of the stream; the rest may not.
			ss.Consumers[ci.Name] = consumerState{
				Delivered: seqOnly(ci.Delivered), AckFloor: seqOnly(ci.AckFloor), NumPending: ci.NumPending,
				NumAckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered, Durable: ci.Config.Durable, AckPolicy: ci.Config.AckPolicy,
			}
		}
		if err := cl.Err(); err != nil {
			t.Fatal(err)
		}
		s.PerStream[name] = ss
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

func seqOnly(s jetstream.SequenceInfo) jetstream.SequenceInfo {
	return jetstream.SequenceInfo{Consumer: s.Consumer, Stream: s.Stream}
}

// TestReadOnly: a backtest leaves NATS with the same streams, consumers
// and message counts, and every consumer where it was.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	d, _ := setUp(t)
	before := snapshot(t, d.js)
	if before.PerStream[event.StreamClassified].Msgs == 0 || len(before.PerStream[event.StreamItems].Consumers) != 1 {
		t.Fatalf("the fixture is not a classified deployment: %+v", before)
	}
	for _, opts := range []Options{{}, {JSON: true, Explain: true}, {Since: time.Hour, Topic: "mining"}} {
		backtest(t, d, "testdata/changed.yaml", opts)
		if after := snapshot(t, d.js); !reflect.DeepEqual(after, before) {
			t.Fatalf("NATS after a backtest (%+v):\n%+v\nbefore:\n%+v", opts, after, before)
		}
	}
}

// A read stopped half-way, by its caller or its context, removes its
// consumer all the same.
func TestStoppedReadLeavesNoConsumer(t *testing.T) {
	t.Parallel()
	d, _ := setUp(t)
	before := snapshot(t, d.js)
	st, err := d.b.Stream(context.Background(), event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	n := 0
	err = scan(context.Background(), st, time.Time{}, false, func(jetstream.Msg, *jetstream.MsgMetadata) error {
		if n++; n == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || n != 2 {
		t.Fatalf("scan: %v after %d messages, want the callback's error after 2", err, n)
	}
	if after := snapshot(t, d.js); !reflect.DeepEqual(after, before) {
		t.Fatalf("NATS after a stopped read:\n%+v\nbefore:\n%+v", after, before)
	}

	ctx, cancel := context.WithCancel(context.Background())
	_ = scan(ctx, st, time.Time{}, false, func(jetstream.Msg, *jetstream.MsgMetadata) error {
		cancel()
		return nil
	})
	if after := snapshot(t, d.js); !reflect.DeepEqual(after, before) {
		t.Fatalf("NATS after a cancelled read:\n%+v\nbefore:\n%+v", after, before)
	}
}

// A classified record published without the classifier's message id
// still counts: its item id comes from its body.
func TestRecordWithoutMsgID(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	it := fixture(t)["i2"]
	d.publish(t, it)
	it.Topics = []string{"mining"}
	data, err := it.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.js.Publish(context.Background(), event.ClassifiedSubject("mining"), data); err != nil {
		t.Fatal(err)
	}
	_, out := backtest(t, d, "testdata/changed.yaml", Options{JSON: true})
	checkChanges(t, parseJSON(t, out), pick(wantChanges, "i2"), fixture(t))
}

// When FEEDMON_CLASSIFIED has dropped records the window reaches back
// to, the report says since when it has them.
func TestClassifiedKeepsLessHistory(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	items := fixture(t)
	for _, id := range []string{"i1", "i2"} {
		it := items[id]
		d.publish(t, it)
		it.Topics = []string{"mining"}
		data, err := it.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.owner.Publish(context.Background(), event.ClassifiedSubject("mining"), event.ClassifiedMsgID(id, "mining"), data); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := backtest(t, d, "testdata/deployed.yaml", Options{JSON: true})
	if !rep.ClassifiedSince.IsZero() || rep.Changed != 0 {
		t.Fatalf("with every record kept: %+v", rep)
	}
	// Retention took i1's record.
	st, err := d.js.Stream(context.Background(), event.StreamClassified)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	rep, out := backtest(t, d, "testdata/deployed.yaml", Options{JSON: true})
	if rep.ClassifiedSince.IsZero() {
		t.Error("no note of the classified stream's shorter history")
	}
	checkChanges(t, parseJSON(t, out), map[string]change{"i1": {[]string{}, []string{"mining"}}}, items)
}
