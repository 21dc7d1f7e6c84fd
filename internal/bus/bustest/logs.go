package bustest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Recorder is a slog handler that keeps every record, so tests can count
// what a component logged and at which level.
type Recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

// Logger returns a logger writing to r at every level.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec.Clone())
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler; attributes given this way are not
// kept (the components under test log theirs per record).
func (r *Recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Lines returns the records at level whose text (message and attributes,
// as key=value) contains every one of contains.
func (r *Recorder) Lines(level slog.Level, contains ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level != level {
			continue
		}
		var b strings.Builder
		b.WriteString(rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		line := b.String()
		ok := true
		for _, c := range contains {
			ok = ok && strings.Contains(line, c)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}
