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
		Metrics: Metrics{Listen: DefaultMetricsListen},
		Log:     Log{Level: "info", Format: "text"},
		Poll: Poll{
			Interval:     Duration(DefaultInterval),
			Workers:      DefaultWorkers,
			PerHost:      DefaultPerHost,
			Timeout:      Duration(DefaultFetchTimeout),
			MaxBodyBytes: DefaultMaxBodyBytes,
			MaxItems:     DefaultMaxItems,
			MaxBackoff:   Duration(DefaultMaxBackoff),
		},
		SMTP:     SMTP{Port: DefaultSMTPPort, TLS: "starttls"},
		FeedsOut: FeedsOut{MaxItems: DefaultFeedsOutItems},
		WebSub: WebSub{
			Listen:       DefaultWebSubListen,
			Lease:        Duration(DefaultWebSubLease),
			PollInterval: Duration(DefaultWebSubPoll),
		},
		Retention: DefaultRetention(),
		Notify: Notify{
			MaxAttempts: DefaultMaxAttempts,
			MaxAge:      Duration(DefaultMaxAge),
			Timeout:     Duration(DefaultNotifyTimeout),
			Workers:     DefaultNotifyWorkers,
		},
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
