package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Retention says how long, and in how many bytes, feedmon's streams keep
// what they hold. Each stream is bounded by age; MaxBytes 0 leaves the byte
// cap to feedmon, which derives it from the storage NATS offers (see the
// bus package), so that no stream grows past what the server can hold.
type Retention struct {
	Items      StreamRetention `yaml:"items"`
	Classified StreamRetention `yaml:"classified"`
	Alerts     StreamRetention `yaml:"alerts"`
	Dead       StreamRetention `yaml:"dead"`
}

// StreamRetention bounds one stream.
type StreamRetention struct {
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes caps the stream; 0 = no cap of feedmon's own (derived from
	// what NATS offers).
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Default retention of each stream.
const (
	DefaultStreamMaxAge = 7 * 24 * time.Hour
	DefaultDeadMaxAge   = 30 * 24 * time.Hour
	// MinStreamMaxAge keeps the duplicate window (2m) and a redelivery in
	// flight well inside a stream's retention.
	MinStreamMaxAge = time.Hour
	// MinStreamMaxBytes is the least explicit cap: less holds a few hundred
	// items and is a typo rather than a plan.
	MinStreamMaxBytes = 1_000_000
	// deliveredMargin is how much longer than the longest-kept stream the
	// delivered log keeps an entry: a message redelivered just before its
	// stream drops it must still find its entry.
	deliveredMargin = 24 * time.Hour
)

// DefaultRetention is the retention of a config that says nothing.
func DefaultRetention() Retention {
	week := StreamRetention{MaxAge: Duration(DefaultStreamMaxAge)}
	return Retention{
		Items:      week,
		Classified: week,
		Alerts:     week,
		Dead:       StreamRetention{MaxAge: Duration(DefaultDeadMaxAge)},
	}
}

// IsZero reports whether r was never set (a config.NATS built by hand).
func (r Retention) IsZero() bool { return r == Retention{} }

// Streams lists the four stream sections with their config keys
// ("retention.items" and so on), in a fixed order.
func (r *Retention) Streams() []NamedRetention {
	return []NamedRetention{
		{"retention.items", &r.Items},
		{"retention.classified", &r.Classified},
		{"retention.alerts", &r.Alerts},
		{"retention.dead", &r.Dead},
	}
}

// NamedRetention is one stream section and its key.
type NamedRetention struct {
	Key string
	*StreamRetention
}

// Longest is the longest max_age of all streams.
func (r Retention) Longest() time.Duration {
	var d time.Duration
	for _, s := range r.Streams() {
		d = max(d, s.MaxAge.D())
	}
	return d
}

// DeliveredTTL is how long the delivered log keeps an entry: longer than
// any stream keeps a message, so that a message still in a stream (a
// redelivery, a dead letter replayed) always finds its entry and is never
// sent twice.
func (r Retention) DeliveredTTL() time.Duration { return r.Longest() + deliveredMargin }

// Summary says in one line how long each stream keeps items and which
// sizes are left to what NATS offers, for `feedmon check`.
func (r Retention) Summary() string {
	var streams, derived []string
	for _, s := range r.Streams() {
		name := strings.TrimPrefix(s.Key, "retention.")
		line := name + " " + hours(s.MaxAge.D())
		if s.MaxBytes > 0 {
			line += " " + s.MaxBytes.String()
		} else {
			derived = append(derived, name)
		}
		streams = append(streams, line)
	}
	out := "retention: " + strings.Join(streams, ", ")
	if len(derived) > 0 {
		out += "; sizes of " + strings.Join(derived, ", ") + " derived from the storage NATS offers"
	}
	return out + "; delivered log kept " + hours(r.DeliveredTTL())
}

// hours writes d as the config does ("168h", "90m").
func hours(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (r *Retention) validate(add func(key, format string, args ...any)) {
	for _, s := range r.Streams() {
		if d := s.MaxAge.D(); d < MinStreamMaxAge {
			add(s.Key+".max_age", "must be at least %s, got %s", hours(MinStreamMaxAge), hours(d))
		}
		if b := s.MaxBytes; b != 0 && b < MinStreamMaxBytes {
			add(s.Key+".max_bytes", "must be 0 (derived from what NATS offers) or at least 1MB, got %s", b)
		}
	}
}

// ByteSize is a number of bytes written as a plain integer or with a unit:
// decimal kB, MB, GB, TB (powers of 1000) or binary KiB, MiB, GiB, TiB
// (powers of 1024).
type ByteSize int64

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseByteSize parses "512MB", "2GiB", "1.5 GB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		hint := ""
		switch unit {
		case "k", "m", "g", "t":
			hint = fmt.Sprintf(" (%s is ambiguous: write %sB for powers of 1000 or %siB for powers of 1024)", strings.ToUpper(unit), strings.ToUpper(unit), strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with kB, MB, GB, TB, KiB, MiB, GiB or TiB%s", s, hint)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative number", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(v), nil
}

// UnmarshalYAML accepts an integer or a size string.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size such as 512MB, 2GiB or a number of bytes", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML writes the size as it reads best.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// String writes the size in the largest unit that divides it exactly
// (2GB, 512MiB), else in GB or MB with decimals.
func (b ByteSize) String() string {
	v := int64(b)
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9}, {"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"kB", 1e3}} {
		if v >= u.size && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + u.name
		}
	}
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(float64(v)/1e9, 'f', 2, 64) + "GB"
	case v >= 1e6:
		return strconv.FormatFloat(float64(v)/1e6, 'f', 1, 64) + "MB"
	}
	return strconv.FormatInt(v, 10) + "B"
}
