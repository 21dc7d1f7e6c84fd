package notifier

import (
	"fmt"
	"slices"

	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/email"
	"github.com/feedmon/feedmon/services/notifier/natsalert"
	"github.com/feedmon/feedmon/services/notifier/slack"
	"github.com/feedmon/feedmon/services/notifier/stdout"
	"github.com/feedmon/feedmon/services/notifier/webhook"
)

// subscriber is a config.Subscriber made ready for routing.
type subscriber struct {
	name string
	// topics holds the subscriber's topics as subject tokens, which is how
	// a message's subject names its topic.
	topics    map[string]bool
	receivers []route
	// sched holds alerts for a digest or quiet hours; nil = at once.
	sched *Schedule
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
		sub := &subscriber{name: cs.Name, topics: map[string]bool{}}
		if sch, ok := s.opts.schedules[cs.Name]; ok && (sch.Digest > 0 || sch.Quiet != nil) {
			sub.sched = &sch
		}
		for _, t := range cs.Topics {
			sub.topics[event.Token(t)] = true
		}
		for _, kind := range cs.Receivers() {
			r, err := s.newReceiver(kind, i)
			if err != nil {
				return nil, fmt.Errorf("notifier: subscriber %s: %s: %w", cs.Name, kind, err)
			}
			rt := route{kind: kind, r: r}
			if l, ok := s.opts.limits[kind]; ok {
				rt.lim = rate.NewLimiter(l.every, l.burst)
			}
			sub.receivers = append(sub.receivers, rt)
		}
		out = append(out, sub)
	}
	return out, nil
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
// published on the subject of subjTopic. An item is published once per
// matched topic; a subscriber handles it only on the message of the first
// of the item's topics that it wants, so that it gets the item once however
// many of its topics matched. (The idempotency log catches what slips
// through, e.g. an item whose topic list differs between its messages.)
func (s *Service) routeItem(subjTopic string, it *event.Item) []*subscriber {
	topics := make([]string, 0, len(it.Topics)+1)
	for _, t := range it.Topics {
		topics = append(topics, event.Token(t))
	}
	if !slices.Contains(topics, subjTopic) {
		// A message whose subject's topic is not among its topics: trust
		// the subject rather than lose the item.
		topics = append(topics, subjTopic)
	}
	var out []*subscriber
	for _, sub := range s.subs {
		for _, t := range topics {
			if sub.topics[t] {
				if t == subjTopic {
					out = append(out, sub)
				}
				break
			}
		}
	}
	return out
}
