// Package k8s_test checks the Kubernetes manifests without a cluster: the
// kustomization renders with kustomize's own library (what `kubectl apply
// -k` runs), each service runs its own command with probes on the
// endpoints feedmon serves, all three run one image that the kustomization
// can point elsewhere, the config they mount is one feedmon accepts, and
// only the notifier needs the example Secret.
package k8s_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// Image is the image reference the manifests run unless the kustomization
// is told otherwise: the one docker-compose.yml builds (deploy_test.go
// checks that side).
const Image = "feedmon:local"

// secretName is the Secret the notifier reads its receivers' secrets from.
const secretName = "feedmon-secrets"

var services = []string{config.Poller, config.Classifier, config.Notifier}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe struct {
		HTTPGet struct{ Path string } `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
	LivenessProbe struct {
		HTTPGet struct{ Path string } `yaml:"httpGet"`
	} `yaml:"livenessProbe"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
	EnvFrom []struct {
		SecretRef *struct {
			Name     string `yaml:"name"`
			Optional bool   `yaml:"optional"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		ValueFrom struct {
			SecretKeyRef *struct{ Name string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
}

type deployment struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// secrets returns the Secrets a container takes its environment from.
func (c container) secrets() []string {
	var out []string
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			out = append(out, e.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom.SecretKeyRef != nil {
			out = append(out, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	return out
}

func load(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// build renders the kustomization in dir as `kubectl apply -k` would and
// returns the Deployments by name, and the kinds of all resources.
func build(t *testing.T, dir string) (map[string]deployment, []string) {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	deps := map[string]deployment{}
	var kinds []string
	for _, r := range rm.Resources() {
		kinds = append(kinds, r.GetKind()+"/"+r.GetName())
		if r.GetKind() != "Deployment" {
			continue
		}
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var d deployment
		if err := yaml.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		deps[d.Metadata.Name] = d
	}
	return deps, kinds
}

func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	deps, kinds := build(t, ".")
	for _, want := range []string{"Namespace/feedmon", "ConfigMap/feedmon-config", "Deployment/feedmon-poller", "Deployment/feedmon-classifier", "Deployment/feedmon-notifier"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("kustomize build lacks %s (has %v)", want, kinds)
		}
	}
	if slices.Contains(kinds, "Secret/"+secretName) {
		t.Errorf("kustomize build applies the Secret %s: placeholders would overwrite real values", secretName)
	}
	for _, svc := range services {
		d, ok := deps["feedmon-"+svc]
		if !ok {
			t.Errorf("no Deployment feedmon-%s", svc)
			continue
		}
		if d.Metadata.Namespace != "feedmon" {
			t.Errorf("%s: namespace %q", svc, d.Metadata.Namespace)
		}
		if d.Spec.Replicas < 2 {
			t.Errorf("%s: %d replicas, want at least 2", svc, d.Spec.Replicas)
		}
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Fatalf("%s: %d containers", svc, len(cs))
		}
		c := cs[0]
		if c.Image != Image {
			t.Errorf("%s: image %q, want %q (what docker-compose.yml builds; the kustomization points it elsewhere)", svc, c.Image, Image)
		}
		if len(c.Args) == 0 || c.Args[0] != svc || !slices.Contains(c.Args, "-config") {
			t.Errorf("%s: args %v", svc, c.Args)
		}
		if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: probes %q %q", svc, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
			t.Errorf("%s: no resource requests", svc)
		}
	}
}

// The image is set in one place: an overlay (or `kustomize edit set image`)
// moves all three Deployments to the image an operator pushed.
func TestKustomizeImageOverride(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if err := os.CopyFS(base, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "prod")
	if err := os.Mkdir(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	k := "resources: [../base]\nimages:\n  - name: feedmon\n    newName: registry.example.org/team/feedmon\n    newTag: v1.2.3\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	deps, _ := build(t, overlay)
	for _, svc := range services {
		if got := deps["feedmon-"+svc].Spec.Template.Spec.Containers[0].Image; got != "registry.example.org/team/feedmon:v1.2.3" {
			t.Errorf("%s: image %q after the override", svc, got)
		}
	}
}

func configMapDoc(t *testing.T) []byte {
	t.Helper()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	load(t, "configmap.yaml", &cm)
	doc, ok := cm.Data["feedmon.yaml"]
	if !ok {
		t.Fatal("configmap.yaml has no feedmon.yaml")
	}
	return []byte(doc)
}

type secret struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
}

// requiredVar is a ${NAME} without a default.
var requiredVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// The example Secret holds every variable the config needs, the notifier
// (and only the notifier) reads it, and with its values the config is valid.
func TestSecretExample(t *testing.T) {
	t.Parallel()
	var s secret
	load(t, "secret.example.yaml", &s)
	if s.Kind != "Secret" || s.Metadata.Name != secretName {
		t.Fatalf("secret.example.yaml: %s %q, want Secret %q", s.Kind, s.Metadata.Name, secretName)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	load(t, "kustomization.yaml", &k)
	if slices.Contains(k.Resources, "secret.example.yaml") {
		t.Error("kustomization.yaml applies secret.example.yaml: its placeholders would overwrite real values")
	}
	doc := configMapDoc(t)
	for _, m := range requiredVar.FindAllSubmatch(doc, -1) {
		if _, ok := s.StringData[string(m[1])]; !ok {
			t.Errorf("the ConfigMap uses ${%s}; secret.example.yaml does not show it", m[1])
		}
	}
	env := func(k string) (string, bool) { v, ok := s.StringData[k]; return v, ok }
	if _, err := config.Parse(doc, env); err != nil {
		t.Errorf("the ConfigMap with the example Secret's values: %v", err)
	}

	for _, svc := range services {
		var d deployment
		load(t, svc+".yaml", &d)
		got := d.Spec.Template.Spec.Containers[0].secrets()
		want := []string(nil)
		if svc == config.Notifier {
			want = []string{secretName}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: reads Secrets %v, want %v (only the notifier reads the subscribers and their secrets)", svc, got, want)
		}
	}
}

// Each service accepts the ConfigMap with no more than what its pod gets:
// the poller and the classifier have no Secret, the notifier has
// feedmon-secrets and is refused without it, naming every variable.
func TestConfigMapPerService(t *testing.T) {
	t.Parallel()
	doc := configMapDoc(t)
	none := func(string) (string, bool) { return "", false }
	for _, svc := range []string{config.Poller, config.Classifier} {
		cfg, err := config.ParseFor(doc, none, svc)
		if err != nil {
			t.Errorf("%s without a Secret: %v", svc, err)
			continue
		}
		if cfg.NATS.Replicas != 3 || cfg.NATS.URL == "" {
			t.Errorf("nats = %+v, want an external R3 cluster", cfg.NATS)
		}
		if len(cfg.Warnings(svc)) != 0 {
			t.Errorf("%s: warnings %v", svc, cfg.Warnings(svc))
		}
	}
	_, err := config.ParseFor(doc, none, config.Notifier)
	if err == nil {
		t.Fatal("notifier without its Secret: want an error naming the variables")
	}
	for _, m := range requiredVar.FindAllSubmatch(doc, -1) {
		if !strings.Contains(err.Error(), string(m[1])+" is not set") {
			t.Errorf("notifier without its Secret: error does not name %s:\n%v", m[1], err)
		}
	}
}

// Prometheus finds every service's /metrics either way: by the pods'
// prometheus.io annotations (pod scraping) or by the example PodMonitor
// (the Prometheus Operator), both naming the port the service listens on.
func TestScraping(t *testing.T) {
	t.Parallel()
	var pm struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"podMetricsEndpoints"`
		} `yaml:"spec"`
	}
	load(t, "podmonitor.yaml", &pm)
	if pm.Kind != "PodMonitor" || len(pm.Spec.Endpoints) != 1 || pm.Spec.Endpoints[0].Path != "/metrics" || len(pm.Spec.Selector.MatchLabels) == 0 {
		t.Fatalf("podmonitor.yaml: %+v", pm)
	}
	for _, svc := range services {
		var d deployment
		load(t, svc+".yaml", &d)
		tpl := d.Spec.Template
		for k, v := range pm.Spec.Selector.MatchLabels {
			if tpl.Metadata.Labels[k] != v {
				t.Errorf("%s: pod labels %v do not match the PodMonitor's %s=%s", svc, tpl.Metadata.Labels, k, v)
			}
		}
		c := tpl.Spec.Containers[0]
		port := 0
		for _, p := range c.Ports {
			if p.Name == pm.Spec.Endpoints[0].Port {
				port = p.ContainerPort
			}
		}
		if port == 0 {
			t.Errorf("%s: no container port named %q for the PodMonitor", svc, pm.Spec.Endpoints[0].Port)
		}
		a := tpl.Metadata.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(port) {
			t.Errorf("%s: prometheus.io annotations %v, want scrape on port %d", svc, a, port)
		}
		listen := ""
		for i, arg := range c.Args {
			if arg == "-metrics-listen" && i+1 < len(c.Args) {
				listen = c.Args[i+1]
			}
		}
		if _, p, err := net.SplitHostPort(listen); err != nil || p != strconv.Itoa(port) {
			t.Errorf("%s: -metrics-listen %q, but Prometheus scrapes port %d", svc, listen, port)
		}
	}
}

// TestRetentionFitsNATSNodes creates feedmon's streams and buckets, as the
// ConfigMap sizes them, on a nats-server with the JetStream storage that
// nats-values.yaml gives each node. With replicas 3 every node holds a copy
// of everything, so one node of that size must take all of it.
func TestRetentionFitsNATSNodes(t *testing.T) {
	t.Parallel()
	var values struct {
		Config struct {
			JetStream struct {
				FileStore struct {
					MaxSize string `yaml:"maxSize"`
					PVC     struct {
						Size string `yaml:"size"`
					} `yaml:"pvc"`
				} `yaml:"fileStore"`
			} `yaml:"jetstream"`
		} `yaml:"config"`
	}
	load(t, "nats-values.yaml", &values)
	fs := values.Config.JetStream.FileStore
	maxSize, pvc := quantity(t, fs.MaxSize), quantity(t, fs.PVC.Size)
	if maxSize > pvc {
		t.Errorf("maxSize %s is larger than the volume %s", fs.MaxSize, fs.PVC.Size)
	}

	node := bustest.NewCluster(t, 1, func(o *server.Options) { o.JetStreamMaxStore = maxSize })
	// The poller, which needs no Secret, sets up the same streams as every
	// service.
	cfg, err := config.ParseFor(configMapDoc(t), func(string) (string, bool) { return "", false }, config.Poller)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	if n.Retention.Items.MaxBytes == 0 {
		t.Fatal("the ConfigMap sets no retention.items.max_bytes: one node would hold 1 GB of feedmon and leave the rest unused")
	}
	n.URL, n.Replicas = node.URLs(), 1
	b, err := bus.Connect(context.Background(), n, t.Name(), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("on a node with maxSize %s: %v", fs.MaxSize, err)
	}
	for _, bucket := range []string{event.BucketFeeds, event.BucketSeen, event.BucketLeases, event.BucketDelivered, event.BucketWebSub} {
		if _, err := b.KV(ctx, bucket); err != nil {
			t.Fatalf("on a node with maxSize %s: %v", fs.MaxSize, err)
		}
	}
	s, err := b.Stream(ctx, event.StreamItems)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != int64(n.Retention.Items.MaxBytes) {
		t.Errorf("items stream capped at %d bytes, the ConfigMap says %s", got, n.Retention.Items.MaxBytes)
	}
}

// quantity parses a Kubernetes quantity such as 10Gi or 500M.
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	units := map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "": 1}
	num := strings.TrimRight(q, "KMGTikmgt")
	n, err := strconv.ParseInt(num, 10, 64)
	mult, ok := units[q[len(num):]]
	if err != nil || !ok {
		t.Fatalf("quantity %q", q)
	}
	return n * mult
}
