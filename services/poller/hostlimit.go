package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
)

// hostPolicy is how a host slows down after one of its feeds answers 429
// (with or without Retry-After) or 503 with Retry-After. A Retry-After is
// often about one URL, and a host carries dozens of feeds: honouring it for
// the whole host would silence all of them for as long as one asked. So
// only the feed that answered waits its Retry-After; the host slows down,
// in three phases, all bounded:
//
//  1. pause: no new request to the host for min(Retry-After, pause). Only
//     the answer that starts a slow-down pauses: later answers during it
//     extend it but do not pause again, so a host whose feeds answer 429
//     one after another never stops.
//  2. hold: until min(Retry-After, hold) after the latest such answer
//     (holdNoHint when it gave no Retry-After), every feed of the host is
//     polled at most about once per period (never more often than its own
//     schedule says): with a period under 30 s and the host's turn in
//     between, each feed is still fetched at least once per
//     max(its interval, 30 s).
//  3. cool-down: the period halves every coolStep, coolSteps times, then the
//     host is back to full pace.
type hostPolicy struct {
	pause      time.Duration
	period     time.Duration
	hold       time.Duration
	holdNoHint time.Duration
	coolStep   time.Duration
	coolSteps  int
}

// defaultHostPolicy: a 10s pause, feeds at most every ~20s for up to 5m,
// then 10s, 5s, 2.5s for a minute each. At most 8m after the latest
// rate-limit answer, the host is at full pace again.
func defaultHostPolicy() hostPolicy {
	return hostPolicy{
		pause:      10 * time.Second,
		period:     20 * time.Second,
		hold:       5 * time.Minute,
		holdNoHint: time.Minute,
		coolStep:   time.Minute,
		coolSteps:  3,
	}
}

// slowdown is one host's slow-down: why it started, and its phases. It is
// also what `feedmon feeds` shows (stored in the feeds bucket).
type slowdown struct {
	Host string `json:"host"`
	// Feed, Status and RetryAfter are the latest answer that started or
	// extended the slow-down; Answers counts them.
	Feed       string        `json:"feed"`
	Status     int           `json:"status"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	At         time.Time     `json:"at"`
	Answers    int           `json:"answers"`
	Since      time.Time     `json:"since"`
	PauseUntil time.Time     `json:"pause_until"`
	HoldUntil  time.Time     `json:"hold_until"`
	Until      time.Time     `json:"until"`
	Poller     string        `json:"poller,omitempty"`
}

// phase names where the slow-down is at t, for `feedmon feeds`.
func (sd *slowdown) phase(t time.Time) string {
	switch {
	case t.Before(sd.PauseUntil):
		return "paused"
	case t.Before(sd.HoldUntil):
		return "slowed"
	case t.Before(sd.Until):
		return "cooling down"
	}
	return "ended"
}

// why says which answer slowed the host, for `feedmon feeds`.
func (sd *slowdown) why() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s answered %d", config.Redact(sd.Feed), sd.Status)
	if sd.RetryAfter > 0 {
		fmt.Fprintf(&b, " with Retry-After %s", sd.RetryAfter)
	}
	fmt.Fprintf(&b, " at %s", fmtTime(sd.At))
	if sd.Answers > 1 {
		fmt.Fprintf(&b, " (latest of %d such answers)", sd.Answers)
	}
	return b.String()
}

// slowsHost tells whether an answer slows down the feed's whole host: a
// 429 always, a 503 only with Retry-After (a 503 without one is an error
// of that feed, backed off on its own).
func slowsHost(status int, retryAfter time.Duration) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && retryAfter > 0
}

// hostLimiter keeps the slow-downs of hosts. Polls call it from their own
// goroutines; it holds only hosts currently slowed.
type hostLimiter struct {
	policy hostPolicy
	mu     sync.Mutex
	hosts  map[string]*slowdown
}

func newHostLimiter(p hostPolicy) *hostLimiter {
	return &hostLimiter{policy: p, hosts: map[string]*slowdown{}}
}

// answered records a rate-limit answer of feed on host at now. It returns
// the slow-down (a copy) and whether the answer started it; only a start
// pauses the host.
func (l *hostLimiter) answered(host, feed string, status int, retryAfter time.Duration, now time.Time) (slowdown, bool) {
	p := l.policy
	hold := p.holdNoHint
	if retryAfter > 0 {
		hold = retryAfter
	}
	hold = min(hold, p.hold)
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.hosts[host]
	started := sd == nil || !now.Before(sd.Until)
	if started {
		sd = &slowdown{Host: host, Since: now, PauseUntil: now.Add(min(hold, p.pause))}
		l.hosts[host] = sd
	}
	sd.Feed, sd.Status, sd.RetryAfter, sd.At = feed, status, retryAfter, now
	sd.Answers++
	sd.HoldUntil = later(sd.HoldUntil, now.Add(hold))
	sd.Until = sd.HoldUntil.Add(time.Duration(p.coolSteps) * p.coolStep)
	return *sd, started
}

// pace is the shortest delay before a feed of host may be polled again at
// now (0 when the host is not slowed), with jitter from rnd so the host's
// feeds do not fall into step. ended is true once, on the first call after
// the host's slow-down is over.
func (l *hostLimiter) pace(host string, now time.Time, rnd func() float64) (floor time.Duration, ended bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.hosts[host]
	if sd == nil {
		return 0, false
	}
	if !now.Before(sd.Until) {
		delete(l.hosts, host)
		return 0, true
	}
	period := l.policy.period
	if now.After(sd.HoldUntil) && l.policy.coolStep > 0 {
		step := int(now.Sub(sd.HoldUntil)/l.policy.coolStep) + 1
		period >>= min(step, 30)
	}
	// 80-90% of the period: the rest is room for the wait for the
	// host's turn, which keeps the guarantee of one fetch per period.
	return time.Duration(float64(period) * (0.8 + 0.1*rnd())), false
}

// slowHost applies the host side of a poll's outcome: a rate-limit answer
// starts or extends the slow-down of the feed's host (and a start pauses
// the host, through f.pauseUntil). It returns the shortest delay before
// the feed's next poll while its host is slowed (0 when it is not).
func (s *Service) slowHost(ctx context.Context, f *feed, now time.Time, out outcome) time.Duration {
	if slowsHost(out.status, out.hints.retryAfter) {
		sd, started := s.hosts.answered(f.host, f.url, out.status, out.hints.retryAfter, now)
		sd.Poller = s.id
		if started {
			f.pauseUntil = sd.PauseUntil
			s.met.hostSlowdowns.WithLabelValues(strconv.Itoa(out.status)).Inc()
			s.log.Warn("host slowed down", "host", f.host, "feed", f.logURL(), "status", out.status,
				"retry_after", out.hints.retryAfter, "paused_until", sd.PauseUntil, "slowed_until", sd.HoldUntil, "full_pace_at", sd.Until)
		} else {
			s.log.Debug("host slow-down extended", "host", f.host, "feed", f.logURL(), "status", out.status,
				"retry_after", out.hints.retryAfter, "slowed_until", sd.HoldUntil, "full_pace_at", sd.Until)
		}
		if err := s.store.saveSlowdown(ctx, &sd); err != nil {
			s.log.Debug("host slow-down not saved", "host", f.host, "err", err)
		}
	}
	floor, ended := s.hosts.pace(f.host, now, s.rnd)
	if ended {
		s.log.Info("host back to full pace", "host", f.host)
		if err := s.store.deleteSlowdown(ctx, f.host); err != nil {
			s.log.Debug("host slow-down not cleared", "host", f.host, "err", err)
		}
	}
	return floor
}

// requestGate spaces the requests to one host by at least gap, where they
// are sent. The scheduler spaces the starts of polls by the same gap, but
// between a poll's start and its request lie a lease and a state read whose
// time varies, so two requests could still come closer than gap; the gate
// absorbs that (a wait of a few milliseconds, usually none). The requests
// of one host take turns, and each is spaced from when the previous one
// was really let go, not from when it was meant to be.
type requestGate struct {
	gap   time.Duration
	mu    sync.Mutex
	hosts map[string]*hostTurn
	prune int // prune hosts done with once the map holds this many
}

// hostTurn is one host's place in the gate. turn holds a token while no
// request of the host is waiting for its slot; last is read and written
// only by the holder of the token.
type hostTurn struct {
	turn    chan struct{}
	last    time.Time
	waiters int
}

func newRequestGate(gap time.Duration) *requestGate {
	return &requestGate{gap: gap, hosts: map[string]*hostTurn{}, prune: 64}
}

// wait returns when a request to host may be sent (at once, most often).
func (g *requestGate) wait(ctx context.Context, host string) error {
	if g.gap <= 0 {
		return nil
	}
	g.mu.Lock()
	ht := g.hosts[host]
	if ht == nil {
		ht = &hostTurn{turn: make(chan struct{}, 1)}
		ht.turn <- struct{}{}
		g.hosts[host] = ht
	}
	ht.waiters++
	g.mu.Unlock()
	defer g.done(ht)

	select {
	case <-ht.turn:
	case <-ctx.Done():
		return fmt.Errorf("poller: wait for the host's turn: %w", ctx.Err())
	}
	defer func() { ht.turn <- struct{}{} }()
	if d := time.Until(ht.last.Add(g.gap)); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("poller: wait for the host's turn: %w", ctx.Err())
		}
	}
	ht.last = time.Now()
	return nil
}

// done forgets, now and then, the hosts nobody waits for: the map stays at
// about the number of hosts in use, whatever the number of feeds. A host
// whose last request is within gap is kept even then, since it still
// spaces the next one.
func (g *requestGate) done(ht *hostTurn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ht.waiters--
	if len(g.hosts) < g.prune {
		return
	}
	for h, t := range g.hosts {
		if t.waiters > 0 {
			continue
		}
		select {
		case <-t.turn: // no one holds it: last may be read
			if time.Since(t.last) >= g.gap {
				delete(g.hosts, h)
			} else {
				t.turn <- struct{}{}
			}
		default:
		}
	}
	g.prune = max(64, 2*len(g.hosts))
}

// adopt takes over a slow-down another poller recorded, unless the one
// this poller knows for the host lasts as long. Pollers that share a host's
// feeds (through leases) thus slow it down together. The pause was the
// other poller's, for its own requests; here the pace applies.
func (l *hostLimiter) adopt(sd slowdown, now time.Time) bool {
	if sd.Host == "" || !now.Before(sd.Until) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.hosts[sd.Host]; cur != nil && !cur.Until.Before(sd.Until) {
		return false
	}
	l.hosts[sd.Host] = &sd
	return true
}

// watchSlowdowns adopts the slow-downs other pollers record in the feeds
// bucket, until ctx ends.
func (s *Service) watchSlowdowns(ctx context.Context) {
	_ = bus.Retry(ctx, s.log, "host slow-down watch", func(ctx context.Context) error {
		w, err := s.store.feeds.Watch(ctx, slowdownPrefix+"*", jetstream.IgnoreDeletes())
		if err != nil {
			return fmt.Errorf("poller: watch host slow-downs: %w", err)
		}
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case e, ok := <-w.Updates():
				if !ok {
					return errors.New("poller: host slow-down watch closed")
				}
				if e == nil {
					continue // the records that were there are read
				}
				var sd slowdown
				if json.Unmarshal(e.Value(), &sd) != nil || sd.Poller == s.id {
					continue
				}
				if s.hosts.adopt(sd, s.now()) {
					s.log.Info("host slowed down by another poller", "host", sd.Host, "poller", sd.Poller,
						"slowed_until", sd.HoldUntil, "full_pace_at", sd.Until)
				}
			}
		}
	})
}
