package topics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// iso639 lists the ISO 639-1 language codes accepted in `lang:`.
const iso639 = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy " +
	"da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz " +
	"ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt " +
	"lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu " +
	"rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts " +
	"tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"

// KnownLang reports whether code is an ISO 639-1 code (lower case).
func KnownLang(code string) bool {
	if len(code) != 2 {
		return false
	}
	for i := 0; i+2 <= len(iso639); i += 3 {
		if iso639[i:i+2] == code {
			return true
		}
	}
	return false
}

// ValidName reports whether name can be a topic name: it becomes a NATS
// subject token, so only [a-z0-9_] and at most 64 bytes.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Validate checks every topic. Errors name the key path below "topics",
// e.g. "topics.defense.terms[3]: empty term", so the config loader can
// report them as they are; several problems are joined.
func (s Set) Validate() error {
	if err := s.validateTopics(); err != nil {
		return err
	}
	return s.validateRefs(false)
}

func (s Set) names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// validateTopics checks each topic on its own.
func (s Set) validateTopics() error {
	var errs []error
	for _, name := range s.names() {
		path := "topics." + name
		if !ValidName(name) {
			errs = append(errs, fmt.Errorf("%s: invalid topic name %q: use only a-z, 0-9 and _ (it becomes a NATS subject token)", path, name))
			continue
		}
		errs = append(errs, s[name].validate(path)...)
	}
	return errors.Join(errs...)
}

func (t *Topic) validate(path string) []error {
	if t == nil {
		return []error{fmt.Errorf("%s: empty topic: give it terms or groups (or disabled: true)", path)}
	}
	if t.Disabled {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !finite(t.Threshold) || t.Threshold < 0 || t.Threshold > MaxWeight {
		add("%s.threshold: %v must be > 0 and <= %v (0 or unset = %v)", path, t.Threshold, MaxWeight, DefaultThreshold)
	}
	if !finite(t.TitleBoost) || t.TitleBoost < 0 || t.TitleBoost > 10 {
		add("%s.title_boost: %v must be between 0 and 10 (0 or unset = %v)", path, t.TitleBoost, DefaultTitleBoost)
	}
	if len(t.Terms) == 0 && len(t.Groups) == 0 {
		add("%s: empty topic: no terms and no groups", path)
	}
	errs = append(errs, validateTerms(path+".terms", t.Terms)...)
	names := map[string]bool{}
	positive := false
	for i, g := range t.Groups {
		gp := fmt.Sprintf("%s.groups[%d]", path, i)
		if g.Name != "" {
			if !ValidName(g.Name) {
				add("%s.name: invalid group name %q: use only a-z, 0-9 and _", gp, g.Name)
			} else if names[g.Name] {
				add("%s.name: duplicate group name %q", gp, g.Name)
			}
			names[g.Name] = true
		}
		if !finite(g.Weight) || math.Abs(g.Weight) > MaxWeight {
			add("%s.weight: %v must be between -%v and %v (0 or unset = %v)", gp, g.Weight, MaxWeight, MaxWeight, DefaultWeight)
		}
		if g.Weight >= 0 && !g.Context {
			positive = true
		}
		if !finite(g.Max) || g.Max < 0 || g.Max > MaxWeight {
			add("%s.max: %v must be between 0 and %v (0 = no cap)", gp, g.Max, MaxWeight)
		}
		errs = append(errs, validateLangs(gp+".lang", g.Lang)...)
		if g.Within < 0 || g.Within > MaxNear {
			add("%s.within: %d must be between 0 and %d", gp, g.Within, MaxNear)
		}
		if g.Within > 0 && len(g.Requires) == 0 {
			add("%s.within: needs requires", gp)
		}
		for j, r := range g.Requires {
			if r == "" {
				add("%s.requires[%d]: empty group reference", gp, j)
			}
		}
		if len(g.Terms) == 0 {
			add("%s.terms: no terms", gp)
		}
		errs = append(errs, validateTerms(gp+".terms", g.Terms)...)
	}
	if len(t.Groups) > 0 && !positive && len(t.Terms) == 0 {
		add("%s.groups: no group can add to the score (all are context or negative), so the topic can never apply", path)
	}
	for i, n := range t.Negatives {
		np := fmt.Sprintf("%s.negatives[%d]", path, i)
		errs = append(errs, validateLangs(np+".lang", n.Lang)...)
		if n.Within < 0 || n.Within > MaxNear {
			add("%s.within: %d must be between 0 and %d", np, n.Within, MaxNear)
		}
		switch n.Scope {
		case "", ScopeMatch, ScopeItem:
		default:
			add("%s.scope: %q must be %q or %q", np, n.Scope, ScopeMatch, ScopeItem)
		}
		for j, g := range n.Groups {
			if !names[g] {
				add("%s.groups[%d]: no group named %q in this topic", np, j, g)
			}
		}
		if len(n.Terms) == 0 {
			add("%s.terms: no terms", np)
		}
		errs = append(errs, validateTerms(np+".terms", n.Terms)...)
	}
	// Local references are checked here; cross-topic ones in validateRefs.
	for i, g := range t.Groups {
		for j, r := range g.Requires {
			if !strings.Contains(r, ".") && r != "" && !names[r] {
				add("%s.groups[%d].requires[%d]: no group named %q in this topic", path, i, j, r)
			}
		}
	}
	return errs
}

// validateRefs checks cross-topic Requires and that requirements form no
// cycle (the classifier evaluates required groups first). Unless strict, a
// reference to a built-in topic that is not in s is accepted: a user set
// is validated on its own before Effective merges it and checks strictly.
func (s Set) validateRefs(strict bool) error {
	var errs []error
	builtin := BuiltinOrder()
	type node struct{ topic, group string }
	deps := map[node][]node{}
	for _, name := range s.names() {
		t := s[name]
		if t == nil || t.Disabled {
			continue
		}
		for i, g := range t.Groups {
			for j, r := range g.Requires {
				tn, gn, cross := strings.Cut(r, ".")
				if !cross {
					tn, gn = name, r
				}
				ref := s[tn]
				if ref == nil || ref.Disabled {
					if cross && (strict || !slices.Contains(builtin, tn)) {
						errs = append(errs, fmt.Errorf("topics.%s.groups[%d].requires[%d]: no topic %q", name, i, j, tn))
					}
					continue
				}
				if !slices.ContainsFunc(ref.Groups, func(g Group) bool { return g.Name == gn }) {
					errs = append(errs, fmt.Errorf("topics.%s.groups[%d].requires[%d]: topic %q has no group %q", name, i, j, tn, gn))
					continue
				}
				if g.Name != "" {
					deps[node{name, g.Name}] = append(deps[node{name, g.Name}], node{tn, gn})
				} else {
					// An unnamed group cannot be required, so it cannot be
					// part of a cycle.
					continue
				}
			}
		}
	}
	// Depth-first search for a cycle, in a deterministic order.
	state := map[node]int{} // 1 visiting, 2 done
	var visit func(n node, trail []node) error
	visit = func(n node, trail []node) error {
		switch state[n] {
		case 1:
			parts := make([]string, 0, len(trail)+1)
			for _, t := range append(trail, n) {
				parts = append(parts, t.topic+"."+t.group)
			}
			return fmt.Errorf("topics.%s: requires form a cycle: %s", n.topic, strings.Join(parts, " -> "))
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range deps[n] {
			if err := visit(d, append(trail, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		return nil
	}
	keys := make([]node, 0, len(deps))
	for k := range deps {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b node) int { return strings.Compare(a.topic+"."+a.group, b.topic+"."+b.group) })
	for _, k := range keys {
		if err := visit(k, nil); err != nil {
			errs = append(errs, err)
			break
		}
	}
	return errors.Join(errs...)
}

func validateLangs(path string, langs []string) []error {
	var errs []error
	for i, l := range langs {
		if !KnownLang(l) {
			errs = append(errs, fmt.Errorf("%s[%d]: unknown language %q: use an ISO 639-1 code such as en, ja, zh, de, fr", path, i, l))
		}
	}
	return errs
}

func validateTerms(path string, terms []string) []error {
	var errs []error
	for i, t := range terms {
		if _, err := ParseTerm(t); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", path, i, err))
		}
	}
	return errs
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Term is a parsed term: alternatives A, and for "A NEAR/n B" the
// alternatives B and the distance Near (0 when there is no NEAR).
type Term struct {
	A, B []Phrase
	Near int
}

// Phrase is one literal alternative of a term, before normalisation.
type Phrase struct {
	Text string
	// OpenLeft and OpenRight drop the word boundary on that side ("*").
	OpenLeft, OpenRight bool
}

// MaxTermBytes bounds one term's length.
const MaxTermBytes = 200

// ParseTerm parses the term syntax described in the package comment.
func ParseTerm(s string) (Term, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Term{}, errors.New("empty term")
	}
	if len(s) > MaxTermBytes {
		return Term{}, fmt.Errorf("term %q is longer than %d bytes", s[:40]+"...", MaxTermBytes)
	}
	var t Term
	left, right, near := s, "", false
	if i := strings.Index(s, "NEAR/"); i >= 0 {
		near = true
		left = s[:i]
		rest := s[i+len("NEAR/"):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil || n < 1 || n > MaxNear || (j < len(rest) && rest[j] != ' ') {
			return Term{}, fmt.Errorf("term %q: bad NEAR/n: n must be a whole number from 1 to %d followed by a space", s, MaxNear)
		}
		t.Near = n
		right = rest[j:]
		if strings.Contains(right, "NEAR/") {
			return Term{}, fmt.Errorf("term %q: only one NEAR/n per term", s)
		}
		if strings.TrimSpace(left) == "" || strings.TrimSpace(right) == "" {
			return Term{}, fmt.Errorf("term %q: NEAR/%d needs a phrase on both sides", s, n)
		}
	}
	var err error
	if t.A, err = parseAlts(s, left); err != nil {
		return Term{}, err
	}
	if near {
		if t.B, err = parseAlts(s, right); err != nil {
			return Term{}, err
		}
	}
	return t, nil
}

func parseAlts(term, s string) ([]Phrase, error) {
	var out []Phrase
	for _, alt := range strings.Split(s, "|") {
		alt = strings.TrimSpace(alt)
		p := Phrase{}
		if strings.HasPrefix(alt, "*") {
			p.OpenLeft, alt = true, alt[1:]
		}
		if strings.HasSuffix(alt, "*") {
			p.OpenRight, alt = true, alt[:len(alt)-1]
		}
		if strings.Contains(alt, "*") {
			return nil, fmt.Errorf("term %q: '*' is allowed only at the start or end of a phrase", term)
		}
		if !strings.ContainsFunc(alt, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			if alt == "" {
				return nil, fmt.Errorf("term %q: empty phrase", term)
			}
			return nil, fmt.Errorf("term %q: phrase %q has no letter or digit", term, alt)
		}
		p.Text = alt
		out = append(out, p)
	}
	return out, nil
}
