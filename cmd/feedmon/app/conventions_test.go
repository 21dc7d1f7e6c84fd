package app_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/classifier"
	"github.com/feedmon/feedmon/services/feedsout"
	"github.com/feedmon/feedmon/services/notifier"
	"github.com/feedmon/feedmon/services/poller"
)

// TestServicesShareConventions: the services are built alike, so the
// wiring (and anyone embedding a service) needs to know one convention.
// Each New takes its part of the config, the bus, the metrics, a registry
// and a logger, in that order; a nil logger logs nothing rather than being
// refused or panicking; and a config built in code with nothing set takes
// the defaults.
func TestServicesShareConventions(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	cfg := config.Default()
	tests := []struct {
		name string
		new  func(reg *prometheus.Registry, m *telemetry.Metrics) (any, error)
	}{
		{"poller", func(reg *prometheus.Registry, m *telemetry.Metrics) (any, error) {
			return poller.New(config.PollerConfig{Feeds: cfg.Feeds}, b, m, reg, nil)
		}},
		{"classifier", func(reg *prometheus.Registry, m *telemetry.Metrics) (any, error) {
			return classifier.New(config.ClassifierConfig{Topics: cfg.TopicSet}, b, m, reg, nil)
		}},
		{"notifier", func(reg *prometheus.Registry, m *telemetry.Metrics) (any, error) {
			return notifier.New(config.NotifierConfig{Subscribers: cfg.Subscribers}, b, m, reg, nil)
		}},
		{"feeds_out", func(reg *prometheus.Registry, _ *telemetry.Metrics) (any, error) {
			return feedsout.New(config.FeedsOutConfig{Topics: cfg.TopicSet, Subscribers: cfg.Subscribers}, b, reg, nil), nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			m := telemetry.NewMetrics(reg, notifier.ReceiverNames(cfg.Subscribers), classifier.TopicOrder(nil))
			s, err := tc.new(reg, m)
			if err != nil {
				t.Fatalf("New with a nil logger: %v", err)
			}
			if s == nil {
				t.Fatal("New returned no service")
			}
		})
	}
}
