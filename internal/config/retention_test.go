package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/config"
)

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want config.ByteSize
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"512MB", 512_000_000},
		{"512 MB", 512_000_000},
		{"2GB", 2_000_000_000},
		{"2GiB", 2 << 30},
		{"2gib", 2 << 30},
		{"1.5GB", 1_500_000_000},
		{"100kB", 100_000},
		{"64KiB", 64 << 10},
		{"1TB", 1_000_000_000_000},
		{"10B", 10},
	}
	for _, tt := range tests {
		got, err := config.ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "GB", "2G", "2 gigabytes", "-1", "1e3", "9999999TB"} {
		if _, err := config.ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q): want an error", bad)
		}
	}
	if _, err := config.ParseByteSize("2G"); err == nil || !strings.Contains(err.Error(), "2GB") && !strings.Contains(err.Error(), "GiB") {
		t.Errorf("ParseByteSize(2G) error %v does not say how to write it", err)
	}
}

func TestByteSizeString(t *testing.T) {
	t.Parallel()
	for in, want := range map[config.ByteSize]string{
		2_000_000_000: "2GB",
		2 << 30:       "2GiB",
		512_000_000:   "512MB",
		1_234_567_890: "1.23GB",
		1_234_567:     "1.2MB",
		999:           "999B",
	} {
		if got := in.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestRetentionDefaults(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{"", "retention: {}\n", "poll: {interval: 1m}\n"} {
		cfg, err := config.Parse([]byte(doc), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		r := cfg.Retention
		if r.Items.MaxAge.D() != 168*time.Hour || r.Classified.MaxAge.D() != 168*time.Hour ||
			r.Alerts.MaxAge.D() != 168*time.Hour || r.Dead.MaxAge.D() != 720*time.Hour {
			t.Errorf("%q: retention ages = %+v", doc, r)
		}
		for _, s := range r.Streams() {
			if s.MaxBytes != 0 {
				t.Errorf("%q: %s.max_bytes = %d, want 0", doc, s.Key, s.MaxBytes)
			}
		}
		if cfg.NATS.Retention != r {
			t.Errorf("%q: nats carries %+v, want %+v", doc, cfg.NATS.Retention, r)
		}
	}
	def, err := config.LoadEnv("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if def.NATS.Retention != config.DefaultRetention() {
		t.Errorf("built-in config retention = %+v", def.NATS.Retention)
	}
}

func TestRetentionParse(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
retention:
  items:      {max_age: 48h, max_bytes: 2GB}
  classified: {max_bytes: 512MiB}
  dead:       {max_age: 2160h, max_bytes: 1073741824}
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Retention
	if r.Items.MaxAge.D() != 48*time.Hour || r.Items.MaxBytes != 2_000_000_000 {
		t.Errorf("items = %+v", r.Items)
	}
	// A key left out keeps its default.
	if r.Classified.MaxAge.D() != 168*time.Hour || r.Classified.MaxBytes != 512<<20 {
		t.Errorf("classified = %+v", r.Classified)
	}
	if r.Dead.MaxBytes != 1<<30 {
		t.Errorf("dead = %+v", r.Dead)
	}
	// The delivered log outlives the longest-kept stream (dead, 90 days).
	if got := r.DeliveredTTL(); got <= 2160*time.Hour {
		t.Errorf("delivered TTL %s does not outlive retention.dead.max_age 2160h", got)
	}
	if got := config.DefaultRetention().DeliveredTTL(); got <= 720*time.Hour {
		t.Errorf("default delivered TTL %s does not outlive 720h", got)
	}
}

func TestRetentionSummary(t *testing.T) {
	t.Parallel()
	r := config.DefaultRetention()
	r.Alerts.MaxAge = config.Duration(90 * time.Minute)
	r.Items.MaxBytes = 2_000_000_000
	want := "retention: items 168h 2GB, classified 168h, alerts 1h30m, dead 720h; sizes of classified, alerts, dead derived from the storage NATS offers; delivered log kept 744h"
	if got := r.Summary(); got != want {
		t.Errorf("Summary() =\n%s\nwant\n%s", got, want)
	}
}

func TestRetentionErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ doc, key string }{
		{"retention: {items: {max_bytes: 2G}}", "retention.items.max_bytes"},
		{"retention: {items: {max_bytes: lots}}", "retention.items.max_bytes"},
		{"retention: {alerts: {max_bytes: 1000}}", "retention.alerts.max_bytes"},
		{"retention: {dead: {max_age: 10m}}", "retention.dead.max_age"},
		{"retention: {items: {max_age: forever}}", "retention.items.max_age"},
		{"retention: {items: {maxbytes: 1GB}}", "retention.items.maxbytes"},
		{"retention: {raw: {max_age: 1h}}", "retention.raw"},
		{"retention: {classified: {max_age: 2h}}", "retention.classified.max_age"},
	}
	for _, tt := range tests {
		_, err := config.Parse([]byte(tt.doc), env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: error %v does not name %s", tt.doc, err, tt.key)
		}
	}
}
