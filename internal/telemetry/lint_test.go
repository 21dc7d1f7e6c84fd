package telemetry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/feedmon/feedmon/internal/telemetry"
)

// highCardinality are label names that would carry one value per feed, item
// or URL: a metric must never be labelled by them.
var highCardinality = []string{"url", "feed", "feed_url", "link", "id", "item", "item_id", "title", "host"}

// LintRegistry gathers g and fails t on every problem promlint finds
// (naming, units, _total on counters, help text, ...), on a feedmon metric
// without the feedmon_ prefix, and on a label that would make a series per
// feed, item or URL. The Go and process collectors' metrics are linted too.
func LintRegistry(t testing.TB, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(mfs) == 0 {
		t.Fatal("gather: no metrics")
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "feedmon_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("%s: a feedmon metric's name starts with feedmon_", name)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if slices.Contains(highCardinality, lp.GetName()) {
					t.Errorf("%s: label %q makes one series per %s; use a low-cardinality label", name, lp.GetName(), lp.GetName())
				}
			}
		}
	}
}

func TestLintContractMetrics(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry("test")
	telemetry.NewMetrics(reg, []string{"webhook", "stdout"}, []string{"rare_earths", "defense", "trade"})
	LintRegistry(t, reg)
}

// The lint itself must catch what it promises to: a counter without _total,
// a non-base unit, a per-feed label.
func TestLintRegistryCatchesProblems(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]prometheus.Collector{
		"counter without _total": prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmon_polls", Help: "x"}),
		"milliseconds": prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmon_fetch_milliseconds", Help: "x"}),
		"no prefix": prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "poller_feeds", Help: "x"}),
		"per-feed label": func() prometheus.Collector {
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "feedmon_fetches_total", Help: "x"}, []string{"feed_url"})
			v.WithLabelValues("https://example.org/rss")
			return v
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			rec := &recorder{TB: t}
			LintRegistry(rec, reg)
			if len(rec.errs) == 0 {
				t.Errorf("LintRegistry found no problem in %s", name)
			}
		})
	}
}

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) { r.errs = append(r.errs, format) }
func (r *recorder) Helper()                           {}
