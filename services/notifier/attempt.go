package notifier

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
	"github.com/feedmon/feedmon/internal/httpx"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/services/notifier/alert"
)

// waitTurn waits for the rate limiter when the wait is short; otherwise it
// gives its turn back and returns how long to come back after.
func (p *pipeline) waitTurn(ctx context.Context, lim *rate.Limiter) time.Duration {
	if lim == nil {
		return 0
	}
	// Real time, not the injected clock: the limiter paces real sends.
	now := time.Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return p.opts.backoffMin
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return 0
	}
	if d > p.opts.inlineWait || !p.sleep(ctx, d) {
		r.CancelAt(time.Now())
		return d
	}
	return 0
}

// attempt runs one Notify bounded by notify.timeout.
func (p *pipeline) attempt(ctx context.Context, rt route, b *alert.Batch) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, p.notify.Timeout.D())
	defer cancel()
	start := time.Now()
	retry, err = rt.r.Notify(actx, b)
	p.duration.WithLabelValues(rt.kind).Observe(time.Since(start).Seconds())
	if err != nil && actx.Err() != nil {
		// Whatever the receiver made of it, running out of time is transient.
		retry = true
	}
	return retry, err
}

// countSent counts a delivered message of kind carrying items, updates of
// them later reports of a story, at now.
func (p *pipeline) countSent(kind string, items []*event.Item, updates int, now time.Time) {
	p.m.Notifications.WithLabelValues(kind, telemetry.NotifySent).Inc()
	if updates > 0 {
		p.storyUpdates.WithLabelValues(kind).Add(float64(updates))
	}
	for _, it := range items {
		if ft := it.FetchedTime(); !ft.IsZero() {
			p.m.PipelineLatency.Observe(max(now.Sub(ft), 0).Seconds())
		}
	}
}

// retryJitter spreads a retry between half and all of its backoff ("equal
// jitter"): deliveries that failed together come back apart, and none
// waits longer than the backoff's cap.
var retryJitter = httpx.Jitter{Low: 0.5, High: 1}

// leaseJitter spreads the retries of deliveries that found another
// replica's claim over a second after the claim's lease ends.
var leaseJitter = httpx.Jitter{Low: 0, High: 1}

// backoff is the delay before the attempt after attempt n: the far side's
// Retry-After when it gave one, else exponential with jitter.
func (p *pipeline) backoff(n int, err error) time.Duration {
	if d, ok := alert.RetryDelay(err); ok {
		return d
	}
	return httpx.Backoff(p.opts.backoffMin, p.opts.backoffMax, n, retryJitter, nil)
}

// sleep waits d; false if ctx ended or its grace period began first
// (the service is stopping: the message is handed back, not held).
func (p *pipeline) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-grace.Stopped(ctx):
		return false
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
