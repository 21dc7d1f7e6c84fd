package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

// How feedmon sizes its streams and buckets.
//
// JetStream reserves a stream's MaxBytes up front, on every replica, and
// refuses a stream it cannot reserve; a stream without MaxBytes reserves
// nothing, but once the server or account is full every write to it is
// refused instead of old messages being dropped. So every stream and bucket
// gets a cap, and all caps together fit in what NATS gives feedmon:
//
//   - the account's JetStream file-storage limit (of the tier R<replicas>
//     when the account has tiers), less what the account's other streams
//     reserve; or, when the account has none,
//   - the embedded server's own limit; or, against an external server
//     whose limit clients cannot see, assumedStore (1 GB).
//
// Of that, planShare is planned; a retention.<stream>.max_bytes the user set
// is taken as it is, and the rest is split between the others by weight,
// a stream's weight growing with its max_age.
const (
	// assumedStore is the storage planned with when NATS does not say: the
	// smallest JetStream store feedmon is made to run in.
	assumedStore = 1_000_000_000
	// planShare leaves room for the stores' own overhead and for other
	// clients of a server whose limit feedmon cannot see.
	planShare = 0.9
	// minCap is the least cap of a derived size.
	minCap = 1 << 20
)

// weights split the planned storage between the streams and buckets whose
// size is left to feedmon: most goes to the item streams, a fifth to the
// KV buckets (whose content is bounded by the number of feeds and the
// delivered log's TTL).
var weights = map[string]float64{
	event.StreamItems:               35,
	event.StreamClassified:          30,
	event.StreamAlerts:              10,
	event.StreamDead:                5,
	kvStream(event.BucketDelivered): 10,
	kvStream(event.BucketSeen):      6,
	kvStream(event.BucketFeeds):     2,
	kvStream(event.BucketLeases):    1,
	kvStream(event.BucketWebSub):    1,
}

func kvStream(bucket string) string { return "KV_" + bucket }

// retentionKeys maps each stream to its config section.
var retentionKeys = map[string]string{
	event.StreamItems:      "retention.items",
	event.StreamClassified: "retention.classified",
	event.StreamAlerts:     "retention.alerts",
	event.StreamDead:       "retention.dead",
}

func streamRetention(r *config.Retention, stream string) *config.StreamRetention {
	switch stream {
	case event.StreamItems:
		return &r.Items
	case event.StreamClassified:
		return &r.Classified
	case event.StreamAlerts:
		return &r.Alerts
	case event.StreamDead:
		return &r.Dead
	}
	return nil
}

func defaultMaxAge(stream string) time.Duration {
	if stream == event.StreamDead {
		return config.DefaultDeadMaxAge
	}
	return config.DefaultStreamMaxAge
}

// budget is the file storage feedmon may plan with, in bytes of one
// replica, and where that number comes from.
type budget struct {
	bytes int64
	// known is false when the number is assumedStore.
	known  bool
	source string
	// maxStream is the account's cap on any one stream, 0 if none.
	maxStream int64
}

// plan is the byte cap of every stream and bucket stream.
type plan struct {
	budget budget
	caps   map[string]int64
}

// makePlan sizes every stream and bucket within b. existing holds the caps
// the streams have now: against a server whose size is assumed, a derived
// cap never shrinks below what the server already granted, so that an
// upgrade from the old fixed 4 GiB caps drops no stored message on a
// guess.
func makePlan(r config.Retention, b budget, existing map[string]int64) plan {
	p := plan{budget: b, caps: map[string]int64{}}
	avail := float64(b.bytes) * planShare
	// total weighs every stream, auto only those whose size is left to
	// feedmon.
	var total, auto float64
	w := map[string]float64{}
	for name, base := range weights {
		s := streamRetention(&r, name)
		if s != nil {
			base *= float64(s.MaxAge.D()) / float64(defaultMaxAge(name))
		}
		total += base
		if s != nil && s.MaxBytes > 0 {
			p.caps[name] = int64(s.MaxBytes)
			if b.known {
				avail -= float64(s.MaxBytes)
			}
			continue
		}
		w[name] = base
		auto += base
	}
	// Within a known budget the sizes set come out of it and the others
	// share the rest. Against an assumed one a size set says the server is
	// larger than assumed: the others keep the share they would have had.
	if !b.known {
		auto = total
	}
	for name, wt := range w {
		c := int64(avail*wt/auto) &^ (minCap - 1)
		if b.maxStream > 0 {
			c = min(c, b.maxStream)
		}
		if !b.known {
			c = max(c, existing[name])
		}
		p.caps[name] = max(c, minCap)
	}
	return p
}

// planner remembers the plan of this process, so that the many callers of
// EnsureStream and KV ask NATS once, and the refusals already reported.
type planner struct {
	// making is held while a plan is made, so that services starting
	// together in one process ask NATS once.
	making   sync.Mutex
	mu       sync.Mutex
	plan     *plan
	refused  map[string]*RefusedError
	reported map[string]string
}

// currentPlan returns the plan, making it on first use (and again after a
// refusal, since what NATS offers may have changed).
func (b *Bus) currentPlan(ctx context.Context) (plan, error) {
	b.planner.making.Lock()
	defer b.planner.making.Unlock()
	b.planner.mu.Lock()
	if p := b.planner.plan; p != nil {
		b.planner.mu.Unlock()
		return *p, nil
	}
	b.planner.mu.Unlock()

	existing, err := b.existingCaps(ctx)
	if err != nil {
		return plan{}, err
	}
	bud, err := b.budget(ctx, existing)
	if err != nil {
		return plan{}, err
	}
	p := makePlan(b.retention, bud, existing)
	b.planner.mu.Lock()
	first := b.planner.reported == nil
	if first {
		b.planner.reported = map[string]string{}
	}
	b.planner.plan = &p
	b.planner.mu.Unlock()
	if first {
		b.log.Info("nats storage planned", p.logAttrs()...)
	}
	return p, nil
}

func (p plan) logAttrs() []any {
	attrs := []any{"budget", config.ByteSize(p.budget.bytes).String(), "source", p.budget.source}
	names := make([]string, 0, len(p.caps))
	for n := range p.caps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		attrs = append(attrs, strings.ToLower(n), config.ByteSize(p.caps[n]).String())
	}
	return attrs
}

// budget asks NATS what feedmon may use; existing is what feedmon's
// streams reserve now.
func (b *Bus) budget(ctx context.Context, existing map[string]int64) (budget, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	info, err := b.js.AccountInfo(ctx)
	if err != nil {
		return budget{}, fmt.Errorf("bus: plan storage: account info: %w", err)
	}
	limits, tier, reserved := b.accountLimits(info)
	if limits.MaxStore >= 0 {
		// Feedmon's own streams are part of what the account reserves:
		// counted as others', a restart would plan with less every time.
		var own int64
		for _, c := range existing {
			own += c
		}
		limit := limits.MaxStore
		source := "account limit"
		if tier == "" {
			// An account without tiers counts every replica against its
			// limit; a tier's limit is per replica already.
			limit /= int64(b.Replicas)
			if b.Replicas > 1 {
				source = fmt.Sprintf("account limit / %d replicas", b.Replicas)
			}
		} else {
			source = "account limit, tier " + tier
		}
		others := max(0, int64(reserved)-own)
		bud := budget{bytes: max(0, limit-others), known: true, source: source, maxStream: limits.StoreMaxStreamBytes}
		if others > 0 {
			bud.source += fmt.Sprintf(", less %s reserved by other streams", config.ByteSize(others))
		}
		return bud, nil
	}
	if b.embedded != nil {
		if js := b.embedded.JetStreamConfig(); js != nil && js.MaxStore > 0 {
			// The embedded server's limit follows the free disk space at
			// start; rounding keeps the caps from changing at every start.
			n := js.MaxStore
			if n > 4<<30 {
				n &^= 1<<30 - 1
			}
			return budget{bytes: n, known: true, source: "embedded server limit"}, nil
		}
	}
	return budget{bytes: assumedStore, source: "assumed: the account has no JetStream limit and the server does not tell its own"}, nil
}

// accountLimits returns the limits that apply to feedmon's streams: the
// tier of its replica count, or the account's.
func (b *Bus) accountLimits(info *jetstream.AccountInfo) (jetstream.AccountLimits, string, uint64) {
	tier := fmt.Sprintf("R%d", b.Replicas)
	if t, ok := info.Tiers[tier]; ok && len(info.Tiers) > 0 && (t.Limits != jetstream.AccountLimits{}) {
		return t.Limits, tier, t.ReservedStore
	}
	return info.Limits, "", info.ReservedStore
}

// existingCaps is the byte cap of each of feedmon's streams that exists,
// so that a second service (or a restart) plans with the same budget as
// the first.
func (b *Bus) existingCaps(ctx context.Context) (map[string]int64, error) {
	caps := map[string]int64{}
	for name := range weights {
		sctx, cancel := context.WithTimeout(ctx, setupTimeout)
		s, err := b.js.Stream(sctx, name)
		cancel()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bus: plan storage: info of stream %s: %w", name, err)
		}
		if c := s.CachedInfo().Config; c.MaxBytes > 0 && c.Storage == jetstream.FileStorage {
			caps[name] = c.MaxBytes
		}
	}
	return caps, nil
}

// RefusedError is a stream or bucket that NATS would not create or update
// for want of storage, memory or streams in the account or on the server.
type RefusedError struct {
	// Stream is the stream's name (a bucket's is KV_<bucket>).
	Stream string
	// Asked is what feedmon asked for.
	Asked string
	// Key is the config key that sets the size asked for, "" when none does.
	Key string
	// Server is what NATS answered.
	Server string
	// Has is what the account or server says it has.
	Has string
	// Fix says what to change.
	Fix string
	Err error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("bus: NATS refused stream %s: asked for %s; NATS says %q; %s; %s", e.Stream, e.Asked, e.Server, e.Has, e.Fix)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refusalKind tells whether err is NATS refusing for want of resources,
// and of which.
func refusalKind(err error) string {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return ""
	}
	d := strings.ToLower(api.Description)
	switch {
	case api.ErrorCode == 10027: // maximum number of streams reached
		return "streams"
	case api.ErrorCode == 10028 || strings.Contains(d, "insufficient memory"):
		return "memory"
	case api.ErrorCode == 10047, api.ErrorCode == 10002, api.ErrorCode == 10122, api.ErrorCode == 10113,
		strings.Contains(d, "insufficient storage"):
		return "storage"
	}
	return ""
}

// refused turns a refusal of stream cfg into a RefusedError saying what
// was asked, which key sets it and what NATS has; nil when err is not a
// refusal for want of resources.
func (b *Bus) refused(ctx context.Context, cfg jetstream.StreamConfig, p plan, err error) *RefusedError {
	kind := refusalKind(err)
	if kind == "" {
		return nil
	}
	var api *jetstream.APIError
	errors.As(err, &api)
	e := &RefusedError{Stream: cfg.Name, Server: api.Description, Err: err}
	replicas := "1 replica"
	if cfg.Replicas > 1 {
		replicas = fmt.Sprintf("%d replicas", cfg.Replicas)
	}
	e.Asked = fmt.Sprintf("%s of file storage on %s", config.ByteSize(cfg.MaxBytes), replicas)
	key, isStream := retentionKeys[cfg.Name]
	switch {
	case kind == "streams":
		e.Asked = "one stream more"
	case !isStream || kind != "storage":
		e.Asked += fmt.Sprintf(" (a share of the %s planned from %s)", config.ByteSize(p.budget.bytes), p.budget.source)
	case streamRetention(&b.retention, cfg.Name).MaxBytes > 0:
		e.Key = key + ".max_bytes"
		e.Asked += fmt.Sprintf(" (%s: %s)", e.Key, streamRetention(&b.retention, cfg.Name).MaxBytes)
	default:
		e.Key = key + ".max_bytes"
		e.Asked += fmt.Sprintf(" (%s: 0, so a share of the %s planned from %s)", e.Key, config.ByteSize(p.budget.bytes), p.budget.source)
	}

	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	info, ierr := b.js.AccountInfo(ictx)
	switch {
	case ierr != nil:
		e.Has = "account info unavailable: " + ierr.Error()
	default:
		l, tier, reserved := b.accountLimits(info)
		in := "the account"
		if tier != "" {
			in += " (tier " + tier + ")"
		}
		switch kind {
		case "streams":
			e.Has = fmt.Sprintf("%s allows %d streams and has %d; feedmon needs %d (%d streams and %d KV buckets)", in, l.MaxStreams, info.Streams, len(weights), len(retentionKeys), len(weights)-len(retentionKeys))
		case "memory":
			e.Has = fmt.Sprintf("%s allows %s of memory storage, %s in use", in, limitString(l.MaxMemory), config.ByteSize(info.Memory))
		default:
			if l.MaxStore >= 0 {
				e.Has = fmt.Sprintf("%s allows %s of file storage; its streams reserve %s and use %s", in, config.ByteSize(l.MaxStore), config.ByteSize(reserved), config.ByteSize(info.Store))
				if l.StoreMaxStreamBytes > 0 {
					e.Has += fmt.Sprintf("; one stream may have at most %s", config.ByteSize(l.StoreMaxStreamBytes))
				}
			} else {
				e.Has = fmt.Sprintf("%s has no JetStream limit of its own, so the server's (max_file_store, less what other accounts reserve) applies, which NATS does not tell clients; this account's streams reserve %s", in, config.ByteSize(reserved))
			}
		}
	}
	switch {
	case kind == "streams":
		e.Fix = "raise the account's max_streams"
	case kind == "memory":
		e.Fix = "give the account or server more JetStream memory"
	case e.Key != "":
		e.Fix = fmt.Sprintf("set %s lower, or give JetStream more storage", e.Key)
	default:
		e.Fix = "set retention.*.max_bytes lower to leave room, or give JetStream more storage"
	}
	return e
}

func limitString(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return config.ByteSize(n).String()
}

// report logs a refusal once: again only when what was asked or what NATS
// answered changes, not on every retry. The plan is dropped so that the
// next attempt asks NATS afresh.
func (b *Bus) report(e *RefusedError) {
	sig := e.Asked + "\x00" + e.Server
	b.planner.mu.Lock()
	if b.planner.refused == nil {
		b.planner.refused = map[string]*RefusedError{}
	}
	b.planner.refused[e.Stream] = e
	b.planner.plan = nil
	if b.planner.reported == nil {
		b.planner.reported = map[string]string{}
	}
	changed := b.planner.reported[e.Stream] != sig
	b.planner.reported[e.Stream] = sig
	b.planner.mu.Unlock()
	if changed {
		b.log.Error("nats refused stream", "stream", e.Stream, "asked", e.Asked, "key", e.Key, "server", e.Server, "has", e.Has, "fix", e.Fix)
	}
}

// accepted clears a refusal of stream once NATS takes it.
func (b *Bus) accepted(stream string) {
	b.planner.mu.Lock()
	_, was := b.planner.refused[stream]
	delete(b.planner.refused, stream)
	delete(b.planner.reported, stream)
	b.planner.mu.Unlock()
	if was {
		b.log.Info("nats accepted stream", "stream", stream)
	}
}

// SetupError is why NATS refuses feedmon's streams or buckets now, nil when
// it refuses none. Readiness reports it.
func (b *Bus) SetupError() error {
	b.planner.mu.Lock()
	defer b.planner.mu.Unlock()
	names := make([]string, 0, len(b.planner.refused))
	for n := range b.planner.refused {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		errs = append(errs, b.planner.refused[n])
	}
	return errors.Join(errs...)
}
