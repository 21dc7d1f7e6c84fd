package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Environment variables that override the file.
const (
	EnvConfig        = "FEEDMON_CONFIG"
	EnvNATSURL       = "FEEDMON_NATS_URL"
	EnvMetricsListen = "FEEDMON_METRICS_LISTEN"
	EnvLogLevel      = "FEEDMON_LOG_LEVEL"
)

// maxFileSize bounds the config file we are willing to read; a config of
// more than this is a mistake (or a wrong path), not a config.
const maxFileSize = 16 << 20

// LookupEnv is the environment lookup used for ${NAME} and FEEDMON_*.
type LookupEnv func(string) (string, bool)

// Load reads the config at path, or the built-in defaults when path is
// empty, with the process environment, for every service. FEEDMON_CONFIG is
// the caller's business (it picks path).
func Load(path string) (*Config, error) { return LoadFor(path, os.LookupEnv) }

// LoadEnv is Load with an injected environment.
func LoadEnv(path string, env LookupEnv) (*Config, error) { return LoadFor(path, env) }

// LoadFor is LoadEnv for the given services only (see ParseFor).
func LoadFor(path string, env LookupEnv, services ...string) (*Config, error) {
	if path == "" {
		cfg := Default()
		applyEnv(cfg, env)
		w := &walker{}
		if err := w.report(finish(cfg, nil, false), services); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	data, err := readFile(path, "-config")
	if err != nil {
		return nil, err
	}
	cfg, err := ParseFor(data, env, services...)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

// readFile reads a file named by flag, refusing one too large to be a
// config.
func readFile(path, flag string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Key: flag, Msg: err.Error()}
	}
	if st.Size() > maxFileSize {
		return nil, errorf(flag, "%s is larger than %d bytes", path, maxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Key: flag, Msg: err.Error()}
	}
	return data, nil
}

// Parse decodes a config document over the defaults, expands ${NAME},
// applies FEEDMON_* overrides and validates it for every service. Every
// problem found is returned (joined, in the order of the file), each an
// *Error naming its key.
func Parse(data []byte, env LookupEnv) (*Config, error) { return ParseFor(data, env) }

// ParseFor is Parse for the given services only (Poller, Classifier,
// Notifier; none means all): a problem in a key that none of them reads is
// not reported, so that a poller sharing a file with the notifier does not
// need the notifier's secrets.
func ParseFor(data []byte, env LookupEnv, services ...string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	cfg := base()
	w := &walker{pos: map[string]int{}, env: env, expanded: map[*yaml.Node]bool{}, fields: map[reflect.Type]map[string]reflect.Type{}}
	if root.Kind != 0 && len(root.Content) > 0 {
		if doc := root.Content[0]; doc.Kind != yaml.ScalarNode || doc.Tag != "!!null" {
			w.walk(doc, reflect.TypeOf(cfg).Elem(), "")
			// The walk reported and dropped unknown keys and what cannot
			// be decoded, so this decode of the walked document fills in
			// everything else; what it still finds is reported with the
			// rest. (Decoding the node itself, not the document encoded
			// again: for a list of 100,000 feeds, encoding allocated
			// 600 MB.)
			if err := doc.Decode(cfg); err != nil {
				w.errs = append(w.errs, w.translate(err)...)
			}
		}
	}
	applyEnv(cfg, env)
	// An empty file is a valid config with every default.
	err := w.report(finish(cfg, w.unset, true), services)
	return cfg, err
}

// unsetVar records a ${NAME} that was not set, where it was used.
type unsetVar struct{ key, name string }

// walker checks a document against the struct it decodes into before it is
// decoded: every mapping key must be a field (so an unknown key is reported
// with its full path), every value must decode into its field's type, and
// ${NAME} is expanded in scalars. What is wrong is reported and dropped
// from the document, so that one decode of the rest succeeds and the
// validation after it sees everything else: all of a file's mistakes are
// found in one pass. It also remembers the line of every key, to report in
// the order of the file.
type walker struct {
	pos      map[string]int // key → line
	env      LookupEnv
	unset    []unsetVar
	errs     []*Error
	dropped  []string // keys whose value could not be decoded
	expanded map[*yaml.Node]bool
	// fields caches yamlFields: a list of feeds has one mapping per feed.
	fields map[reflect.Type]map[string]reflect.Type
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk checks n against t and reports whether n can be decoded into t; the
// caller drops it when not. The problem is then already reported.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := w.pos[path]; !ok && path != "" {
		w.pos[path] = n.Line
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode {
		w.expand(n, path)
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// A type that decodes itself (a duration, the topic rules) is
		// tried on its own, so that its error, whatever it says, names
		// the key and does not stop the decoding of the rest.
		return w.try(n, t, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return isNull || w.drop(path, "expected a mapping")
		}
		fields, ok := w.fields[t]
		if !ok {
			fields = yamlFields(t)
			w.fields[t] = fields
		}
		w.pairs(n, path, func(k *yaml.Node, key string) (reflect.Type, bool) {
			ft, ok := fields[k.Value]
			if !ok {
				w.errs = append(w.errs, errorf(key, "unknown key%s", suggest(k.Value, fields)))
			}
			return ft, ok
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return isNull || w.drop(path, "expected a mapping")
		}
		w.pairs(n, path, func(*yaml.Node, string) (reflect.Type, bool) { return t.Elem(), true })
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return isNull || w.drop(path, "expected a list")
		}
		for i, c := range n.Content {
			if !w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)) {
				// A null keeps the indexes of the items after it, which
				// later errors name, as they are in the file.
				n.Content[i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: c.Line, Column: c.Column}
			}
		}
	default:
		return w.try(n, t, path)
	}
	return true
}

// pairs walks the key/value pairs of mapping n, keeping those whose key
// field accepts and whose value decodes.
func (w *walker) pairs(n *yaml.Node, path string, field func(k *yaml.Node, key string) (reflect.Type, bool)) {
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		w.pos[key] = k.Line
		ft, ok := field(k, key)
		if ok && w.walk(v, ft, key) {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

// try decodes n into a fresh value of type t and reports the error.
func (w *walker) try(n *yaml.Node, t reflect.Type, path string) bool {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return true
	}
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if g := lineRe.FindStringSubmatch(m); g != nil {
			m = g[2]
		}
		w.errs = append(w.errs, errorf(keyOrRoot(path), "%s", cleanTypeMsg(m)))
	}
	w.dropped = append(w.dropped, path)
	return false
}

// drop reports a value of the wrong shape; it always returns false.
func (w *walker) drop(path, msg string) bool {
	w.errs = append(w.errs, errorf(keyOrRoot(path), "%s", msg))
	w.dropped = append(w.dropped, path)
	return false
}

// envRef is a variable reference: ${NAME}, or ${NAME:-default}, whose
// default applies when NAME is unset or empty (as in a POSIX shell).
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expand replaces the variable references in a scalar. An unset variable
// without a default becomes "" and is remembered: it is an error only for a
// service that reads the key, and only where the value is used (an smtp
// password with no email receiver is not).
func (w *walker) expand(n *yaml.Node, path string) {
	if w.expanded[n] || !strings.Contains(n.Value, "${") {
		return
	}
	w.expanded[n] = true
	if rest := envRef.ReplaceAllString(n.Value, ""); strings.Contains(rest, "${") {
		w.errs = append(w.errs, errorf(keyOrRoot(path), "malformed variable reference in %q: want ${NAME} or ${NAME:-default}", n.Value))
		return
	}
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		g := envRef.FindStringSubmatch(ref)
		name, def := g[1], g[2]
		v, ok := w.env(name)
		if def != "" {
			if !ok || v == "" {
				return def[len(":-"):]
			}
			return v
		}
		if !ok {
			w.unset = append(w.unset, unsetVar{key: path, name: name})
		}
		return v
	})
	// An expanded value is a string whatever it looks like, except where the
	// target is a number or bool and the variable supplies one: let YAML
	// resolve the plain scalar again.
	n.Tag = ""
	n.Style = 0
	if n.Value == "" {
		n.Style = yaml.DoubleQuotedStyle
	}
}

var lineRe = regexp.MustCompile(`^line (\d+): (.*)$`)

// translate turns decoder errors ("line 7: cannot unmarshal ...") into
// errors naming the key on that line.
func (w *walker) translate(err error) []*Error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []*Error
	for _, m := range msgs {
		if g := lineRe.FindStringSubmatch(m); g != nil {
			line, _ := strconv.Atoi(g[1])
			if key := w.keyAt(line); key != "" {
				out = append(out, errorf(key, "%s", cleanTypeMsg(g[2])))
				continue
			}
		}
		out = append(out, &Error{Msg: m})
	}
	return out
}

// keyAt returns the innermost key on a line, "" if none.
func (w *walker) keyAt(line int) string {
	best := ""
	for k, l := range w.pos {
		if l == line && len(k) > len(best) {
			best = k
		}
	}
	return best
}

func cleanTypeMsg(m string) string {
	// "cannot unmarshal !!str `abc` into int" → "invalid value `abc`: want int"
	if strings.HasPrefix(m, "cannot unmarshal ") {
		rest := strings.TrimPrefix(m, "cannot unmarshal ")
		if i := strings.Index(rest, " into "); i > 0 {
			val := rest[:i]
			if j := strings.Index(val, " "); j > 0 {
				val = val[j+1:]
			}
			want := rest[i+len(" into "):]
			want = strings.TrimPrefix(want, "config.")
			return fmt.Sprintf("invalid value %s: want %s", val, want)
		}
	}
	return m
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// suggest names a close known key for a misspelt one.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := distance(key, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance, for short key names only.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keyOrRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func applyEnv(cfg *Config, env LookupEnv) {
	if v, ok := env(EnvNATSURL); ok {
		cfg.NATS.URL = v
	}
	if v, ok := env(EnvMetricsListen); ok {
		cfg.Metrics.Listen = v
	}
	if v, ok := env(EnvLogLevel); ok && v != "" {
		cfg.Log.Level = v
	}
}

// Duration is a time.Duration written as a Go duration string ("90s", "5m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 90s or 5m", n.Line)
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: want a duration such as 90s or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
