package telemetry_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/feedmon/feedmon/internal/telemetry"
)

func TestEndpoints(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry("test")
	telemetry.NewMetrics(reg, []string{"webhook"}, []string{"trade"})
	s := telemetry.NewServer(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var ready atomic.Bool
	s.AddReadiness("nats", func() error {
		if !ready.Load() {
			return errors.New("not connected")
		}
		return nil
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "nats: not connected") {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`feedmon_poll_requests_total{result="ok"} 0`,
		`feedmon_poll_requests_total{result="not_modified"} 0`,
		`feedmon_poll_requests_total{result="error"} 0`,
		`feedmon_items_published_total 0`,
		`feedmon_items_classified_total{topic="none"} 0`,
		`feedmon_items_classified_total{topic="trade"} 0`,
		`feedmon_notifications_total{receiver="webhook",result="retried"} 0`,
		`feedmon_pipeline_latency_seconds_count 0`,
		`feedmon_build_info{goversion=`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
