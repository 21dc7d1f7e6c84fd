package deploy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/internal/config"
)

// pending are metrics the dashboard and alerts use that the services do not
// export yet, with what they must be once they do. A name listed here and
// missing from the app is logged, not failed; once exported, its type and
// labels are checked.
var pending = map[string]metricSpec{
	"feedmon_consumer_pending": {typ: dto.MetricType_GAUGE, labels: []string{"stream", "consumer"}},
	// WebSub (the contract's names) and the feed output: the dashboard
	// has their panels before the services export them.
	"feedmon_websub_subscriptions":       {typ: dto.MetricType_GAUGE, labels: []string{"state"}},
	"feedmon_websub_notifications_total": {typ: dto.MetricType_COUNTER, labels: []string{"result"}},
	"feedmon_feeds_out_requests_total":   {typ: dto.MetricType_COUNTER, labels: []string{"format", "result"}},
}

type metricSpec struct {
	typ    dto.MetricType
	labels []string
}

// Names that are not the app's: Prometheus's own series, and the NATS
// exporter's metrics (by prefix).
var (
	prometheusOwn  = []string{"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
	exporterPrefix = []string{"gnatsd_", "nats_", "jetstream_"}
	// Labels Prometheus adds to every scraped series (prometheus.yml).
	targetLabels = []string{"job", "instance", "service"}
)

// exported is what the app's registry holds: series name → label names.
type exported struct {
	series map[string][]string
	types  map[string]dto.MetricType
	mfs    []*dto.MetricFamily
}

var (
	appOnce sync.Once
	appMet  *exported
	appErr  string
)

// appMetrics starts feedmon as `feedmon run` would (every service, an
// in-process embedded NATS), waits until it is ready and gathers its
// registry: every metric the app exports, with no list kept by hand.
func appMetrics(t *testing.T) *exported {
	t.Helper()
	appOnce.Do(func() {
		dir, err := os.MkdirTemp("", "feedmon-deploy-test-")
		if err != nil {
			appErr = err.Error()
			return
		}
		defer os.RemoveAll(dir)
		appMet, appErr = gatherApp(dir)
	})
	if appErr != "" {
		t.Fatal(appErr)
	}
	return appMet
}

func gatherApp(storeDir string) (*exported, string) {
	doc := `
nats:
  listen: ""
  store_dir: ` + storeDir + `
metrics:
  listen: 127.0.0.1:0
subscribers:
  - name: console
    topics: [rare_earths, defense, trade]
    stdout: {}
`
	cfg, err := config.Parse([]byte(doc), noEnv)
	if err != nil {
		return nil, "config: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := &app.Main{Config: cfg, Services: app.All, Log: slog.New(slog.DiscardHandler), Stdout: io.Discard, Name: "deploy-test"}
	if err := m.Start(ctx); err != nil {
		return nil, "app start: " + err.Error()
	}
	defer m.Close()
	// Some series (a consumer's pending count) exist only once the
	// services are ready; wait for that, without sleeping blind.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for m.Ready() != nil {
		select {
		case <-ctx.Done():
			return nil, "app not ready within 30s: " + m.Ready().Error()
		case <-tick.C:
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		return nil, "gather: " + err.Error()
	}
	e := &exported{series: map[string][]string{}, types: map[string]dto.MetricType{}, mfs: mfs}
	for _, mf := range mfs {
		var lbls []string
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !slices.Contains(lbls, lp.GetName()) {
					lbls = append(lbls, lp.GetName())
				}
			}
		}
		name := mf.GetName()
		e.types[name] = mf.GetType()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			e.series[name+"_bucket"] = append(slices.Clone(lbls), "le")
			e.series[name+"_sum"] = lbls
			e.series[name+"_count"] = lbls
		case dto.MetricType_SUMMARY:
			e.series[name] = append(slices.Clone(lbls), "quantile")
			e.series[name+"_sum"] = lbls
			e.series[name+"_count"] = lbls
		default:
			e.series[name] = lbls
		}
	}
	return e, ""
}

var (
	// Grafana's own variables ($__rate_interval, ...).
	grafanaVar = regexp.MustCompile(`\$__[a-z_]+|\$\{__[a-z_]+\}`)
	// The dashboard's variables ($job, ${instance}).
	dashboardVar = regexp.MustCompile(`\$([a-z_]+)|\$\{([a-z_]+)\}`)
)

// dashboardVars are the dashboard's own variables that queries may use.
var dashboardVars = []string{"job", "instance"}

// varValue is what a dashboard variable becomes for parsing: a valid label
// value and regex that still says which variable it was.
func varValue(name string) string { return "__var_" + name + "__" }

// parseQuery parses a dashboard or alert query, with Grafana's variables
// turned into a duration and the dashboard's into varValue.
func parseQuery(expr string) (parser.Expr, error) {
	q := grafanaVar.ReplaceAllString(expr, "5m")
	var bad []string
	q = dashboardVar.ReplaceAllStringFunc(q, func(v string) string {
		name := strings.Trim(v, "${}")
		if !slices.Contains(dashboardVars, name) {
			bad = append(bad, v)
		}
		return varValue(name)
	})
	if len(bad) > 0 {
		return nil, fmt.Errorf("uses %s, not a dashboard variable (%s)", strings.Join(bad, ", "), strings.Join(dashboardVars, ", "))
	}
	return parser.NewParser(parser.Options{}).ParseExpr(q)
}

// metricName is the metric a selector selects, "" if none.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// notTheApps reports whether a metric comes from Prometheus itself or the
// NATS exporter rather than from feedmon's processes.
func notTheApps(name string) bool {
	return slices.Contains(prometheusOwn, name) || slices.ContainsFunc(exporterPrefix, func(p string) bool { return strings.HasPrefix(name, p) })
}

// exprProblems parses one PromQL expression and says what is wrong with it:
// a syntax error, a metric the app does not export, a label matcher on a
// label the metric does not have.
func exprProblems(t *testing.T, e *exported, expr string) []string {
	t.Helper()
	ast, err := parseQuery(expr)
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	var problems []string
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := metricName(vs)
		if name == "" {
			problems = append(problems, "selector without a metric name: "+vs.String())
			return nil
		}
		if notTheApps(name) {
			return nil
		}
		have, ok := e.series[name]
		if !ok {
			if base, spec, isPending := pendingSeries(name); isPending {
				t.Logf("%s: not exported yet (the services must export %s: %s with labels %v)", name, base, spec.typ, spec.labels)
				have = spec.labels
			} else {
				problems = append(problems, "metric "+name+" is not exported by feedmon")
				return nil
			}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName || slices.Contains(targetLabels, m.Name) {
				continue
			}
			if !slices.Contains(have, m.Name) {
				problems = append(problems, "metric "+name+" has no label "+m.Name+" (it has "+strings.Join(have, ", ")+")")
			}
		}
		return nil
	})
	return problems
}

func pendingSeries(name string) (string, metricSpec, bool) {
	for base, spec := range pending {
		if name == base {
			return base, spec, true
		}
	}
	return "", metricSpec{}, false
}

// Every panel's PromQL parses and names only metrics feedmon (or
// Prometheus, or the NATS exporter) exports, with labels they have.
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	e := appMetrics(t)
	d := loadDashboard(t)
	n := 0
	for _, pn := range d.allPanels() {
		for _, tg := range pn.Targets {
			n++
			for _, p := range exprProblems(t, e, tg.Expr) {
				t.Errorf("panel %q query %s (%s): %s", pn.Title, tg.RefID, tg.Expr, p)
			}
		}
	}
	if n == 0 {
		t.Fatal("dashboard has no queries")
	}
	// The panels the deployment promises.
	titles := map[string]bool{}
	for _, pn := range d.allPanels() {
		titles[pn.Title] = true
	}
	for _, want := range []string{
		"Feeds by state", "Polls/s by result", "Fetch latency", "Items published/s",
		"Items by topic/s", "Notifications/s by receiver and result", "Pipeline latency",
		"Consumer pending", "Dead letters per hour",
	} {
		if !titles[want] {
			t.Errorf("dashboard has no panel %q", want)
		}
	}
}

// Every query of a series from feedmon's processes selects the dashboard's
// job and instance, so that the dashboard shows one deployment however
// Prometheus scrapes it: compose's static job, Kubernetes pod scraping,
// the Prometheus Operator's PodMonitor or ServiceMonitor jobs.
func TestDashboardQueriesUseTheVariables(t *testing.T) {
	t.Parallel()
	e := appMetrics(t)
	d := loadDashboard(t)
	for _, name := range dashboardVars {
		v, ok := d.variable(name)
		if !ok {
			t.Errorf("dashboard has no variable %q", name)
			continue
		}
		if v.Type != "query" || v.Datasource == nil || *v.Datasource != dashboardDatasource {
			t.Errorf("variable %s: type %q datasource %+v, want a query of %+v", name, v.Type, v.Datasource, dashboardDatasource)
		}
		if !v.Multi || !v.IncludeAll || v.AllValue != "" {
			t.Errorf("variable %s: want multi-value with All meaning every value found (no allValue, which would match other jobs' series too); multi %v includeAll %v allValue %q", name, v.Multi, v.IncludeAll, v.AllValue)
		}
		// label_values(<selector>, <label>): a selector of a metric every
		// feedmon process exports, and the label is the variable's.
		m := regexp.MustCompile(`^label_values\((.+),\s*([a-z_]+)\)$`).FindStringSubmatch(v.Query)
		if m == nil || m[2] != name {
			t.Errorf("variable %s: query %q, want label_values(<feedmon metric>, %s)", name, v.Query, name)
			continue
		}
		for _, p := range exprProblems(t, e, m[1]) {
			t.Errorf("variable %s: %s", name, p)
		}
		if ast, err := parseQuery(m[1]); err == nil {
			if vs, ok := ast.(*parser.VectorSelector); !ok || !strings.HasPrefix(metricName(vs), "feedmon_") {
				t.Errorf("variable %s: %q selects no feedmon metric: it would offer other programs' jobs", name, m[1])
			}
		}
	}
	for _, pn := range d.allPanels() {
		for _, tg := range pn.Targets {
			ast, err := parseQuery(tg.Expr)
			if err != nil {
				continue // TestDashboardQueriesUseExportedMetrics says why
			}
			parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				if name := metricName(vs); name == "" || (notTheApps(name) && name != "up") {
					return nil
				}
				for _, want := range dashboardVars {
					if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
						return m.Name == want && m.Type == labels.MatchRegexp && m.Value == varValue(want)
					}) {
						t.Errorf("panel %q query %s: %s does not select %s=~\"$%s\"", pn.Title, tg.RefID, vs, want, want)
					}
				}
				for _, m := range vs.LabelMatchers {
					if m.Name == "service" {
						t.Errorf("panel %q query %s: %s selects the label service, which only the compose scrape config adds", pn.Title, tg.RefID, vs)
					}
				}
				return nil
			})
		}
	}
}

// A panel plots one kind of quantity: durations in seconds (on a seconds
// axis) are never drawn on one axis with rates or counts.
func TestDashboardPanelsHaveOneUnit(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	for _, pn := range d.allPanels() {
		var seconds, other int
		for _, tg := range pn.Targets {
			if strings.Contains(tg.Expr, "histogram_quantile(") && strings.Contains(tg.Expr, "_seconds_bucket") {
				seconds++
			} else {
				other++
			}
		}
		if seconds > 0 && other > 0 {
			t.Errorf("panel %q mixes durations with other quantities on one axis; split it", pn.Title)
		}
		if unit := pn.FieldConfig.Defaults.Unit; seconds > 0 && unit != "s" {
			t.Errorf("panel %q plots durations in seconds with unit %q, want s", pn.Title, unit)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The alert rules query only exported metrics (promtool checks syntax, not
// whether a metric exists), and each says how bad it is.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	e := appMetrics(t)
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			for _, p := range exprProblems(t, e, r.Expr) {
				t.Errorf("alert %s: %s", r.Alert, p)
			}
			if s := r.Labels["severity"]; s != "page" && s != "warning" {
				t.Errorf("alert %s: severity %q, want page or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: want a summary and a description", r.Alert)
			}
		}
	}
	sort.Strings(names)
	// What the deployment promises to page on.
	for _, want := range []string{
		"FeedmonTargetDown", "FeedmonFeedsFailing", "FeedmonNothingPublished",
		"FeedmonNotificationsFailing", "FeedmonDeadLettersGrowing", "FeedmonConsumerLagGrowing",
	} {
		if _, ok := slices.BinarySearch(names, want); !ok {
			t.Errorf("alerts.yml has no alert %s", want)
		}
	}

	// The rules' unit tests feed series of exported metrics only, so that
	// they test what Prometheus will really see.
	tb, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
			AlertRuleTests []struct {
				Alertname string `yaml:"alertname"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tb, &tf); err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, in := range tc.InputSeries {
			for _, p := range exprProblems(t, e, in.Series) {
				t.Errorf("alerts_test.yml series %s: %s", in.Series, p)
			}
		}
		for _, at := range tc.AlertRuleTests {
			tested[at.Alertname] = true
		}
	}
	for _, n := range names {
		if !tested[n] {
			t.Errorf("alert %s has no test in alerts_test.yml", n)
		}
	}
}

// The whole app's registry passes promlint, and the metrics still pending
// have the promised shape once they exist.
func TestAppMetricsLint(t *testing.T) {
	t.Parallel()
	e := appMetrics(t)
	problems, err := promlint.NewWithMetricFamilies(e.mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for name, spec := range pending {
		typ, ok := e.types[name]
		if !ok {
			t.Logf("%s (%s, labels %v) is not exported yet", name, spec.typ, spec.labels)
			continue
		}
		if typ != spec.typ {
			t.Errorf("%s is a %s, the dashboard and alerts expect a %s", name, typ, spec.typ)
		}
		for _, l := range spec.labels {
			if !slices.Contains(e.series[name], l) {
				t.Errorf("%s has no label %q (has %v)", name, l, e.series[name])
			}
		}
	}
}
