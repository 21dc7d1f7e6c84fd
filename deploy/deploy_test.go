// Package deploy_test checks the docker compose deployment without a Docker
// engine: docker-compose.yml through compose-go (the loader docker compose
// uses), the example config through internal/config, and that compose,
// Prometheus, Grafana and the feedmon config agree with one another on
// service names, ports and paths. promql_test.go checks the dashboard's and
// the alerts' queries against the metrics the app exports; deploy/check.sh
// runs promtool over the Prometheus files.
//
// These checks are a module of their own (go.mod here, feedmon replaced by
// the checkout above), so that what they test with — compose-go, kustomize,
// Prometheus's PromQL parser — is not a dependency of feedmon. .ci/run runs
// them: cd deploy && go test ./...
package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/feedmon/feedmon/internal/config"
)

// Names the files agree on.
const (
	composeFile     = "../docker-compose.yml"
	exampleConfig   = "feedmon.yaml"
	configInside    = "/etc/feedmon/feedmon.yaml"
	metricsPort     = "9464"
	natsService     = "nats"
	exporterService = "nats-exporter"
	exporterPort    = "7777"
	natsMonitorPort = "8222"
)

// feedmonServices are the compose services that run feedmon, each with the
// command it runs.
var feedmonServices = []string{"poller", "classifier", "notifier"}

// noEnv is an empty environment: the files must be valid with no variable set.
func noEnv(string) (string, bool) { return "", false }

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeEnv(t, nil)
}

// loadComposeEnv loads docker-compose.yml with env ("NAME=value") as the
// only environment.
func loadComposeEnv(t *testing.T, env []string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(".."),
		cli.WithDiscardEnvFile,
		cli.WithEnv(env),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

// flagValue returns the value after flag in a command, "" if absent.
func flagValue(cmd []string, flag string) string {
	for i, a := range cmd {
		if a == flag && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// bindTarget returns where the repository path rel is mounted in s, "" if not.
func bindTarget(t *testing.T, s types.ServiceConfig, rel string) string {
	t.Helper()
	want, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == want {
			if !v.ReadOnly {
				t.Errorf("%s: %s is mounted writable; mount it :ro", s.Name, rel)
			}
			return v.Target
		}
	}
	return ""
}

func publishes(s types.ServiceConfig, target string) bool {
	for _, p := range s.Ports {
		if p.Target != 0 && target == itoa(p.Target) && p.Published != "" {
			return true
		}
	}
	return false
}

func itoa(n uint32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func healthURL(t *testing.T, s types.ServiceConfig) *url.URL {
	t.Helper()
	if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
		t.Fatalf("%s: no healthcheck", s.Name)
	}
	test := s.HealthCheck.Test
	if test[0] != "CMD" {
		t.Fatalf("%s: healthcheck %q: use the exec form [\"CMD\", ...]; the images have no shell to rely on", s.Name, test)
	}
	last := test[len(test)-1]
	u, err := url.Parse(last)
	if err != nil || u.Host == "" {
		t.Fatalf("%s: healthcheck %q does not end with a URL", s.Name, test)
	}
	if s.HealthCheck.Interval == nil || s.HealthCheck.Timeout == nil || s.HealthCheck.Retries == nil {
		t.Errorf("%s: healthcheck without interval, timeout or retries", s.Name)
	}
	return u
}

func TestComposeFeedmonServices(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	if p.Name != "feedmon" {
		t.Errorf("project name %q, want feedmon", p.Name)
	}
	var image string
	for _, name := range feedmonServices {
		s := service(t, p, name)
		// One image, built from deploy/Dockerfile at the repository root.
		if s.Build == nil {
			t.Fatalf("%s: no build section", name)
		}
		root, _ := filepath.Abs("..")
		if filepath.Clean(s.Build.Context) != root {
			t.Errorf("%s: build context %s, want the repository root", name, s.Build.Context)
		}
		if s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: dockerfile %q, want deploy/Dockerfile", name, s.Build.Dockerfile)
		}
		if image == "" {
			image = s.Image
		} else if s.Image != image {
			t.Errorf("%s: image %q, want the same image as the others (%q)", name, s.Image, image)
		}

		// feedmon <service> -config /etc/feedmon/feedmon.yaml -metrics-listen 0.0.0.0:9464
		cmd := []string(s.Command)
		if len(cmd) == 0 || cmd[0] != name {
			t.Errorf("%s: command %q, want `%s ...`", name, cmd, name)
		}
		if got := flagValue(cmd, "-config"); got != configInside {
			t.Errorf("%s: -config %q, want %s", name, got, configInside)
		}
		listen := flagValue(cmd, "-metrics-listen")
		host, port, err := net.SplitHostPort(listen)
		if err != nil || port != metricsPort || (host != "0.0.0.0" && host != "") {
			t.Errorf("%s: -metrics-listen %q, want 0.0.0.0:%s (reachable by Prometheus)", name, listen, metricsPort)
		}
		if got := bindTarget(t, s, "deploy/feedmon.yaml"); got != configInside {
			t.Errorf("%s: deploy/feedmon.yaml mounted at %q, want %s", name, got, configInside)
		}

		// The healthcheck asks /readyz on the metrics port, with a tool
		// the final image has (busybox wget on alpine).
		u := healthURL(t, s)
		if u.Path != "/readyz" || u.Port() != metricsPort {
			t.Errorf("%s: healthcheck probes %s, want /readyz on port %s", name, u, metricsPort)
		}
		if s.HealthCheck.Test[1] != "wget" {
			t.Errorf("%s: healthcheck runs %q; the image (alpine) has busybox wget, not curl", name, s.HealthCheck.Test[1])
		}
		if dep, ok := s.DependsOn[natsService]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: want depends_on nats with condition service_healthy", name)
		}
		if !publishes(s, metricsPort) {
			t.Errorf("%s: metrics port %s not published", name, metricsPort)
		}
	}
}

func TestComposeInfrastructure(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)

	// NATS: JetStream with its store on a named volume, monitoring on 8222.
	n := service(t, p, natsService)
	cmd := []string(n.Command)
	if !slices.Contains(cmd, "-js") {
		t.Errorf("nats: command %q lacks -js (JetStream)", cmd)
	}
	store := flagValue(cmd, "-sd")
	if store == "" {
		t.Errorf("nats: command %q lacks -sd (JetStream store dir)", cmd)
	}
	if got := flagValue(cmd, "-m"); got != natsMonitorPort {
		t.Errorf("nats: -m %q, want %s (the exporter reads it)", got, natsMonitorPort)
	}
	persistent := false
	for _, v := range n.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == store {
			persistent = true
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("nats: volume %q is not declared", v.Source)
			}
		}
	}
	if !persistent {
		t.Errorf("nats: the JetStream store %s is not on a named volume", store)
	}
	if !publishes(n, "4222") {
		t.Error("nats: client port 4222 not published (nats sub from the host)")
	}
	if u := healthURL(t, n); u.Port() != natsMonitorPort || u.Path != "/healthz" {
		t.Errorf("nats: healthcheck probes %s, want /healthz on %s", u, natsMonitorPort)
	}

	// The exporter reads the NATS monitoring endpoint.
	ex := service(t, p, exporterService)
	if !strings.HasPrefix(ex.Image, "natsio/prometheus-nats-exporter:") {
		t.Errorf("nats-exporter: image %q, want natsio/prometheus-nats-exporter:<version>", ex.Image)
	}
	excmd := []string(ex.Command)
	if len(excmd) == 0 {
		t.Fatal("nats-exporter: no command")
	}
	mon, err := url.Parse(excmd[len(excmd)-1])
	if err != nil || mon.Hostname() != natsService || mon.Port() != natsMonitorPort {
		t.Errorf("nats-exporter: reads %q, want http://%s:%s", excmd[len(excmd)-1], natsService, natsMonitorPort)
	}
	if !slices.Contains(excmd, "-varz") {
		t.Errorf("nats-exporter: command %q lacks -varz (the dashboard's NATS panels use it)", excmd)
	}

	// Prometheus: config and rules mounted where --config.file says.
	pr := service(t, p, "prometheus")
	cfgFile := flagValue([]string(pr.Command), "--config.file")
	if got := bindTarget(t, pr, "deploy/prometheus/prometheus.yml"); got == "" || got != cfgFile {
		t.Errorf("prometheus: prometheus.yml mounted at %q, --config.file %q", got, cfgFile)
	}
	for _, rf := range promConfig(t).RuleFiles {
		want := path.Join(path.Dir(cfgFile), rf)
		if got := bindTarget(t, pr, path.Join("deploy/prometheus", rf)); got != want {
			t.Errorf("prometheus: rule file %s mounted at %q, want %s (rule_files resolve relative to the config)", rf, got, want)
		}
	}
	if !publishes(pr, "9090") {
		t.Error("prometheus: port 9090 not published")
	}
	healthURL(t, pr)

	// Grafana: provisioned, anonymous viewers, port 3000.
	g := service(t, p, "grafana")
	if !publishes(g, "3000") {
		t.Error("grafana: port 3000 not published")
	}
	env := func(k string) string {
		if v := g.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if env("GF_AUTH_ANONYMOUS_ENABLED") != "true" || env("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer" {
		t.Error("grafana: want anonymous access as Viewer (GF_AUTH_ANONYMOUS_ENABLED, GF_AUTH_ANONYMOUS_ORG_ROLE)")
	}
	if env("GF_SECURITY_ADMIN_PASSWORD") == "" {
		t.Error("grafana: GF_SECURITY_ADMIN_PASSWORD should default to something when unset")
	}
	for _, dir := range []string{"datasources", "dashboards"} {
		rel := "deploy/grafana/provisioning/" + dir
		if got := bindTarget(t, g, rel); got != "/etc/grafana/provisioning/"+dir {
			t.Errorf("grafana: %s mounted at %q, want /etc/grafana/provisioning/%s", rel, got, dir)
		}
	}
	dashDir := bindTarget(t, g, "deploy/grafana/dashboards")
	if dashDir == "" {
		t.Fatal("grafana: deploy/grafana/dashboards not mounted")
	}
	if prov := grafanaProvider(t); prov != dashDir {
		t.Errorf("grafana: dashboards mounted at %s but the provider reads %s", dashDir, prov)
	}
	if home := env("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"); home != "" {
		rel, ok := strings.CutPrefix(home, dashDir+"/")
		if !ok {
			t.Errorf("grafana: home dashboard %s is not under %s", home, dashDir)
		} else if _, err := os.Stat(filepath.Join("grafana/dashboards", rel)); err != nil {
			t.Errorf("grafana: home dashboard: %v", err)
		}
	}

	// Every named volume in use is declared, and every bind mount exists.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: volume %q not declared", s.Name, v.Source)
				}
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount: %v", s.Name, err)
				}
			}
		}
		if s.Image == "" {
			t.Errorf("%s: no image", s.Name)
		} else if s.Build == nil && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("%s: image %q: pin a version", s.Name, s.Image)
		}
	}
	for _, want := range append([]string{natsService, exporterService, "prometheus", "grafana"}, feedmonServices...) {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
}

// defaultImage is the image reference compose builds and deploy/k8s runs
// when nobody says otherwise.
const defaultImage = "feedmon:local"

// Compose and Kubernetes run one image reference, and both move to a
// registry's image the documented way: FEEDMON_IMAGE and FEEDMON_VERSION
// for compose (which then builds and pushes it), the kustomization's
// images: for Kubernetes.
func TestComposeAndKubernetesRunOneImage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, defaultImage},
		{[]string{"FEEDMON_VERSION=v1.2.3"}, "feedmon:v1.2.3"},
		{[]string{"FEEDMON_IMAGE=registry.example.org/team/feedmon", "FEEDMON_VERSION=v1.2.3"}, "registry.example.org/team/feedmon:v1.2.3"},
	} {
		p := loadComposeEnv(t, tc.env)
		for _, name := range feedmonServices {
			s := service(t, p, name)
			if s.Image != tc.want {
				t.Errorf("%v: %s: image %q, want %q", tc.env, name, s.Image, tc.want)
			}
			if v := s.Build.Args["VERSION"]; v == nil || !strings.HasSuffix(tc.want, ":"+*v) {
				t.Errorf("%v: %s: builds VERSION %v into an image tagged %q", tc.env, name, v, tc.want)
			}
		}
	}

	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "k8s")
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	n := 0
	for _, r := range rm.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		imgs, err := r.GetFieldValue("spec.template.spec.containers[0].image")
		if err != nil {
			t.Fatalf("%s: %v", r.GetName(), err)
		}
		n++
		if imgs != defaultImage {
			t.Errorf("deploy/k8s %s runs %v; docker-compose.yml builds %s", r.GetName(), imgs, defaultImage)
		}
	}
	if n != len(feedmonServices) {
		t.Errorf("deploy/k8s has %d Deployments, want %d", n, len(feedmonServices))
	}
}

// The example config is valid for internal/config and points every service
// at the compose nats service.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadEnv(exampleConfig, noEnv)
	if err != nil {
		t.Fatalf("deploy/feedmon.yaml: %v", err)
	}
	if cfg.NATS.URL == "" {
		t.Fatal("nats.url is empty: the services would each start an embedded server")
	}
	for _, raw := range strings.Split(cfg.NATS.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() != natsService {
			t.Errorf("nats.url host %q, want %q (the compose service)", u.Hostname(), natsService)
		}
		if u.Port() != "4222" {
			t.Errorf("nats.url port %q, want 4222", u.Port())
		}
	}
	if _, port, _ := net.SplitHostPort(cfg.Metrics.Listen); port != metricsPort {
		t.Errorf("metrics.listen %q: want port %s, as the compose commands and Prometheus use", cfg.Metrics.Listen, metricsPort)
	}
	if len(cfg.Feeds) == 0 {
		t.Error("no feeds: compose up would poll nothing")
	}
	if len(cfg.Subscribers) == 0 {
		t.Error("no subscribers: compose up would notify nobody")
	}

	// The services read it inside the containers at the -config path.
	p := loadCompose(t)
	for _, name := range feedmonServices {
		s := service(t, p, name)
		if got := bindTarget(t, s, "deploy/feedmon.yaml"); got != flagValue([]string(s.Command), "-config") {
			t.Errorf("%s: reads %q but deploy/feedmon.yaml is mounted at %q", name, flagValue([]string(s.Command), "-config"), got)
		}
	}
}

type promFile struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func promConfig(t *testing.T) promFile {
	t.Helper()
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var pf promFile
	if err := yaml.Unmarshal(b, &pf); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	return pf
}

// Prometheus scrapes every feedmon service and the NATS exporter at the
// compose service names and ports; its rule files exist beside it.
func TestPrometheusScrapesEveryService(t *testing.T) {
	t.Parallel()
	pf := promConfig(t)
	p := loadCompose(t)
	targets := map[string]map[string]string{} // host:port → labels (with job)
	for _, sc := range pf.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				l := map[string]string{"job": sc.JobName}
				for k, v := range st.Labels {
					l[k] = v
				}
				targets[tg] = l
			}
		}
	}
	for _, name := range feedmonServices {
		tg := net.JoinHostPort(name, metricsPort)
		l, ok := targets[tg]
		if !ok {
			t.Errorf("prometheus.yml does not scrape %s", tg)
			continue
		}
		if l["job"] != "feedmon" || l["service"] != name {
			t.Errorf("%s: labels %v, want job=feedmon service=%s (the dashboard and alerts use them)", tg, l, name)
		}
		_, port, _ := net.SplitHostPort(flagValue([]string(service(t, p, name).Command), "-metrics-listen"))
		if port != metricsPort {
			t.Errorf("%s listens on port %q, Prometheus scrapes %s", name, port, metricsPort)
		}
	}
	if _, ok := targets[net.JoinHostPort(exporterService, exporterPort)]; !ok {
		t.Errorf("prometheus.yml does not scrape the NATS exporter at %s:%s", exporterService, exporterPort)
	}
	for tg := range targets {
		host, _, err := net.SplitHostPort(tg)
		if err != nil {
			t.Errorf("target %q: %v", tg, err)
			continue
		}
		if _, ok := p.Services[host]; !ok && host != "localhost" {
			t.Errorf("target %q: no compose service %q", tg, host)
		}
	}
	if len(pf.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, rf := range pf.RuleFiles {
		if filepath.IsAbs(rf) {
			t.Errorf("rule file %q: use a path relative to prometheus.yml, so promtool check config finds it", rf)
		}
		if _, err := os.Stat(filepath.Join("prometheus", rf)); err != nil {
			t.Errorf("rule file: %v", err)
		}
	}
}

func grafanaProvider(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("grafana/provisioning/dashboards/feedmon.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("dashboard provider: %v", err)
	}
	if f.APIVersion != 1 || len(f.Providers) != 1 || f.Providers[0].Type != "file" {
		t.Fatalf("dashboard provider: want apiVersion 1 and one file provider, got %+v", f)
	}
	return f.Providers[0].Options.Path
}

type grafanaDatasource struct {
	Name      string `yaml:"name"`
	UID       string `yaml:"uid"`
	Type      string `yaml:"type"`
	URL       string `yaml:"url"`
	IsDefault bool   `yaml:"isDefault"`
}

func datasource(t *testing.T) grafanaDatasource {
	t.Helper()
	b, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int                 `yaml:"apiVersion"`
		Datasources []grafanaDatasource `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("datasource: %v", err)
	}
	if f.APIVersion != 1 || len(f.Datasources) != 1 {
		t.Fatalf("datasource: want apiVersion 1 and one data source, got %+v", f)
	}
	return f.Datasources[0]
}

// dashboardDatasource is what every panel and query names as its data
// source: the dashboard's datasource variable, so that the dashboard works
// with whichever Prometheus Grafana has (in compose, the provisioned one,
// which is the default).
var dashboardDatasource = dsRef{Type: "prometheus", UID: "${datasource}"}

// Grafana's data source is the compose Prometheus, the dashboard's
// datasource variable defaults to it, and every panel uses the variable.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	ds := datasource(t)
	if ds.Type != "prometheus" || ds.UID == "" || !ds.IsDefault {
		t.Errorf("datasource %+v: want the default prometheus data source with a uid", ds)
	}
	u, err := url.Parse(ds.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t)
	pr := service(t, p, u.Hostname())
	if !slices.ContainsFunc(pr.Ports, func(pc types.ServicePortConfig) bool { return itoa(pc.Target) == u.Port() }) {
		t.Errorf("datasource %s: service %s has no port %s", ds.URL, pr.Name, u.Port())
	}

	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard: want a uid and a title (stable links)")
	}
	v, ok := d.variable("datasource")
	if !ok || v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("dashboard: want a datasource variable of Prometheus data sources, got %+v", v)
	} else if cur, _ := v.Current.Value.(string); cur != "" {
		t.Errorf("dashboard: the datasource variable defaults to %q; leave it empty so Grafana's default (compose: the provisioned %q) applies", cur, ds.UID)
	}
	ids := map[int]bool{}
	for _, pn := range d.allPanels() {
		if ids[pn.ID] {
			t.Errorf("panel %q: duplicate id %d", pn.Title, pn.ID)
		}
		ids[pn.ID] = true
		if pn.GridPos.X+pn.GridPos.W > 24 || pn.GridPos.W <= 0 || pn.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", pn.Title, pn.GridPos)
		}
		if pn.Type == "row" {
			continue
		}
		if pn.Datasource == nil || *pn.Datasource != dashboardDatasource {
			t.Errorf("panel %q: datasource %+v, want %+v", pn.Title, pn.Datasource, dashboardDatasource)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q: no queries", pn.Title)
		}
		for _, tg := range pn.Targets {
			if tg.Datasource != nil && *tg.Datasource != dashboardDatasource {
				t.Errorf("panel %q query %s: datasource %+v, want %+v", pn.Title, tg.RefID, tg.Datasource, dashboardDatasource)
			}
		}
	}
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// variable is a dashboard variable. Query is a string for a datasource
// variable and {"query": "..."} for a query variable.
type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dsRef          `json:"datasource"`
	RawQuery   json.RawMessage `json:"query"`
	Query      string          `json:"-"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

func (d dashboard) variable(name string) (variable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return variable{}, false
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Datasource  *dsRef                   `json:"datasource"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/feedmon.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("feedmon.json: %v", err)
	}
	for i, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.RawQuery, &d.Templating.List[i].Query) != nil && json.Unmarshal(v.RawQuery, &q) == nil {
			d.Templating.List[i].Query = q.Query
		}
	}
	return d
}

func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// The image: multi-stage, static, stamped with the version, not root.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	var user string
	var stages int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			stages++
			from = append(from, f[1])
			user = ""
		case "USER":
			user = f[1]
		}
	}
	if stages < 2 {
		t.Errorf("Dockerfile: %d stage(s), want a builder and a final stage", stages)
	}
	if !strings.HasPrefix(from[0], "golang:") {
		t.Errorf("Dockerfile: builder from %q, want golang:<version>", from[0])
	}
	if last := from[len(from)-1]; strings.HasPrefix(last, "golang:") {
		t.Errorf("Dockerfile: final stage from %q: ship the binary, not the toolchain", last)
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
		t.Errorf("Dockerfile: final stage runs as %q, want a non-root user", user)
	}
	s := string(b)
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", `-s -w`,
		"-X github.com/feedmon/feedmon/internal/version.Version=",
		"./cmd/feedmon", "ENTRYPOINT",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The compose healthchecks run wget inside the final image.
	if !strings.Contains(from[len(from)-1], "alpine") {
		t.Errorf("Dockerfile: final stage %q may lack wget, which the compose healthchecks run", from[len(from)-1])
	}
}

// CI's promtool, the Prometheus the compose file runs and the PromQL parser
// these tests use are one release, so that what CI accepts is what the
// deployment evaluates.
func TestPrometheusVersionsAgree(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../.ci/install-promtool")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`PROMETHEUS_MODULE_VERSION:-(v0\.3(\d\d)\.(\d+))`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal(".ci/install-promtool: no default PROMETHEUS_MODULE_VERSION")
	}
	module := m[1]
	minor, _ := strconv.Atoi(m[2])
	release := fmt.Sprintf("v3.%d.%s", minor, m[3])

	p := loadCompose(t)
	if img := service(t, p, "prometheus").Image; img != "prom/prometheus:"+release {
		t.Errorf("compose runs %s; .ci/install-promtool builds promtool %s (Prometheus %s)", img, module, release)
	}
	// The parser these tests use is the one this module's go.mod requires.
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	req := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus (v\S+)`).FindSubmatch(gomod)
	if req == nil {
		t.Fatal("go.mod does not require github.com/prometheus/prometheus")
	}
	if string(req[1]) != module {
		t.Errorf("go.mod has github.com/prometheus/prometheus %s; .ci/install-promtool builds %s", req[1], module)
	}
}
