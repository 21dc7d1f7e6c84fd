package config

import (
	"time"
)

// Defaults for keys the file leaves out.
const (
	DefaultNATSListen    = "127.0.0.1:4222"
	DefaultStoreDir      = "./feedmon-data"
	DefaultMetricsListen = "127.0.0.1:9464"
	DefaultInterval      = 5 * time.Minute
	DefaultWorkers       = 64
	DefaultPerHost       = 2
	DefaultFetchTimeout  = 30 * time.Second
	DefaultMaxBodyBytes  = 10 << 20
	DefaultMaxItems      = 500
	DefaultMaxBackoff    = 6 * time.Hour
	DefaultMaxAttempts   = 10
	DefaultMaxAge        = 24 * time.Hour
	DefaultNotifyTimeout = 15 * time.Second
	DefaultNotifyWorkers = 16
	DefaultSMTPPort      = 587
	DefaultSubscriber    = "console"
	DefaultFeedsOutItems = 100
	DefaultWebSubListen  = "127.0.0.1:9466"
	DefaultWebSubLease   = 240 * time.Hour
	DefaultWebSubPoll    = time.Hour
)

// BuiltinFeeds are real, currently published feeds on defense, trade and
// critical minerals, in several of the classifier's languages. They are
// fetched only when a user runs feedmon without a config.
var builtinFeeds = []Feed{
	{URL: "https://www.defensenews.com/arc/outboundfeeds/rss/?outputType=xml", Title: "Defense News"},
	{URL: "https://breakingdefense.com/feed/", Title: "Breaking Defense"},
	{URL: "https://www.defenseone.com/rss/all/", Title: "Defense One"},
	{URL: "https://news.usni.org/feed", Title: "USNI News"},
	{URL: "https://warontherocks.com/feed/", Title: "War on the Rocks"},
	{URL: "https://thediplomat.com/feed/", Title: "The Diplomat"},
	{URL: "https://www.wto.org/library/rss/latest_news_e.xml", Title: "WTO news"},
	{URL: "https://www.supplychaindive.com/feeds/news/", Title: "Supply Chain Dive"},
	{URL: "https://www.freightwaves.com/news/feed", Title: "FreightWaves"},
	{URL: "https://www.mining.com/feed/", Title: "MINING.COM"},
	{URL: "https://www.mining-technology.com/feed/", Title: "Mining Technology"},
	{URL: "https://feeds.bbci.co.uk/news/business/rss.xml", Title: "BBC Business"},
	{URL: "https://rss.dw.com/rdf/rss-en-bus", Title: "DW Business"},
	{URL: "https://www3.nhk.or.jp/rss/news/cat5.xml", Title: "NHK 経済"},
	{URL: "https://www.tagesschau.de/wirtschaft/index~rss2.xml", Title: "tagesschau Wirtschaft"},
	{URL: "https://www.lemonde.fr/international/rss_full.xml", Title: "Le Monde International"},
}

// BuiltinFeeds returns a copy of the built-in feed list.
func BuiltinFeeds() []Feed { return append([]Feed(nil), builtinFeeds...) }

// base is the config every file is decoded over: keys the file leaves out
// keep these values.
func base() *Config {
	return &Config{
		NATS: NATS{
			Replicas:       1,
			Listen:         DefaultNATSListen,
			StoreDir:       DefaultStoreDir,
			ConnectTimeout: Duration(10 * time.Second),
		},
		Metrics:   Metrics{Listen: DefaultMetricsListen},
		Log:       Log{Level: "info", Format: "text"},
		Poll:      Poll{}.OrDefaults(),
		SMTP:      SMTP{Port: DefaultSMTPPort, TLS: "starttls"},
		FeedsOut:  FeedsOut{}.OrDefaults(),
		WebSub:    WebSub{Listen: DefaultWebSubListen}.OrDefaults(),
		Retention: DefaultRetention(),
		Notify:    Notify{}.OrDefaults(),
	}
}

// The OrDefaults methods give a section's unset (zero) values their
// defaults. The config a file is decoded over is made of them, and the
// services apply them to the part they are given, so that a config built in
// code rather than loaded gets the documented defaults too, not a poller
// that never fetches.

// OrDefaults returns p with every unset value set to its default.
func (p Poll) OrDefaults() Poll {
	setDuration(&p.Interval, DefaultInterval)
	setInt(&p.Workers, DefaultWorkers)
	setInt(&p.PerHost, DefaultPerHost)
	setDuration(&p.Timeout, DefaultFetchTimeout)
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = DefaultMaxBodyBytes
	}
	setInt(&p.MaxItems, DefaultMaxItems)
	setDuration(&p.MaxBackoff, DefaultMaxBackoff)
	return p
}

// OrDefaults returns n with every unset value set to its default.
func (n Notify) OrDefaults() Notify {
	setInt(&n.MaxAttempts, DefaultMaxAttempts)
	setDuration(&n.MaxAge, DefaultMaxAge)
	setDuration(&n.Timeout, DefaultNotifyTimeout)
	setInt(&n.Workers, DefaultNotifyWorkers)
	return n
}

// OrDefaults returns f with every unset value set to its default.
func (f FeedsOut) OrDefaults() FeedsOut {
	setInt(&f.MaxItems, DefaultFeedsOutItems)
	return f
}

// OrDefaults returns w with its lease and poll interval set to their
// defaults when unset. An empty Listen is left alone: it is the callback
// server's address, and base gives the file's default.
func (w WebSub) OrDefaults() WebSub {
	setDuration(&w.Lease, DefaultWebSubLease)
	setDuration(&w.PollInterval, DefaultWebSubPoll)
	return w
}

func setInt(v *int, def int) {
	if *v < 1 {
		*v = def
	}
}

func setDuration(v *Duration, def time.Duration) {
	if *v <= 0 {
		*v = Duration(def)
	}
}

// Default is the configuration used when no file is given: embedded NATS,
// the built-in topics and feeds, and one subscriber printing every alert.
// Its subscriber's topics are filled in by finish, once the topic set is known.
func Default() *Config {
	cfg := base()
	cfg.Feeds = BuiltinFeeds()
	cfg.Subscribers = []Subscriber{{Name: DefaultSubscriber, Stdout: &Stdout{}}}
	return cfg
}
