package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/topics"
)

// maxSecretFile bounds a *_file secret: a secret is short, a large file is a
// wrong path.
const maxSecretFile = 64 << 10

// MaxFeedsOutItems bounds feeds_out.max_items: every topic and subscriber
// keeps that many entries in memory.
const MaxFeedsOutItems = 10000

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// finish resolves secrets from files, builds the effective topic set,
// fills in derived defaults and validates everything, collecting all errors.
func finish(cfg *Config, unset []unsetVar, fromFile bool) error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, errorf(key, format, args...)) }

	// Secrets from files come first: validation looks at the result.
	readSecret := func(key string, file string, dst *string) {
		if file == "" {
			return
		}
		if *dst != "" {
			add(key, "set both the value and the file; choose one")
			return
		}
		v, err := readSecretFile(file)
		if err != nil {
			add(key, "%v", err)
			return
		}
		*dst = v
	}
	readSecret("smtp.password_file", cfg.SMTP.PasswordFile, &cfg.SMTP.Password)
	readSecret("feeds_out.token_file", cfg.FeedsOut.TokenFile, &cfg.FeedsOut.Token)
	for i := range cfg.Subscribers {
		s := &cfg.Subscribers[i]
		p := fmt.Sprintf("subscribers[%d]", i)
		if s.Webhook != nil {
			readSecret(p+".webhook.url_file", s.Webhook.URLFile, &s.Webhook.URL)
			readSecret(p+".webhook.secret_file", s.Webhook.SecretFile, &s.Webhook.Secret)
		}
		if s.Slack != nil {
			readSecret(p+".slack.webhook_url_file", s.Slack.WebhookURLFile, &s.Slack.WebhookURL)
		}
	}

	set, err := topics.Effective(cfg.Topics)
	if err == nil {
		err = cfg.Topics.Validate()
	}
	if err != nil {
		// The topic rules' errors name their keys ("topics.defense...").
		errs = append(errs, err)
	}
	cfg.TopicSet = set
	if !fromFile {
		names := topicNames(set)
		for i := range cfg.Subscribers {
			if len(cfg.Subscribers[i].Topics) == 0 {
				cfg.Subscribers[i].Topics = names
			}
		}
	}

	// nats
	if cfg.NATS.Replicas != 1 && cfg.NATS.Replicas != 3 {
		add("nats.replicas", "must be 1 or 3, got %d", cfg.NATS.Replicas)
	}
	if cfg.NATS.URL != "" {
		for _, u := range strings.Split(cfg.NATS.URL, ",") {
			if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
				add("nats.url", "%v", err)
			}
		}
	} else {
		if cfg.NATS.StoreDir == "" {
			add("nats.store_dir", "must be set for the embedded server")
		}
		if cfg.NATS.Listen != "" {
			if err := checkHostPort(cfg.NATS.Listen); err != nil {
				add("nats.listen", "%v", err)
			}
		}
	}
	if cfg.NATS.ConnectTimeout.D() < time.Second {
		add("nats.connect_timeout", "must be at least 1s")
	}
	if cfg.NATS.CredsFile != "" {
		if _, err := os.Stat(cfg.NATS.CredsFile); err != nil {
			add("nats.creds_file", "%v", err)
		}
	}

	if cfg.Metrics.Listen != "" {
		if err := checkHostPort(cfg.Metrics.Listen); err != nil {
			add("metrics.listen", "%v", err)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
		add("log.level", "must be debug, info, warn or error, got %q", cfg.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, cfg.Log.Format) {
		add("log.format", "must be text or json, got %q", cfg.Log.Format)
	}

	// poll
	p := cfg.Poll
	if p.Interval.D() < time.Second {
		add("poll.interval", "must be at least 1s, got %s", p.Interval.D())
	}
	if p.Workers < 1 || p.Workers > 10000 {
		add("poll.workers", "must be between 1 and 10000, got %d", p.Workers)
	}
	if p.PerHost < 1 || p.PerHost > 10000 {
		add("poll.per_host", "must be between 1 and 10000, got %d", p.PerHost)
	}
	for i, n := range p.AllowNetworks {
		if _, err := ParseNetwork(n); err != nil {
			add(fmt.Sprintf("poll.allow_networks[%d]", i), "%v", err)
		}
	}
	if p.Timeout.D() < time.Second {
		add("poll.timeout", "must be at least 1s, got %s", p.Timeout.D())
	}
	if p.MaxBodyBytes < 1024 {
		add("poll.max_body_bytes", "must be at least 1024, got %d", p.MaxBodyBytes)
	}
	if p.MaxItems < 1 {
		add("poll.max_items", "must be at least 1, got %d", p.MaxItems)
	}
	if p.MaxBackoff.D() < time.Second {
		add("poll.max_backoff", "must be at least 1s, got %s", p.MaxBackoff.D())
	}

	seen := map[string]int{}
	for i, f := range cfg.Feeds {
		key := fmt.Sprintf("feeds[%d]", i)
		if err := checkHTTPURL(f.URL); err != nil {
			add(key+".url", "%v", err)
		} else if j, dup := seen[f.URL]; dup {
			add(key+".url", "duplicate of feeds[%d]", j)
		} else {
			seen[f.URL] = i
		}
		if f.Interval != 0 && f.Interval.D() < time.Second {
			add(key+".interval", "must be at least 1s, got %s", f.Interval.D())
		}
		if f.Hub != "" {
			if err := checkHTTPURL(f.Hub); err != nil {
				add(key+".hub", "%v", err)
			}
		}
	}
	validateWebSub(cfg, add)
	for i, f := range cfg.OPML {
		if f == "" {
			add(fmt.Sprintf("opml[%d]", i), "empty path")
		}
	}

	// notify
	if cfg.Notify.MaxAttempts < 1 {
		add("notify.max_attempts", "must be at least 1, got %d", cfg.Notify.MaxAttempts)
	}
	if cfg.Notify.MaxAge.D() < time.Second {
		add("notify.max_age", "must be at least 1s")
	}
	if cfg.Notify.Timeout.D() < time.Second {
		add("notify.timeout", "must be at least 1s")
	}
	if cfg.Notify.Workers < 1 || cfg.Notify.Workers > 1024 {
		add("notify.workers", "must be between 1 and 1024, got %d", cfg.Notify.Workers)
	}

	// stories
	if w := cfg.Stories.Window.D(); w != 0 && (w < time.Hour || w > 7*24*time.Hour) {
		add("stories.window", "must be between 1h and 168h, got %s", w)
	}
	if t := cfg.Stories.Threshold; t < 0 || t >= 1 {
		add("stories.threshold", "must be between 0 and 1, got %g", t)
	}
	if cfg.Stories.MaxEntries < 0 || cfg.Stories.MaxEntries > 10_000_000 {
		add("stories.max_entries", "must be between 0 and 10000000, got %d", cfg.Stories.MaxEntries)
	}

	// feeds_out
	if n := cfg.FeedsOut.MaxItems; n < 1 || n > MaxFeedsOutItems {
		add("feeds_out.max_items", "must be between 1 and %d, got %d", MaxFeedsOutItems, n)
	}
	if tok := cfg.FeedsOut.Token; tok != "" && strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		add("feeds_out.token", "must not contain spaces or control characters (it is sent in a URL or a header)")
	}

	// retention
	cfg.Retention.validate(add)
	if c, n := cfg.Retention.Classified.MaxAge.D(), cfg.Notify.MaxAge.D(); c >= MinStreamMaxAge && c < n {
		add("retention.classified.max_age", "must be at least notify.max_age (%s): a delivery still being retried would lose its item", hours(n))
	}
	cfg.NATS.Retention = cfg.Retention

	// subscribers
	names := map[string]int{}
	usesEmail := false
	for i := range cfg.Subscribers {
		s := &cfg.Subscribers[i]
		key := fmt.Sprintf("subscribers[%d]", i)
		switch {
		case s.Name == "":
			add(key+".name", "missing")
		case !nameRe.MatchString(s.Name):
			add(key+".name", "%q: use letters, digits, '_' and '-' only (it becomes a NATS subject token)", s.Name)
		default:
			if j, dup := names[s.Name]; dup {
				add(key+".name", "%q already used by subscribers[%d]", s.Name, j)
			}
			names[s.Name] = i
		}
		if len(s.Topics) == 0 {
			add(key+".topics", "missing: list at least one topic")
		}
		for j, t := range s.Topics {
			if _, ok := set[t]; !ok {
				add(fmt.Sprintf("%s.topics[%d]", key, j), "undefined topic %q (defined: %s)", t, strings.Join(topicNames(set), ", "))
			}
		}
		for j, f := range s.Feeds {
			if err := checkHTTPURL(f); err != nil {
				add(fmt.Sprintf("%s.feeds[%d]", key, j), "%v", err)
			}
		}
		for j, l := range s.Languages {
			if !langRe.MatchString(l) {
				add(fmt.Sprintf("%s.languages[%d]", key, j), "%q: want a language code such as en or ja", l)
			}
		}
		if s.MinScore < 0 {
			add(key+".min_score", "must not be negative")
		}
		if s.Digest != nil && s.Digest.Every.D() < time.Minute {
			add(key+".digest.every", "must be at least 1m, got %s", s.Digest.Every.D())
		}
		if s.Quiet != nil {
			if _, _, _, err := s.Quiet.QuietWindow(); err != nil {
				add(key+".quiet", "%v", err)
			}
		}
		for kind, rl := range map[string]*RateLimit{"webhook": rateOf(s.Webhook), "slack": rateOf(s.Slack), "email": rateOf(s.Email)} {
			if rl != nil && (rl.PerSecond <= 0 || rl.Burst < 1) {
				add(key+"."+kind+".rate_limit", "per_second must be positive and burst at least 1")
			}
		}
		if len(s.Receivers()) == 0 {
			add(key, "no receiver: add webhook, slack, email, stdout or nats")
		}
		if s.Webhook != nil {
			if err := checkHTTPURL(s.Webhook.URL); err != nil {
				add(key+".webhook.url", "%v", err)
			}
			if s.Webhook.Secret != "" {
				if _, err := s.Webhook.StandardKey(); err != nil {
					add(key+".webhook.secret", "%v", err)
				}
			}
		}
		if s.Slack != nil {
			if err := checkHTTPURL(s.Slack.WebhookURL); err != nil {
				add(key+".slack.webhook_url", "%v", Redact(err.Error()))
			}
		}
		if s.Email != nil {
			usesEmail = true
			if len(s.Email.To) == 0 {
				add(key+".email.to", "missing: list at least one address")
			}
			for j, a := range s.Email.To {
				if _, err := mail.ParseAddress(a); err != nil {
					add(fmt.Sprintf("%s.email.to[%d]", key, j), "invalid address %q", a)
				}
			}
		}
	}

	// smtp
	if !slices.Contains([]string{"none", "starttls", "tls"}, cfg.SMTP.TLS) {
		add("smtp.tls", "must be none, starttls or tls, got %q", cfg.SMTP.TLS)
	}
	if usesEmail {
		if cfg.SMTP.Host == "" {
			add("smtp.host", "missing: an email receiver needs an SMTP server")
		}
		if cfg.SMTP.From == "" {
			add("smtp.from", "missing: an email receiver needs a sender address")
		} else if _, err := mail.ParseAddress(cfg.SMTP.From); err != nil {
			add("smtp.from", "invalid address %q", cfg.SMTP.From)
		}
		if cfg.SMTP.Port < 1 || cfg.SMTP.Port > 65535 {
			add("smtp.port", "must be between 1 and 65535, got %d", cfg.SMTP.Port)
		}
	}

	// ${NAME} that was unset is an error only where the value is used.
	for _, u := range unset {
		if strings.HasPrefix(u.key, "smtp.") && !usesEmail {
			continue
		}
		errs = append(errs, &Error{Key: u.key, Msg: fmt.Sprintf("environment variable %s is not set", u.name), unset: true})
	}
	return errors.Join(errs...)
}

// validateWebSub checks websub.* and whether any feed needs it set up.
func validateWebSub(cfg *Config, add func(key, format string, args ...any)) {
	w := cfg.WebSub
	push := w.Enabled
	for _, f := range cfg.Feeds {
		push = push || w.Push(f)
	}
	if l := w.Lease.D(); l < time.Second || l > 365*24*time.Hour {
		add("websub.lease", "must be between 1s and 8760h, got %s", l)
	}
	if w.PollInterval.D() < time.Second {
		add("websub.poll_interval", "must be at least 1s, got %s", w.PollInterval.D())
	}
	if w.CallbackURL == "" {
		if push {
			add("websub.callback_url", "missing: push is on (websub.enabled or a feed's websub: true) and hubs need a public URL that reaches websub.listen")
		}
	} else if err := checkCallbackURL(w.CallbackURL); err != nil {
		add("websub.callback_url", "%v", err)
	}
	if push || w.Listen != DefaultWebSubListen {
		if err := checkHostPort(w.Listen); err != nil {
			add("websub.listen", "%v", err)
		}
	}
}

// checkCallbackURL wants an absolute http(s) URL without query or
// fragment: feedmon appends a path of its own per subscription.
func checkCallbackURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("invalid URL %q: no query or fragment (feedmon appends a path per subscription)", s)
	}
	return nil
}

var langRe = regexp.MustCompile(`^[a-zA-Z]{2,3}$`)

func rateOf(r any) *RateLimit {
	switch v := r.(type) {
	case *Webhook:
		if v != nil {
			return v.RateLimit
		}
	case *Slack:
		if v != nil {
			return v.RateLimit
		}
	case *Email:
		if v != nil {
			return v.RateLimit
		}
	}
	return nil
}

func topicNames(set topics.Set) []string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxSecretFile+1)
	n, _ := f.Read(buf)
	if n > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	v := strings.TrimSpace(string(buf[:n]))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid URL %q: no host", s)
	}
	return nil
}

func checkNATSURL(s string) error {
	if s == "" {
		return errors.New("empty URL in list")
	}
	if !strings.Contains(s, "://") {
		return checkHostPort(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("invalid URL %q: scheme must be nats, tls, ws or wss", s)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid URL %q: no host", s)
	}
	return nil
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if port == "" {
		return fmt.Errorf("want host:port, got %q", s)
	}
	return nil
}

// ParseNetwork parses a CIDR, or a single address as its /32 or /128.
func ParseNetwork(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("invalid network %q: want a CIDR such as 127.0.0.0/8", s)
}

var userinfoRe = regexp.MustCompile(`(?i)(https?://)[^/@\s]+@`)
var slackPathRe = regexp.MustCompile(`(?i)(hooks\.slack\.com/services/)[^\s"']+`)
var queryTokenRe = regexp.MustCompile(`(?i)([?&](?:token|key|secret|sig|signature|access_token|api_key|apikey|password)=)[^&\s"']+`)

// Redact hides credentials carried in URLs (user:password@, Slack webhook
// paths, token query parameters) so that they never reach logs, errors or
// metrics.
func Redact(s string) string {
	s = userinfoRe.ReplaceAllString(s, "${1}REDACTED@")
	s = slackPathRe.ReplaceAllString(s, "${1}REDACTED")
	s = queryTokenRe.ReplaceAllString(s, "${1}REDACTED")
	return s
}
