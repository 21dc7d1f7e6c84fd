package config

import (
	"cmp"
	"errors"
	"slices"
	"strings"
)

// Service names, as the commands call them. A config is checked for the
// services that run on it: each reads only some of the keys.
const (
	Poller     = "poller"
	Classifier = "classifier"
	Notifier   = "notifier"
)

// readers returns the services that read key (a path such as
// "subscribers[0].webhook.url"), nil when every service does. A section
// not named here is read by every service, so a new one is checked
// everywhere until it is given an owner.
func readers(key string) []string {
	switch section(key) {
	case "poll", "feeds", "opml", "websub":
		return []string{Poller}
	case "topics", "stories":
		return []string{Classifier}
	case "smtp", "notify", "subscribers", "feeds_out":
		// feeds_out: the processes that run the notifier serve the feeds.
		return []string{Notifier}
	}
	return nil
}

// section is the top-level key of a key path.
func section(key string) string {
	if i := strings.IndexAny(key, ".["); i >= 0 {
		return key[:i]
	}
	return key
}

// readBy reports whether any of services reads key; no services means all.
func readBy(key string, services []string) bool {
	r := readers(key)
	if len(services) == 0 || r == nil {
		return true
	}
	for _, s := range services {
		if slices.Contains(r, s) {
			return true
		}
	}
	return false
}

// report joins the walker's problems and validation's (validErr, as finish
// returns it) into one error: only those of keys the services read, without
// the validation errors that merely follow from a value that could not be
// read or a variable that is not set, in the order of the file.
func (w *walker) report(validErr error, services []string) error {
	// Validation checks what a value became; where the value could not be
	// read or came from an unset variable, that is the error to report,
	// not what the default or the empty string fails.
	roots := slices.Clone(w.dropped)
	for _, u := range w.unset {
		roots = append(roots, u.key)
	}
	all := slices.Clone(w.errs)
	for _, e := range flatten(validErr) {
		if !e.unset && slices.ContainsFunc(roots, func(r string) bool { return related(e.Key, r) }) {
			continue
		}
		all = append(all, e)
	}
	all = slices.DeleteFunc(all, func(e *Error) bool { return !readBy(e.Key, services) })
	slices.SortStableFunc(all, func(a, b *Error) int { return cmp.Compare(w.line(a.Key), w.line(b.Key)) })
	errs := make([]error, len(all))
	for i, e := range all {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// related reports whether one key is the other or contains it.
func related(a, b string) bool {
	return a == b || within(a, b) || within(b, a)
}

func within(key, parent string) bool {
	return strings.HasPrefix(key, parent) && len(key) > len(parent) && (key[len(parent)] == '.' || key[len(parent)] == '[')
}

// line is where key (or, for a key the file leaves out, its closest
// parent) is in the file; problems with no place come last.
func (w *walker) line(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := w.pos[k]; ok {
			return l
		}
	}
	return int(^uint(0) >> 1)
}

func parentKey(key string) string {
	if i := strings.LastIndexAny(key, ".["); i >= 0 {
		return key[:i]
	}
	return ""
}

// flatten turns validation's joined error into *Errors. Errors of other
// packages that name their key first ("topics.defense.terms[3]: empty
// term") get that key.
func flatten(err error) []*Error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	var ce *Error
	if errors.As(err, &ce) {
		return []*Error{ce}
	}
	msg := err.Error()
	if key, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(key, " \t") {
		return []*Error{{Key: key, Msg: rest}}
	}
	return []*Error{{Msg: msg}}
}

// A Warning is something valid in a config that is probably not what was
// meant, logged at start-up.
type Warning struct {
	Key string
	Msg string
}

func (w Warning) String() string { return w.Key + ": " + w.Msg }

// Warnings returns what looks unintended in c for the given services (none
// means all): a poller with no feeds, a notifier with no subscribers.
func (c *Config) Warnings(services ...string) []Warning {
	var out []Warning
	if readBy("feeds", services) && len(c.Feeds) == 0 && len(c.OPML) == 0 {
		out = append(out, Warning{Key: "feeds", Msg: "no feeds and no opml files: the poller has nothing to fetch"})
	}
	if readBy("subscribers", services) && len(c.Subscribers) == 0 {
		out = append(out, Warning{Key: "subscribers", Msg: "no subscribers: classified items are delivered to no one"})
	}
	return out
}
