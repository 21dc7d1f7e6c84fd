// Command feedmon polls news feeds, classifies their items by topic and
// notifies subscribers, over NATS JetStream. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
	// Quiet hours name IANA time zones; container images may have no zoneinfo.
	_ "time/tzdata"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/feedmon/feedmon/cmd/feedmon/app"
	"github.com/feedmon/feedmon/cmd/feedmon/bench"
	"github.com/feedmon/feedmon/internal/bus"
	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/telemetry"
	"github.com/feedmon/feedmon/internal/topics"
	"github.com/feedmon/feedmon/internal/version"
	"github.com/feedmon/feedmon/services/classifier"
	"github.com/feedmon/feedmon/services/notifier"
	"github.com/feedmon/feedmon/services/poller"
)

// Exit statuses, per the contract.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `feedmon: a NATS-native news-feed monitor

Usage:
  feedmon run        [-config FILE] [-metrics-listen ADDR]   all services in one process
  feedmon poller     [-config FILE] [-metrics-listen ADDR]   only the poller (needs nats.url)
  feedmon classifier [-config FILE] [-metrics-listen ADDR]   only the classifier (needs nats.url)
  feedmon notifier   [-config FILE] [-metrics-listen ADDR]   only the notifier (needs nats.url)
  feedmon classify   [-config FILE] [-explain]               classify JSON lines from stdin, offline
  feedmon check      [-config FILE]                          validate the config and exit
  feedmon feeds      [-config FILE]                          every feed's state, read from NATS
  feedmon backtest   [-config FILE] [-topics FILE] [-since DUR] [-topic NAME] [-json] [-explain]
                                                             classify stored items with other rules and compare; read-only
  feedmon dlq list|replay [-config FILE]                     dead-lettered deliveries
  feedmon replay -subscriber NAME [-since DUR] [-until RFC3339] [-config FILE] [-dry-run]
                                                             send a window of classified items to a subscriber, once
  feedmon topics                                             print the built-in topic rules (YAML)
  feedmon version                                            print the version
  feedmon bench [-feeds N] [-items M] [-rate R]              end-to-end benchmark on local servers
                [-interval D] [-push]                        (-push: items arrive by a local WebSub hub)
  feedmon healthcheck [-url URL]                             exit 0 if URL (default the local /readyz) answers 200

With no -config (and no FEEDMON_CONFIG) the built-in defaults apply.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit 2. With usage set, the usage
// text follows the message, printed as it is.
type usageError struct {
	msg   string
	usage bool
}

func (e *usageError) Error() string { return e.msg }

// run runs one command. The service commands run until ctx is done or
// SIGINT or SIGTERM arrives.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdServe(ctx, rest, app.All, stdout, stderr)
	case app.Poller, app.Classifier, app.Notifier:
		err = cmdServe(ctx, rest, []string{cmd}, stdout, stderr)
	case "classify":
		err = cmdClassify(rest, stdin, stdout, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "feeds":
		err = cmdFeeds(rest, stdout, stderr)
	case "backtest":
		err = cmdBacktest(ctx, rest, stdout, stderr)
	case "dlq":
		err = cmdDLQ(rest, stdout, stderr)
	case "replay":
		err = cmdReplay(ctx, rest, stdout, stderr)
	case "bench":
		err = cmdBench(rest, stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(rest, stderr)
	case "topics":
		if len(rest) > 0 {
			err = &usageError{msg: "topics: takes no arguments"}
			break
		}
		_, err = stdout.Write(topics.BuiltinYAML())
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "feedmon", version.Version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = &usageError{msg: fmt.Sprintf("unknown command %q", cmd), usage: true}
	}
	return report(err, stderr)
}

// report prints err and maps it to the exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	var ce *config.Error
	if errors.As(err, &ue) || errors.As(err, &ce) {
		fmt.Fprintln(stderr, "feedmon:", strings.ReplaceAll(err.Error(), "\n", "\nfeedmon: "))
		if ue != nil && ue.usage {
			fmt.Fprint(stderr, "\n", usage)
		}
		return exitUsage
	}
	var silent *exitError
	if errors.As(err, &silent) {
		return silent.code
	}
	fmt.Fprintln(stderr, "feedmon:", err)
	return exitFail
}

// exitError carries an exit status whose reason was already printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// flags is the flag set every command shares.
type flags struct {
	fs            *flag.FlagSet
	configPath    string
	metricsListen string
	// services are those the command runs or serves: the config is checked
	// for what they read (none: all).
	services []string
}

func newFlags(name string, stderr io.Writer, metrics bool, services ...string) *flags {
	f := &flags{fs: flag.NewFlagSet(name, flag.ContinueOnError), services: services}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.configPath, "config", "", "config file (default $FEEDMON_CONFIG, else the built-in defaults)")
	if metrics {
		f.fs.StringVar(&f.metricsListen, "metrics-listen", "", "address for /metrics, /healthz, /readyz (overrides metrics.listen)")
	}
	return f
}

func (f *flags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: fmt.Sprintf("%s: %v", f.fs.Name(), err)}
	}
	if f.fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", f.fs.Name(), f.fs.Arg(0))}
	}
	return nil
}

// load reads the config named by -config or FEEDMON_CONFIG.
func (f *flags) load() (*config.Config, error) {
	path := f.configPath
	if path == "" {
		path = os.Getenv(config.EnvConfig)
	}
	cfg, err := config.LoadFor(path, os.LookupEnv, f.services...)
	if err != nil {
		return nil, err
	}
	if f.metricsListen != "" {
		cfg.Metrics.Listen = f.metricsListen
	}
	return cfg, nil
}

func cmdServe(ctx context.Context, args []string, services []string, stdout, stderr io.Writer) error {
	name := "run"
	if len(services) == 1 {
		name = services[0]
	}
	f := newFlags(name, stderr, true, services...)
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	if len(services) == 1 && cfg.NATS.URL == "" {
		return &config.Error{Key: "nats.url", Msg: fmt.Sprintf("required by `feedmon %s`: a single service shares NATS with the others (or use `feedmon run`)", name)}
	}
	log := telemetry.NewLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	warn(log, cfg, services)
	setMemoryLimit(log, memlimit.FromCgroup)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &app.Main{Config: cfg, Services: services, Log: log, Stdout: stdout, Name: "feedmon-" + name}
	if err := m.Start(ctx); err != nil {
		return err
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			start := time.Now()
			err := m.Close()
			log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
			return err
		case <-hup:
			ncfg, err := f.load()
			if err != nil {
				log.Error("reload refused: config invalid, keeping the running one", "err", err)
				continue
			}
			warn(log, ncfg, services)
			if err := m.Reload(ncfg); err != nil {
				log.Error("reload failed", "err", err)
				continue
			}
			log.Info("config reloaded", "path", ncfg.Path)
		}
	}
}

// warn logs what is valid in cfg but probably not meant, for services.
func warn(log *slog.Logger, cfg *config.Config, services []string) {
	for _, w := range cfg.Warnings(services...) {
		log.Warn("config: "+w.Msg, "key", w.Key)
	}
}

func cmdClassify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := newFlags("classify", stderr, false, app.Classifier)
	explain := f.fs.Bool("explain", false, "add, per topic, the rule that fired and why, and why each line has its story")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	c, err := classifier.Compile(cfg.TopicSet)
	if err != nil {
		return err
	}
	bad, err := classifier.RunClassify(context.Background(), c, stdin, stdout,
		classifier.RunOptions{Explain: *explain, Stories: classifier.StoryOptions(cfg.Stories)})
	if err != nil {
		return err
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "feedmon: classify: %d line(s) were not valid input\n", bad)
		return &exitError{code: exitFail}
	}
	return nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	f := newFlags("check", stderr, false)
	only := f.fs.String("service", "", "check only what these services read (comma-separated: poller, classifier, notifier); default all")
	if err := f.parse(args); err != nil {
		return err
	}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(app.All, s) {
				return &usageError{msg: fmt.Sprintf("check: -service: unknown service %q (want %s)", s, strings.Join(app.All, ", "))}
			}
			f.services = append(f.services, s)
		}
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings(f.services...) {
		fmt.Fprintln(stderr, "feedmon: warning:", w)
	}
	if _, err := classifier.Compile(cfg.TopicSet); err != nil {
		return &config.Error{Key: "topics", Msg: err.Error()}
	}
	src := cfg.Path
	if src == "" {
		src = "built-in defaults"
	}
	fmt.Fprintf(stdout, "config ok (%s): %d feeds, %d OPML files, %d topics, %d subscribers\n",
		src, len(cfg.Feeds), len(cfg.OPML), len(cfg.TopicSet), len(cfg.Subscribers))
	fmt.Fprintln(stdout, cfg.Retention.Summary())
	return nil
}

// connect opens a short-lived connection for the inspection commands. With
// an embedded server configured, it reaches the running `feedmon run`
// through nats.listen.
func connect(cfg *config.Config, stderr io.Writer) (*bus.Bus, error) {
	nc := cfg.NATS
	if nc.URL == "" {
		if nc.Listen == "" {
			return nil, &config.Error{Key: "nats.listen", Msg: "empty: the embedded server cannot be reached from another process; set nats.url or nats.listen"}
		}
		nc.URL = "nats://" + nc.Listen
	}
	log := telemetry.NewLogger(stderr, "error", "text")
	// Fail fast: a refused connection is an answer, not a reason to wait
	// out the connect timeout.
	b, err := bus.Connect(context.Background(), nc, "feedmon-cli", log, bus.FailFast())
	if err != nil {
		return nil, fmt.Errorf("%w (is feedmon running?)", err)
	}
	return b, nil
}

// withBus runs fn with a connection to the running deployment that f's
// config names, for the inspection commands.
func withBus(f *flags, stderr io.Writer, timeout time.Duration, fn func(ctx context.Context, cfg *config.Config, b *bus.Bus) error) error {
	cfg, err := f.load()
	if err != nil {
		return err
	}
	b, err := connect(cfg, stderr)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return fn(ctx, cfg, b)
}

func cmdFeeds(args []string, stdout, stderr io.Writer) error {
	f := newFlags("feeds", stderr, false, app.Poller)
	if err := f.parse(args); err != nil {
		return err
	}
	return withBus(f, stderr, 30*time.Second, func(ctx context.Context, _ *config.Config, b *bus.Bus) error {
		return poller.ListFeeds(ctx, b, stdout)
	})
}

func cmdDLQ(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return &usageError{msg: "dlq: want `feedmon dlq list` or `feedmon dlq replay`"}
	}
	sub := args[0]
	f := newFlags("dlq "+sub, stderr, false, app.Notifier)
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	return withBus(f, stderr, 60*time.Second, func(ctx context.Context, cfg *config.Config, b *bus.Bus) error {
		if sub == "list" {
			return notifier.ListDead(ctx, b, stdout)
		}
		return notifier.ReplayDead(ctx, b, cfg.NotifierConfig(), stdout)
	})
}

// cmdHealthcheck probes a health endpoint, so that container images without
// curl or wget can use the binary itself as their healthcheck.
func cmdHealthcheck(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9464/readyz", "endpoint that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: fmt.Sprintf("healthcheck: %v", err)}
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*url)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("healthcheck: %s answered %s: %s", *url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.Options{}
	fs.IntVar(&o.Feeds, "feeds", 1000, "feeds on the local feed server")
	fs.IntVar(&o.Items, "items", 10, "items per feed")
	fs.Float64Var(&o.Rate, "rate", 0, "offered load in items/s (0: every item is there at the first fetch)")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.DurationVar(&o.Interval, "interval", 0, "poll.interval (default 1s with -rate, else 10s)")
	fs.BoolVar(&o.Stages, "stages", false, "after the run, split fetch → delivery where the items and classified streams stored each item")
	fs.BoolVar(&o.Push, "push", false, "subscribe every feed through a local WebSub hub that pings as items are published (needs -rate)")
	verbose := fs.Bool("v", false, "log what feedmon logs")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end of the run to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: fmt.Sprintf("bench: %v", err)}
	}
	if o.Feeds < 1 || o.Items < 1 || o.Rate < 0 {
		return &usageError{msg: "bench: -feeds and -items must be at least 1, -rate at least 0"}
	}
	if o.Push && o.Rate <= 0 {
		return &usageError{msg: "bench: -push needs -rate above 0 (items are published over time)"}
	}
	if *verbose {
		o.Log = telemetry.NewLogger(stderr, "info", "text")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	o.AtEnd = func() error {
		if *memProfile == "" {
			return nil
		}
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		runtime.GC()
		return pprof.WriteHeapProfile(f)
	}
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		return err
	}
	res.Print(stdout)
	return nil
}
