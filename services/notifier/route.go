package notifier

import (
	"fmt"

	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/routing"
	"github.com/feedmon/feedmon/services/notifier/email"
	"github.com/feedmon/feedmon/services/notifier/natsalert"
	"github.com/feedmon/feedmon/services/notifier/slack"
	"github.com/feedmon/feedmon/services/notifier/stdout"
	"github.com/feedmon/feedmon/services/notifier/webhook"
)

// subscriber is a config.Subscriber made ready for routing.
type subscriber struct {
	name string
	// filter holds the subscriber's topics and filters.
	filter    *routing.Filter
	receivers []route
	// sched holds alerts for a digest or quiet hours; nil = at once.
	sched *Schedule
	// groupStories: later reports of a story already alerted go out as
	// updates (see story.go).
	groupStories bool
}

// route is one receiver of one subscriber.
type route struct {
	kind string
	r    Receiver
	// lim paces this receiver of this subscriber; nil = unlimited.
	lim *rate.Limiter
}

func (s *Service) buildSubscribers() ([]*subscriber, error) {
	var out []*subscriber
	for i := range s.cfg.Subscribers {
		cs := &s.cfg.Subscribers[i]
		sub := &subscriber{name: cs.Name, filter: routing.New(cs), groupStories: cs.GroupsStories()}
		sch, ok := s.opts.schedules[cs.Name]
		if !ok {
			var err error
			if sch, err = scheduleOf(cs); err != nil {
				return nil, fmt.Errorf("notifier: subscriber %s: %w", cs.Name, err)
			}
		}
		if sch.Digest > 0 || sch.Quiet != nil {
			sub.sched = &sch
		}
		for _, kind := range cs.Receivers() {
			r, err := s.newReceiver(kind, i)
			if err != nil {
				return nil, fmt.Errorf("notifier: subscriber %s: %s: %w", cs.Name, kind, err)
			}
			rt := route{kind: kind, r: r}
			if l := configuredLimit(cs, kind); l != nil {
				rt.lim = rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)
			} else if l, ok := s.opts.limits[kind]; ok {
				rt.lim = rate.NewLimiter(l.every, l.burst)
			}
			sub.receivers = append(sub.receivers, rt)
		}
		out = append(out, sub)
	}
	return out, nil
}

// scheduleOf turns a subscriber's digest and quiet settings into a Schedule.
func scheduleOf(cs *config.Subscriber) (Schedule, error) {
	var sch Schedule
	if cs.Digest != nil {
		sch.Digest = cs.Digest.Every.D()
	}
	if cs.Quiet != nil {
		from, to, loc, err := cs.Quiet.QuietWindow()
		if err != nil {
			return sch, fmt.Errorf("quiet: %w", err)
		}
		sch.Quiet = &QuietHours{Start: from, End: to, Location: loc}
	}
	return sch, nil
}

// configuredLimit is the rate limit the config sets on one receiver, if any.
func configuredLimit(cs *config.Subscriber, kind string) *config.RateLimit {
	switch kind {
	case KindWebhook:
		return cs.Webhook.RateLimit
	case KindSlack:
		return cs.Slack.RateLimit
	case KindEmail:
		return cs.Email.RateLimit
	}
	return nil
}

func (s *Service) newReceiver(kind string, i int) (Receiver, error) {
	if r, ok := s.opts.receivers[kind]; ok {
		return r, nil
	}
	cs := &s.cfg.Subscribers[i]
	switch kind {
	case KindWebhook:
		return webhook.New(*cs.Webhook, s.opts.client), nil
	case KindStdout:
		return stdout.New(s.opts.stdout), nil
	case KindSlack:
		return slack.New(*cs.Slack, s.opts.client), nil
	case KindEmail:
		return email.New(s.cfg.SMTP, *cs.Email, email.WithClock(s.opts.now)), nil
	case KindNATS:
		return natsalert.New(s.b), nil
	}
	return nil, fmt.Errorf("unknown receiver kind %q", kind)
}

// routeItem returns the subscribers that should get it from the message
// published on the subject of subjTopic: each subscriber handles an item on
// one of its messages only (routing.Filter.Routes). (The idempotency log
// catches what slips through, e.g. an item whose topic list differs between
// its messages.)
func (s *Service) routeItem(subjTopic string, it *event.Item) []*subscriber {
	topics := routing.Topics(it, subjTopic)
	var out []*subscriber
	for _, sub := range s.subs {
		if sub.filter.Routes(topics, it, subjTopic) {
			out = append(out, sub)
		}
	}
	return out
}

// lookupRoute finds the receiver of kind of the subscriber called name in
// this config, for a delivery that comes back from the ledger (parked) or
// the dead-letter stream.
func (s *Service) lookupRoute(name, kind string) (*subscriber, route, bool) {
	var (
		found *subscriber
		rt    route
	)
	for _, sub := range s.subs {
		if sub.name != name {
			continue
		}
		for _, r := range sub.receivers {
			if r.kind == kind {
				found, rt = sub, r
			}
		}
	}
	return found, rt, found != nil
}
