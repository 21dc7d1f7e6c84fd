package poller

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/feedmon/feedmon/internal/telemetry"
)

// metrics are the poller's own, beyond the contract's telemetry.Metrics.
// Labels are low-cardinality: never a feed or a URL.
type metrics struct {
	fetchDuration *prometheus.HistogramVec
	feeds         *prometheus.GaugeVec
	bytes         prometheus.Counter
	itemsPerFetch prometheus.Histogram
	backoffs      prometheus.Counter
	refused       prometheus.Counter
	recoveries    *prometheus.CounterVec
	hostSlowdowns *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		fetchDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "feedmon_poller_fetch_duration_seconds",
			Help:    "Time to fetch, parse and publish one feed, by result.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"result"}),
		feeds: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmon_poller_feeds",
			Help: "Feeds this poller schedules, by state of their last fetch (new, ok, not_modified, error; elsewhere = leased to another poller).",
		}, []string{"state"}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "feedmon_poller_fetched_bytes_total",
			Help: "Feed body bytes read, after decompression.",
		}),
		itemsPerFetch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "feedmon_poller_items_per_fetch",
			Help:    "Items in a fetched feed (after poll.max_items).",
			Buckets: []float64{0, 1, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		backoffs: f.NewCounter(prometheus.CounterOpts{
			Name: "feedmon_poller_backoffs_total",
			Help: "Polls postponed by exponential backoff after a failed fetch.",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "feedmon_poller_refused_addresses_total",
			Help: "Fetches refused because the feed resolved to a private, loopback or reserved address.",
		}),
		recoveries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_poll_recoveries_total",
			Help: "Feed bodies read although not what they declared, by kind of recovery (mislabeled_utf8, unmarked_utf16, unmarked_utf32, header_contradicted, detected_charset, repaired_utf8, control_chars, raw_body).",
		}, []string{"kind"}),
		hostSlowdowns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmon_poll_host_slowdowns_total",
			Help: "Slow-downs of a whole host started by one of its feeds answering 429, or 503 with Retry-After, by that status.",
		}, []string{"status"}),
	}
	for _, k := range recoveryKinds {
		m.recoveries.WithLabelValues(string(k))
	}
	for _, c := range []string{"429", "503"} {
		m.hostSlowdowns.WithLabelValues(c)
	}
	for _, r := range []string{telemetry.PollOK, telemetry.PollNotModified, telemetry.PollError} {
		m.fetchDuration.WithLabelValues(r)
	}
	for _, s := range []string{stateNew, stateOK, stateNotModified, stateError, stateElsewhere} {
		m.feeds.WithLabelValues(s)
	}
	return m
}

// recovered counts the recoveries one feed body took.
func (m *metrics) recovered(recs []recovery) {
	for _, r := range recs {
		m.recoveries.WithLabelValues(string(r)).Inc()
	}
}
