// Package k8s_test checks the Kubernetes manifests without a cluster: they
// parse, every resource the kustomization names exists, each service runs
// its own command with probes on the endpoints feedmon serves, and the
// config they mount is one feedmon accepts.
package k8s_test

import (
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/feedmon/feedmon/internal/config"
)

type deployment struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				Containers []struct {
					Args           []string `yaml:"args"`
					ReadinessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
					Resources struct {
						Requests map[string]string `yaml:"requests"`
					} `yaml:"resources"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
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

func TestKustomizationResourcesExist(t *testing.T) {
	t.Parallel()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	load(t, "kustomization.yaml", &k)
	for _, want := range []string{"configmap.yaml", "poller.yaml", "classifier.yaml", "notifier.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization lacks %s", want)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"poller", "classifier", "notifier"} {
		var d deployment
		load(t, svc+".yaml", &d)
		if d.Kind != "Deployment" || d.Spec.Replicas < 2 {
			t.Errorf("%s: kind %q replicas %d", svc, d.Kind, d.Spec.Replicas)
		}
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 1 {
			t.Fatalf("%s: %d containers", svc, len(cs))
		}
		c := cs[0]
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

func TestConfigMapIsValidConfig(t *testing.T) {
	t.Parallel()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	load(t, "configmap.yaml", &cm)
	env := map[string]string{"FEEDMON_WEBHOOK_URL": "https://hooks.example.org/feedmon", "FEEDMON_WEBHOOK_SECRET": "s"}
	cfg, err := config.Parse([]byte(cm.Data["feedmon.yaml"]), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Replicas != 3 || cfg.NATS.URL == "" {
		t.Errorf("nats = %+v, want an external R3 cluster", cfg.NATS)
	}
}
