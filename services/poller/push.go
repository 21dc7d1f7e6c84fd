package poller

import (
	"container/heap"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/poller/websub"
)

// WithWebSubOptions adjusts the WebSub manager's options before it is
// built (tests shorten its timing).
func WithWebSubOptions(f func(*websub.Options)) Option {
	return func(o *options) { o.websub = f }
}

// WebSubAddr is the address the WebSub callback server listens on, ""
// when push is not configured.
func (s *Service) WebSubAddr() string {
	if s.pushLn == nil {
		return ""
	}
	return s.pushLn.Addr().String()
}

// pushConfigured: the callback server runs when websub.callback_url is
// set (validation requires it wherever push is on).
func pushConfigured(w config.WebSub) bool { return w.CallbackURL != "" }

// listenPush opens the callback server's socket at New, so that a busy
// address fails start-up rather than every subscription later.
func (s *Service) listenPush() error {
	if !pushConfigured(s.websub) {
		return nil
	}
	ln, err := net.Listen("tcp", s.websub.Listen)
	if err != nil {
		return fmt.Errorf("poller: websub.listen: %w", err)
	}
	s.pushLn = ln
	return nil
}

// openPush builds the WebSub manager once its KV bucket is open.
func (s *Service) openPush(ctx context.Context) error {
	if s.pushLn == nil || s.push != nil {
		return nil
	}
	kv, err := s.bus.KV(ctx, event.BucketWebSub)
	if err != nil {
		return err
	}
	o := websub.Options{
		Config:    s.websub,
		MaxBody:   s.poll.MaxBodyBytes,
		Client:    s.client,
		UserAgent: s.userAgent,
		KV:        kv,
		Ingest:    s,
		Metrics:   s.pushMet,
		Log:       s.log,
		Listener:  s.pushLn,
	}
	if s.pushOpts != nil {
		s.pushOpts(&o)
	}
	m, err := websub.New(o)
	if err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	// Under the lock, so that a Reload either reaches the manager or is
	// in the list it starts with.
	s.mu.Lock()
	m.SetFeeds(s.feeds)
	s.push = m
	s.mu.Unlock()
	return nil
}

// pollInterval is f's interval, or websub.poll_interval while its push
// subscription is active.
func (s *Service) pollInterval(f *feed) time.Duration {
	if s.push == nil {
		return f.interval
	}
	return s.push.PollInterval(f.url, f.interval)
}

// Ingest publishes the new items of a pushed feed body: the same charset
// handling, parse, item ids, seen-set and publish as a poll, so an item
// that arrives by push and again by poll is published once.
func (s *Service) Ingest(ctx context.Context, feedURL string, body []byte, contentType string) error {
	now := s.now()
	s.met.bytes.Add(float64(len(body)))
	_, entries, err := s.parseBody(body, contentType, feedURL, s.feedTitle(feedURL), feedURL, now)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, s.publishTimeout)
	defer cancel()
	n, err := s.publishNew(pctx, feedURL, entries)
	if n > 0 {
		s.log.Debug("pushed items published", "feed", config.Redact(feedURL), "items", n)
	}
	return err
}

// Fetch fetches feedURL now, unconditionally, and publishes its new items:
// a push without a body. Any replica may do it; the feed's schedule and
// state stay with the poller that holds its lease.
func (s *Service) Fetch(ctx context.Context, feedURL string) error {
	f := &feed{url: feedURL, title: s.feedTitle(feedURL)}
	out := s.refresh(ctx, f, s.now())
	s.m.PollRequests.WithLabelValues(out.result).Inc()
	if out.err != nil {
		return out.err
	}
	return nil
}

// PollNow brings feedURL's next poll forward to now (push stopped).
func (s *Service) PollNow(feedURL string) {
	s.soonMu.Lock()
	if s.soon == nil {
		s.soon = map[string]bool{}
	}
	s.soon[feedURL] = true
	s.soonMu.Unlock()
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// pullForward, in the scheduler, makes the feeds PollNow named due now.
// A feed being polled is left alone: its poll schedules it anew.
func (s *Service) pullForward(due *timeHeap[*feed], feeds map[string]*feed) {
	s.soonMu.Lock()
	soon := s.soon
	s.soon = nil
	s.soonMu.Unlock()
	now := s.now()
	for u := range soon {
		f := feeds[u]
		if f == nil || f.inflight || f.idx < 0 || !f.due.After(now) {
			continue
		}
		f.due = now
		heap.Fix(due, f.idx)
	}
}

func (s *Service) feedTitle(feedURL string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.feeds {
		if f.URL == feedURL {
			return f.Title
		}
	}
	return ""
}

// discover reads the push links of a fetched feed, when push is on.
func (s *Service) discover(resp *responseHandler, body []byte, feedURL string) *websub.Discovery {
	if s.push == nil {
		return nil
	}
	d := websub.Discover(resp.resp.Header, body, feedURL, resp.EffectiveURL(), websub.MovedPermanently(resp.resp))
	return &d
}

var _ websub.Ingester = (*Service)(nil)
