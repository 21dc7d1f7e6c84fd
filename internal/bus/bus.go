// Package bus owns feedmon's NATS side: the embedded server, connections,
// the streams and KV buckets every service relies on, and the consume loop.
// Whichever service starts first creates what is missing; creation is
// idempotent, so services start in any order.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/grace"
)

// What feedmon keeps in NATS, beyond what retention.* sets.
const (
	DuplicateWindow = 2 * time.Minute
	// DeliveredTTL is the least time the delivered log keeps an entry; it
	// keeps them longer when retention keeps a stream longer (see
	// config.Retention.DeliveredTTL), so that it outlives the streams it
	// protects.
	DeliveredTTL = 14 * 24 * time.Hour
	// setupTimeout bounds one attempt at creating a stream, bucket or
	// consumer; Retry tries again. Creating is idempotent, and a clustered
	// NATS can drop the reply when several services create one stream at
	// once (the stream is made, the caller never hears): a short attempt
	// turns that into a quick retry rather than a long wait.
	setupTimeout = 5 * time.Second
)

// Bus is one connection to NATS with JetStream, and the embedded server
// when feedmon runs one.
type Bus struct {
	Replicas int

	nc *nats.Conn
	js jetstream.JetStream

	log       *slog.Logger
	embedded  *server.Server
	retention config.Retention
	planner   planner
}

// ConnectOption changes how Connect connects.
type ConnectOption func(*connectOptions)

type connectOptions struct{ failFast bool }

// FailFast makes Connect to an external NATS fail at once when no server
// accepts the connection, instead of retrying in the background: for
// short-lived clients (the inspection commands), which can do nothing
// until connected and should say so rather than wait.
func FailFast() ConnectOption { return func(o *connectOptions) { o.failFast = true } }

// Connect connects to the NATS named by cfg, or starts an embedded server
// when cfg.URL is empty. name identifies the client in NATS monitoring.
// Against an external NATS it does not wait for the server to be up: the
// connection is retried in the background, so start-up order is free
// (unless FailFast).
func Connect(ctx context.Context, cfg config.NATS, name string, log *slog.Logger, opt ...ConnectOption) (*Bus, error) {
	var co connectOptions
	for _, o := range opt {
		o(&co)
	}
	b := &Bus{Replicas: cfg.Replicas, log: log, retention: cfg.Retention}
	if b.Replicas == 0 {
		b.Replicas = 1
	}
	if b.retention.IsZero() {
		b.retention = config.DefaultRetention()
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(cfg.ConnectTimeout.D()),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	if cfg.URL == "" {
		ns, err := StartEmbedded(cfg, log)
		if err != nil {
			return nil, err
		}
		b.embedded = ns
		opts = append(opts, nats.InProcessServer(ns))
		nc, err := nats.Connect("", opts...)
		if err != nil {
			ns.Shutdown()
			return nil, fmt.Errorf("bus: connect to embedded server: %w", err)
		}
		b.nc = nc
	} else {
		opts = append(opts, nats.RetryOnFailedConnect(!co.failFast))
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.Token != "" {
			opts = append(opts, nats.Token(cfg.Token))
		}
		if cfg.User != "" {
			opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
		}
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("bus: connect to %s: %w", config.Redact(cfg.URL), err)
		}
		b.nc = nc
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	return b, nil
}

// StartEmbedded starts a nats-server with JetStream in this process, storing
// under cfg.StoreDir, listening on cfg.Listen ("" = in-process only).
func StartEmbedded(cfg config.NATS, log *slog.Logger) (*server.Server, error) {
	dir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("bus: store dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("bus: store dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "feedmon",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: nats.listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("bus: embedded server did not start (is %s in use, or %s locked by another feedmon?)", cfg.Listen, dir)
	}
	if cfg.Listen != "" {
		log.Info("embedded nats started", "client_url", ns.ClientURL(), "store_dir", dir)
	} else {
		log.Info("embedded nats started", "in_process", true, "store_dir", dir)
	}
	return ns, nil
}

// Embedded is the embedded server, or nil against an external NATS.
func (b *Bus) Embedded() *server.Server { return b.embedded }

// Connected reports whether the connection is up.
func (b *Bus) Connected() bool { return b.nc != nil && b.nc.IsConnected() }

// Abort closes the connection at once, as a crash would: nothing is
// drained, so what is pulled and not acknowledged is redelivered elsewhere.
// Tests of failure handling use it; Close still has to be called.
func (b *Bus) Abort() {
	if b.nc != nil {
		b.nc.Close()
	}
}

// Close drains the connection (pending publishes are flushed, subscriptions
// finish what they hold) and stops the embedded server.
func (b *Bus) Close() {
	if b.nc != nil {
		done := make(chan struct{})
		b.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		} else {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				b.nc.Close()
			}
		}
	}
	if b.embedded != nil {
		b.embedded.Shutdown()
		b.embedded.WaitForShutdown()
	}
}

// StreamConfig returns the configuration of one of feedmon's streams, as
// retention sets it and with the byte cap planned for it (see retention.go).
func (b *Bus) StreamConfig(ctx context.Context, name string) (jetstream.StreamConfig, error) {
	if _, ok := retentionKeys[name]; !ok {
		return jetstream.StreamConfig{}, fmt.Errorf("bus: unknown stream %q", name)
	}
	p, err := b.currentPlan(ctx)
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	ret := streamRetention(&b.retention, name)
	cfg := jetstream.StreamConfig{
		Name:      name,
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		// Full, a stream drops its oldest messages rather than refuse new ones.
		Discard:    jetstream.DiscardOld,
		MaxAge:     ret.MaxAge.D(),
		MaxBytes:   p.caps[name],
		Duplicates: min(DuplicateWindow, ret.MaxAge.D()),
		Replicas:   b.Replicas,
	}
	switch name {
	case event.StreamItems:
		cfg.Subjects = []string{event.ItemsAll}
		cfg.Description = "feedmon: every new item, once, as fetched"
	case event.StreamClassified:
		cfg.Subjects = []string{event.ClassifiedAll}
		cfg.Description = "feedmon: items by matched topic"
	case event.StreamAlerts:
		cfg.Subjects = []string{event.AlertsAll}
		cfg.Description = "feedmon: alerts routed to each subscriber's nats receiver"
	case event.StreamDead:
		cfg.Subjects = []string{event.DeadAll}
		cfg.Description = "feedmon: deliveries that failed for good"
	}
	return cfg, nil
}

// EnsureStream creates or updates one of feedmon's streams. A changed
// retention updates the stream in place; a refusal for want of storage is
// a *RefusedError, logged once.
func (b *Bus) EnsureStream(ctx context.Context, name string) (jetstream.Stream, error) {
	cfg, err := b.StreamConfig(ctx, name)
	if err != nil {
		return nil, err
	}
	return b.ensure(ctx, "stream "+name, cfg, func(ctx context.Context) (jetstream.Stream, error) {
		return b.js.CreateOrUpdateStream(ctx, cfg)
	})
}

// ensure runs create for stream cfg (what names it in errors), reporting
// a refusal once.
func (b *Bus) ensure(ctx context.Context, what string, cfg jetstream.StreamConfig, create func(context.Context) (jetstream.Stream, error)) (jetstream.Stream, error) {
	cctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	s, err := create(cctx)
	if err != nil {
		b.planner.mu.Lock()
		p := b.planner.plan
		b.planner.mu.Unlock()
		if p == nil {
			p = &plan{}
		}
		if r := b.refused(ctx, cfg, *p, err); r != nil {
			b.report(r)
			return nil, r
		}
		return nil, fmt.Errorf("bus: %s: %w", what, explainReplicas(err, b.Replicas))
	}
	b.accepted(cfg.Name)
	return s, nil
}

// EnsureStreams creates or updates all of feedmon's streams.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	for _, name := range []string{event.StreamItems, event.StreamClassified, event.StreamAlerts, event.StreamDead} {
		if _, err := b.EnsureStream(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// KV opens (creating or updating) one of feedmon's KV buckets, capped like
// the streams.
func (b *Bus) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:   bucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: b.Replicas,
	}
	switch bucket {
	case event.BucketFeeds:
		cfg.Description = "feedmon: per-feed poll state"
	case event.BucketSeen:
		cfg.Description = "feedmon: per-feed ids of items already published"
	case event.BucketLeases:
		cfg.Description = "feedmon: which poller polls which feed"
	case event.BucketWebSub:
		cfg.Description = "feedmon: WebSub subscriptions (secrets, state, leases)"
	case event.BucketDelivered:
		cfg.Description = "feedmon: idempotency log of deliveries"
		cfg.TTL = max(DeliveredTTL, b.retention.DeliveredTTL())
	default:
		return nil, fmt.Errorf("bus: unknown bucket %q", bucket)
	}
	p, err := b.currentPlan(ctx)
	if err != nil {
		return nil, err
	}
	c, ok := p.caps[kvStream(bucket)]
	if !ok {
		// A bucket without a share would be created without a cap.
		return nil, fmt.Errorf("bus: kv %s: no storage share planned (add it to weights in retention.go)", bucket)
	}
	cfg.MaxBytes = c
	var kv jetstream.KeyValue
	asked := jetstream.StreamConfig{Name: kvStream(bucket), MaxBytes: cfg.MaxBytes, Replicas: b.Replicas}
	_, err = b.ensure(ctx, "kv "+bucket, asked, func(ctx context.Context) (jetstream.Stream, error) {
		var err error
		kv, err = b.js.CreateOrUpdateKeyValue(ctx, cfg)
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// explainReplicas turns JetStream's replica errors into advice.
func explainReplicas(err error, replicas int) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "replicas > 1 not supported in non-clustered mode"):
		return fmt.Errorf("nats.replicas is %d but the NATS server is not clustered; set nats.replicas: 1: %w", replicas, err)
	case strings.Contains(msg, "insufficient resources") || strings.Contains(msg, "no suitable peers"):
		return fmt.Errorf("nats.replicas is %d but the cluster cannot place that many replicas (are all nodes up and JetStream-enabled?): %w", replicas, err)
	}
	return err
}

// Retry calls f until it succeeds or ctx ends, backing off between
// attempts. It is how services set up streams and buckets without a
// start-up order: NATS may come up after them.
func Retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			// Reported once by the bus already; a retry changes nothing
			// until the config or NATS does.
			log.Debug("setup refused, retrying", "what", what, "attempt", attempt, "err", err)
		case attempt == 1 || attempt%10 == 0:
			log.Warn("setup failed, retrying", "what", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Handler processes one message. It must ack, nak or term it.
type Handler func(ctx context.Context, msg jetstream.Msg)

// ConsumeOptions configures Consume.
type ConsumeOptions struct {
	Stream   string
	Consumer jetstream.ConsumerConfig
	// Workers is how many messages are handled at once.
	Workers int
	// Batch is how many messages one pull request asks for (default
	// twice Workers). A handler that hands its message on and returns at
	// once (and settles it later) wants batches larger than its workers.
	Batch int
	// Grace is how long in-flight handlers may run after ctx ends before
	// their own context is cancelled.
	Grace time.Duration
	// Ready is set once the consumer exists and messages flow.
	Ready *atomic.Bool
}

// Consume creates (idempotently) a durable pull consumer and hands its
// messages to h on up to Workers goroutines until ctx ends. Then it stops
// pulling, naks what was pulled but not started, lets handlers in flight
// finish within Grace, and returns once they have. Errors of the consumer
// (NATS restarts, a deleted consumer) are retried, never fatal, so there is
// no error to return.
func (b *Bus) Consume(ctx context.Context, opts ConsumeOptions, h Handler) {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.Batch < 1 {
		opts.Batch = 2 * opts.Workers
	}
	if opts.Grace == 0 {
		opts.Grace = 6 * time.Second
	}
	// Handlers run on a context that outlives ctx by Grace, so that work in
	// flight at shutdown can finish instead of being cut mid-delivery.
	workCtx, cancelWork := grace.Context(ctx, opts.Grace)
	defer cancelWork()

	var wg sync.WaitGroup
	sem := make(chan struct{}, opts.Workers)
	defer wg.Wait()

	for ctx.Err() == nil {
		var cons jetstream.Consumer
		err := Retry(ctx, b.log, "consumer "+opts.Consumer.Durable, func(ctx context.Context) error {
			if _, err := b.EnsureStream(ctx, opts.Stream); err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, setupTimeout)
			defer cancel()
			c, err := b.js.CreateOrUpdateConsumer(cctx, opts.Stream, opts.Consumer)
			if err != nil {
				return fmt.Errorf("bus: consumer %s: %w", opts.Consumer.Durable, err)
			}
			cons = c
			return nil
		})
		if err != nil {
			return // ctx ended
		}
		iter, err := cons.Messages(jetstream.PullMaxMessages(opts.Batch), jetstream.PullHeartbeat(5*time.Second))
		if err != nil {
			b.log.Warn("consume: messages", "consumer", opts.Consumer.Durable, "err", err)
			continue
		}
		if opts.Ready != nil {
			opts.Ready.Store(true)
		}
		stop := context.AfterFunc(ctx, iter.Drain)
		for {
			msg, err := iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					break
				}
				if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrConnectionClosed) {
					b.log.Debug("consume: waiting for nats", "consumer", opts.Consumer.Durable, "err", err)
				} else {
					b.log.Warn("consume: next", "consumer", opts.Consumer.Durable, "err", err)
				}
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
					iter.Stop()
					break
				}
				continue
			}
			if ctx.Err() != nil {
				// Pulled but not started: hand it back at once rather
				// than let it wait out AckWait.
				_ = msg.Nak()
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				_ = msg.Nak()
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				h(workCtx, msg)
			}()
		}
		stop()
		if opts.Ready != nil && ctx.Err() == nil {
			opts.Ready.Store(false)
		}
	}
}

// PublishAsync publishes data on subject with a Nats-Msg-Id without waiting
// for the stream's acknowledgement: the future says how it went. Callers
// that must know retry a failed one with Publish.
func (b *Bus) PublishAsync(subject, msgID string, data []byte) (jetstream.PubAckFuture, error) {
	f, err := b.js.PublishMsgAsync(idMsg(subject, msgID, data))
	if err != nil {
		return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return f, nil
}

// Stream looks up an existing stream (nil and jetstream.ErrStreamNotFound
// when there is none): for reading its state, unlike EnsureStream it never
// creates or changes it.
func (b *Bus) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", name, err)
	}
	return s, nil
}

// ConsumerInfo reads the state of a durable consumer (how far behind it
// is, what it has not acknowledged).
func (b *Bus) ConsumerInfo(ctx context.Context, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	c, err := b.js.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: %w", consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: %w", consumer, err)
	}
	return info, nil
}

// Publish publishes data on subject with a Nats-Msg-Id, so that a retry
// (ours, or a replica's) inside the duplicate window is dropped by the
// stream. Transient failures (no stream leader yet, a reconnect) are retried
// until ctx ends.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error) {
	delay := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := b.js.PublishMsg(actx, idMsg(subject, msgID, data))
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: publish %s: %w", subject, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// idMsg is a message with a Nats-Msg-Id header. Built whole here rather
// than through jetstream.WithMsgID, which allocates its options and sets
// the header through canonicalisation on every publish.
func idMsg(subject, msgID string, data []byte) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("want host:port, got %q", s)
	}
	host := strings.Trim(s[:i], "[]")
	var port int
	// -1 asks for a random free port (tests use it).
	if _, err := fmt.Sscanf(s[i+1:], "%d", &port); err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port in %q", s)
	}
	return host, port, nil
}
