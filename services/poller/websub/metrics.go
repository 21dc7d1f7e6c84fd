package websub

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a content distribution request, the label of
// feedmon_websub_notifications_total.
const (
	ResultOK           = "ok"
	ResultBadSignature = "bad_signature"
	ResultUnknown      = "unknown"
	ResultError        = "error"
)

// Metrics are the contract's WebSub metrics. They exist from start-up,
// whether or not push is configured, so dashboards and alerts never meet
// a missing series.
type Metrics struct {
	// Subscriptions counts the subscriptions this poller manages, by state.
	Subscriptions *prometheus.GaugeVec
	// Notifications counts content distribution requests, by result.
	Notifications *prometheus.CounterVec
}

// NewMetrics registers the WebSub metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Subscriptions: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmon_websub_subscriptions",
			Help: "WebSub subscriptions this poller manages, by state (pending, active, failed).",
		}, []string{"state"}),
		Notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_websub_notifications_total",
			Help: "WebSub content distribution requests received, by result (ok, bad_signature, unknown, error).",
		}, []string{"result"}),
	}
	for _, s := range []string{StatePending, StateActive, StateFailed} {
		m.Subscriptions.WithLabelValues(s)
	}
	for _, r := range []string{ResultOK, ResultBadSignature, ResultUnknown, ResultError} {
		m.Notifications.WithLabelValues(r)
	}
	return m
}
