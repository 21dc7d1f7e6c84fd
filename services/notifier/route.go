package notifier

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/time/rate"

	"github.com/feedmon/feedmon/internal/config"
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
	// groupStories: later reports of a story already alerted go out as
	// updates (see story.go).
	groupStories bool

	// Filters; empty = any.
	feeds    map[string]bool
	langs    map[string]bool
	minScore float64
}

// wants reports whether the filters let it through on topic (a subject
// token of one of the subscriber's topics).
func (sub *subscriber) wants(it *event.Item, topic string) bool {
	if len(sub.feeds) > 0 && !sub.feeds[it.FeedURL] {
		return false
	}
	if len(sub.langs) > 0 && it.Lang != "" && !sub.langs[primaryLang(it.Lang)] {
		return false
	}
	if sub.minScore > 0 {
		best := 0.0
		for t, sc := range it.Scores {
			if event.Token(t) == topic {
				best = max(best, sc)
			}
		}
		if best < sub.minScore {
			return false
		}
	}
	return true
}

// primaryLang is the primary subtag of a language tag, lower case ("en-GB" → "en").
func primaryLang(tag string) string {
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	return strings.ToLower(tag)
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
		sub := &subscriber{name: cs.Name, topics: map[string]bool{}, minScore: cs.MinScore, groupStories: cs.GroupsStories()}
		for _, f := range cs.Feeds {
			if sub.feeds == nil {
				sub.feeds = map[string]bool{}
			}
			sub.feeds[f] = true
		}
		for _, l := range cs.Languages {
			if sub.langs == nil {
				sub.langs = map[string]bool{}
			}
			sub.langs[primaryLang(l)] = true
		}
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
		for _, t := range cs.Topics {
			sub.topics[event.Token(t)] = true
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
			if sub.topics[t] && sub.wants(it, t) {
				if t == subjTopic {
					out = append(out, sub)
				}
				break
			}
		}
	}
	return out
}
