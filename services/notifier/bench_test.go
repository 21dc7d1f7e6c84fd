package notifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/procstat"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/testkit"
)

// benchBatch is how many items one op of BenchmarkService delivers.
const benchBatch = 2000

// BenchmarkService measures the notifier's per-item cost as it runs: items
// waiting on FEEDMON_CLASSIFIED in an embedded JetStream (one message per
// topic, as the classifier publishes them), consumed, routed, given their
// story role, claimed in the delivered log, posted to a real HTTP webhook,
// recorded and acked. cpu-ns/item is the process's CPU time (the NATS
// server's and the webhook's share included) from the service's start
// until every delivery is counted as sent; publishing beforehand is not
// counted.
//
//   - webhook: one subscriber with a webhook, stories not grouped.
//   - stories: the same with group_stories: reports come in stories of
//     five, so one in five is an alert and the rest are updates.
//   - fanout: three subscribers with a webhook and stdout each; every item
//     has two topics, so each subscriber takes it from one of its two
//     messages.
func BenchmarkService(b *testing.B) {
	off := false
	cases := []struct {
		name   string
		topics []string
		story  bool
		subs   func(url string) []config.Subscriber
	}{
		{"webhook", []string{"trade"}, false, func(url string) []config.Subscriber {
			return []config.Subscriber{{Name: "desk", Topics: []string{"trade"}, GroupStories: &off, Webhook: &config.Webhook{URL: url}}}
		}},
		{"stories", []string{"trade"}, true, func(url string) []config.Subscriber {
			return []config.Subscriber{{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: url}}}
		}},
		{"fanout", []string{"trade", "defense"}, true, func(url string) []config.Subscriber {
			var subs []config.Subscriber
			for i := range 3 {
				subs = append(subs, config.Subscriber{Name: fmt.Sprintf("desk%d", i), Topics: []string{"trade", "defense"},
					Webhook: &config.Webhook{URL: url}, Stdout: &config.Stdout{}})
			}
			return subs
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			}))
			b.Cleanup(hook.Close)
			var cpu time.Duration
			items := 0
			for b.Loop() {
				b.StopTimer()
				bs := bustest.New(b)
				ctx := context.Background()
				for i := range benchBatch {
					it := testItem(fmt.Sprintf("b%d", i), tc.topics...)
					if tc.story {
						it.StoryID = fmt.Sprintf("b%d", i-i%5)
					}
					data, err := it.Marshal()
					if err != nil {
						b.Fatal(err)
					}
					for _, topic := range it.Topics {
						if _, err := bs.Publish(ctx, event.ClassifiedSubject(topic), event.ClassifiedMsgID(it.ID, topic), data); err != nil {
							b.Fatal(err)
						}
					}
				}
				cfg := testConfig(tc.subs(hook.URL)...)
				reg := prometheus.NewRegistry()
				m := telemetry.NewMetrics(reg, ReceiverNames(cfg.Subscribers), nil)
				svc, err := New(*cfg, bs, m, reg, bustest.Logger(b), WithStdout(io.Discard))
				if err != nil {
					b.Fatal(err)
				}
				want := float64(benchBatch * len(cfg.Subscribers) * len(cfg.Subscribers[0].Receivers()))
				b.StartTimer()
				c0 := procstat.CPU()
				stop := testkit.Run(b, "notifier", svc.Run)
				bustest.Eventually(b, 5*time.Minute, func() bool { return sentCount(m) >= want }, "items delivered")
				cpu += procstat.CPU() - c0
				b.StopTimer()
				stop()
				items += benchBatch
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(items), "cpu-ns/item")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(items), "ns/item")
		})
	}
}

// sentCount is feedmon_notifications_total{result="sent"} over the
// receivers.
func sentCount(m *telemetry.Metrics) float64 {
	n := 0.0
	for _, kind := range []string{KindWebhook, KindStdout} {
		n += counterValue(m.Notifications.WithLabelValues(kind, telemetry.NotifySent))
	}
	return n
}
