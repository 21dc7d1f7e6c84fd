package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPartsAreWhatTheServicesRead ties each service's part of the config
// to the sections `feedmon check -service` checks for it (readers): a part
// holds only sections its service reads, and every section read by that
// service alone is in one of its parts. A key moved into a part without
// being checked for its service, or checked for it but never handed to it,
// fails here.
func TestPartsAreWhatTheServicesRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		service string
		parts   []any
	}{
		{Poller, []any{PollerConfig{}}},
		{Classifier, []any{ClassifierConfig{}}},
		// The processes that run the notifier serve the feeds too.
		{Notifier, []any{NotifierConfig{}, FeedsOutConfig{}}},
	}
	// The topic feeds need the topics' names only (one feed each); their
	// rules are the classifier's, and only it has them checked.
	namesOnly := map[string]bool{"FeedsOutConfig.Topics": true}
	whole := reflect.TypeFor[Config]()
	for _, tc := range tests {
		var got []string
		for _, part := range tc.parts {
			pt := reflect.TypeOf(part)
			for i := range pt.NumField() {
				name := pt.Field(i).Name
				f, ok := whole.FieldByName(name)
				if !ok {
					t.Errorf("%s.%s: Config has no field %s", pt.Name(), name, name)
					continue
				}
				section, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if !readBy(section, []string{tc.service}) && !namesOnly[pt.Name()+"."+name] {
					t.Errorf("%s.%s is section %q, which %s does not read", pt.Name(), name, section, tc.service)
				}
				got = append(got, section)
			}
		}
		for i := range whole.NumField() {
			section, _, _ := strings.Cut(whole.Field(i).Tag.Get("yaml"), ",")
			if section == "-" || section == "" {
				continue
			}
			if slices.Equal(readers(section), []string{tc.service}) && !slices.Contains(got, section) {
				t.Errorf("%s reads section %q but none of its parts holds it", tc.service, section)
			}
		}
	}
}

// TestPartsCarryTheConfig: each part is the loaded values, defaults
// included, and the topic set is the effective one.
func TestPartsCarryTheConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
poll: {interval: 2m}
feeds: [{url: "https://example.org/a.rss"}]
stories: {threshold: 0.4}
notify: {workers: 3}
feeds_out: {max_items: 7}
subscribers:
  - {name: desk, topics: [trade], stdout: {}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.PollerConfig()
	if p.Poll.Interval.D() != 2*time.Minute || p.Poll.Workers != DefaultWorkers || len(p.Feeds) != 1 || p.WebSub.Lease.D() != DefaultWebSubLease {
		t.Errorf("poller part %+v", p)
	}
	c := cfg.ClassifierConfig()
	if c.Stories.Threshold != 0.4 || len(c.Topics) != len(cfg.TopicSet) || len(c.Topics) == 0 {
		t.Errorf("classifier part %+v", c)
	}
	n := cfg.NotifierConfig()
	if n.Notify.Workers != 3 || n.Notify.MaxAttempts != DefaultMaxAttempts || len(n.Subscribers) != 1 || n.SMTP.Port != DefaultSMTPPort {
		t.Errorf("notifier part %+v", n)
	}
	if f := cfg.FeedsOutConfig(); f.FeedsOut.MaxItems != 7 || len(f.Subscribers) != 1 || len(f.Topics) != len(cfg.TopicSet) {
		t.Errorf("feeds part %+v", f)
	}
}

// TestOrDefaults: an unset value takes its default, a set one stays.
func TestOrDefaults(t *testing.T) {
	t.Parallel()
	if got := (Poll{}).OrDefaults(); !reflect.DeepEqual(got, base().Poll) || got.Workers != DefaultWorkers || got.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("Poll{}.OrDefaults() = %+v", got)
	}
	if got := (Poll{Workers: 3, Interval: Duration(time.Second)}).OrDefaults(); got.Workers != 3 || got.Interval.D() != time.Second || got.PerHost != DefaultPerHost {
		t.Errorf("set values lost: %+v", got)
	}
	if got := (Notify{}).OrDefaults(); got != base().Notify || got.Timeout.D() != DefaultNotifyTimeout {
		t.Errorf("Notify{}.OrDefaults() = %+v", got)
	}
	if got := (FeedsOut{}).OrDefaults(); got.MaxItems != DefaultFeedsOutItems {
		t.Errorf("FeedsOut{}.OrDefaults() = %+v", got)
	}
	if got := (WebSub{}).OrDefaults(); got.Lease.D() != DefaultWebSubLease || got.PollInterval.D() != DefaultWebSubPoll || got.Listen != "" {
		t.Errorf("WebSub{}.OrDefaults() = %+v", got)
	}
}
