package config

import (
	"bytes"
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
// empty, with the process environment. FEEDMON_CONFIG is the caller's
// business (it picks path).
func Load(path string) (*Config, error) { return LoadEnv(path, os.LookupEnv) }

// LoadEnv is Load with an injected environment.
func LoadEnv(path string, env LookupEnv) (*Config, error) {
	if path == "" {
		cfg := Default()
		applyEnv(cfg, env)
		if err := finish(cfg, nil, false); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Key: "-config", Msg: err.Error()}
	}
	if st.Size() > maxFileSize {
		return nil, errorf("-config", "%s is larger than %d bytes", path, maxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Key: "-config", Msg: err.Error()}
	}
	cfg, err := Parse(data, env)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

// Parse decodes a config document over the defaults, expands ${NAME},
// applies FEEDMON_* overrides and validates. Every problem found is
// returned (joined), each an *Error naming its key.
func Parse(data []byte, env LookupEnv) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	cfg := base()
	if root.Kind == 0 || len(root.Content) == 0 {
		// An empty file is a valid config with every default.
		applyEnv(cfg, env)
		return cfg, finish(cfg, nil, true)
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		applyEnv(cfg, env)
		return cfg, finish(cfg, nil, true)
	}

	w := &walker{lines: map[int]string{}, env: env}
	w.walk(doc, reflect.TypeOf(cfg).Elem(), "")
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(mustEncode(doc)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, w.translate(err)
	}
	applyEnv(cfg, env)
	return cfg, finish(cfg, w.unset, true)
}

func mustEncode(n *yaml.Node) []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	// The node came from the parser, so encoding it cannot fail.
	_ = enc.Encode(n)
	_ = enc.Close()
	return buf.Bytes()
}

// unsetVar records a ${NAME} that was not set, where it was used.
type unsetVar struct{ key, name string }

// walker checks every mapping key against the struct it decodes into (so an
// unknown key is reported with its full path), expands ${NAME} in scalars,
// and remembers which line holds which key so that decoder errors, which
// only know lines, can name the key.
type walker struct {
	lines map[int]string
	env   LookupEnv
	unset []unsetVar
	errs  []error
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if path != "" {
		w.lines[n.Line] = path
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode {
		w.expand(n, path)
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			w.errs = append(w.errs, errorf(keyOrRoot(path), "expected a mapping"))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			w.lines[k.Line] = key
			ft, ok := fields[k.Value]
			if !ok {
				w.errs = append(w.errs, errorf(key, "unknown key%s", suggest(k.Value, fields)))
				continue
			}
			w.walk(v, ft, key)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			w.errs = append(w.errs, errorf(keyOrRoot(path), "expected a mapping"))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			w.lines[k.Line] = key
			w.walk(v, t.Elem(), key)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			w.errs = append(w.errs, errorf(keyOrRoot(path), "expected a list"))
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${NAME} in a scalar. An unset variable becomes "" and is
// remembered: it is an error only where the field is used (an smtp password
// with no email receiver is not).
func (w *walker) expand(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := w.env(name)
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

// translate rewrites decoder errors ("line 7: cannot unmarshal ...") into
// errors naming the key on that line.
func (w *walker) translate(err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []error
	for _, m := range msgs {
		if g := lineRe.FindStringSubmatch(m); g != nil {
			line, _ := strconv.Atoi(g[1])
			if key, ok := w.lines[line]; ok {
				out = append(out, errorf(key, "%s", cleanTypeMsg(g[2])))
				continue
			}
		}
		out = append(out, &Error{Msg: m})
	}
	return errors.Join(out...)
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
