// Package classifier decides which topics a news item is about. It
// normalises the text, finds every term of every topic in one pass with an
// Aho–Corasick automaton, and applies the rules of package topics
// (weights, languages, required context, proximity, negative contexts,
// thresholds). The NATS consumer lives in service.go; RunClassify is the
// offline `feedmon classify` command.
package classifier

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/feedmon/feedmon/internal/topics"
)

// Classifier is a compiled topic set. It is immutable after Compile and safe
// for concurrent use.
type Classifier struct {
	ac     *automaton
	pats   []patInfo
	uses   []use // pats[i].uses indexes this
	terms  []cTerm
	negs   []cNeg
	groups []cGroup
	topics []cTopic // in output order
	// groupOrder lists groups so that required groups come first;
	// reqOrder is its groups that require others.
	groupOrder []int32
	reqOrder   []int32
	// requiredBy[g] lists the groups that require group g.
	requiredBy [][]int32
	langBit    map[string]uint64
	pool       sync.Pool // *scratch
}

// patInfo describes one automaton pattern.
type patInfo struct {
	checkLeft, checkRight bool // word boundary required on that side
	plural                bool // accept a trailing "s"/"es" on the right
	toks                  int32
	wideFirst             bool
	uFirst, uN            int32 // uses[uFirst : uFirst+uN]
}

type useKind uint8

const (
	useA useKind = iota
	useB
	useNeg
	useSideA // an A side of a NEAR term, after pairing
)

// use says what a pattern occurrence means: side A or B of positive term
// idx, or negative idx.
type use struct {
	kind useKind
	idx  int32
	// Filled by Compile once every group and negative is known, so resolve
	// reads one record per use: the hit's group (-1 for a negative) and
	// topic, the language mask that must admit the item, the counts slot
	// and its limit, and whether the term is a NEAR term.
	near     bool
	limit    uint8
	slot     int32
	group    int32
	topic    int32
	langMask uint64
}

type cTerm struct {
	group int32
	near  int32 // 0: simple term
	text  string
}

type cNeg struct {
	topic    int32
	within   int32
	item     bool
	groups   []int32 // global group ids cancelled; nil = all of the topic
	langMask uint64
	name     string
	text     string
}

type cGroup struct {
	topic    int32
	name     string
	weight   float64 // 0 for a context group
	max      float64
	langMask uint64 // 0 = every language
	requires []int32
	within   int32
}

type cTopic struct {
	name       string
	threshold  float64
	titleBoost float64
	groups     []int32
}

// TopicOrder returns names in feedmon's stable output order: the
// built-in topics rare_earths, defense, trade first, then the others by name.
func TopicOrder(names []string) []string {
	out := make([]string, 0, len(names))
	for _, b := range topics.BuiltinOrder() {
		if slices.Contains(names, b) {
			out = append(out, b)
		}
	}
	rest := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.Contains(topics.BuiltinOrder(), n) && !slices.Contains(rest, n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// Compile compiles an effective topic set (the result of topics.Effective).
// Disabled topics are skipped.
func Compile(set topics.Set) (*Classifier, error) {
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	c := &Classifier{langBit: map[string]uint64{}}
	names := make([]string, 0, len(set))
	for n, t := range set {
		if t != nil && !t.Disabled {
			names = append(names, n)
		}
	}
	names = TopicOrder(names)

	type gkey struct{ topic, group string }
	gid := map[gkey]int32{}
	var patterns []string
	patID := map[string]int32{}
	var patUses [][]use
	addPhrase := func(p topics.Phrase, u use) {
		for _, v := range variants(p.Text) {
			key := fmt.Sprintf("%t%t%s", p.OpenLeft, p.OpenRight, v)
			id, ok := patID[key]
			if !ok {
				id = int32(len(patterns))
				patID[key] = id
				patterns = append(patterns, v)
				patUses = append(patUses, nil)
				c.pats = append(c.pats, newPatInfo(v, p))
			}
			if !slices.Contains(patUses[id], u) {
				patUses[id] = append(patUses[id], u)
			}
		}
	}
	addTerm := func(raw string, group int32) error {
		t, err := topics.ParseTerm(raw)
		if err != nil {
			return err
		}
		idx := int32(len(c.terms))
		c.terms = append(c.terms, cTerm{group: group, near: int32(t.Near), text: strings.TrimSpace(raw)})
		for _, p := range t.A {
			addPhrase(p, use{kind: useA, idx: idx})
		}
		for _, p := range t.B {
			addPhrase(p, use{kind: useB, idx: idx})
		}
		return nil
	}

	// Groups first (all topics), so requires can refer across topics.
	for ti, name := range names {
		t := set[name]
		ct := cTopic{name: name, threshold: or(t.Threshold, topics.DefaultThreshold), titleBoost: or(t.TitleBoost, topics.DefaultTitleBoost)}
		groups := t.Groups
		if len(t.Terms) > 0 {
			groups = append([]topics.Group{{Terms: t.Terms}}, groups...)
		}
		for _, g := range groups {
			id := int32(len(c.groups))
			if g.Name != "" {
				gid[gkey{name, g.Name}] = id
			}
			w := or(g.Weight, topics.DefaultWeight)
			if g.Context {
				w = 0
			}
			c.groups = append(c.groups, cGroup{
				topic: int32(ti), name: g.Name, weight: w,
				max: g.Max, langMask: c.mask(g.Lang), within: int32(g.Within),
			})
			ct.groups = append(ct.groups, id)
		}
		c.topics = append(c.topics, ct)
	}
	for ti, name := range names {
		t := set[name]
		groups := t.Groups
		if len(t.Terms) > 0 {
			groups = append([]topics.Group{{Terms: t.Terms}}, groups...)
		}
		for gi, g := range groups {
			id := c.topics[ti].groups[gi]
			for _, r := range g.Requires {
				tn, gn, cross := strings.Cut(r, ".")
				if !cross {
					tn, gn = name, r
				}
				rid, ok := gid[gkey{tn, gn}]
				if !ok {
					return nil, fmt.Errorf("classifier: topics.%s: required group %q is not in the set (disabled?)", name, r)
				}
				c.groups[id].requires = append(c.groups[id].requires, rid)
			}
			for _, term := range g.Terms {
				if err := addTerm(term, id); err != nil {
					return nil, fmt.Errorf("classifier: topics.%s: %w", name, err)
				}
			}
		}
		for _, n := range t.Negatives {
			var gs []int32
			for _, g := range n.Groups {
				gs = append(gs, gid[gkey{name, g}])
			}
			for _, raw := range n.Terms {
				pt, err := topics.ParseTerm(raw)
				if err != nil {
					return nil, fmt.Errorf("classifier: topics.%s: %w", name, err)
				}
				if pt.Near > 0 {
					return nil, fmt.Errorf("classifier: topics.%s: negative %q: NEAR is not supported in negatives", name, raw)
				}
				idx := int32(len(c.negs))
				c.negs = append(c.negs, cNeg{
					topic: int32(ti), within: int32(n.Within), item: n.Scope == topics.ScopeItem,
					groups: gs, langMask: c.mask(n.Lang), name: n.Name, text: strings.TrimSpace(raw),
				})
				for _, p := range pt.A {
					addPhrase(p, use{kind: useNeg, idx: idx})
				}
			}
		}
	}
	if len(c.langBit) > 64 {
		return nil, fmt.Errorf("classifier: rules use %d languages, at most 64 are supported", len(c.langBit))
	}
	order, err := c.topoGroups()
	if err != nil {
		return nil, err
	}
	c.groupOrder = order
	c.requiredBy = make([][]int32, len(c.groups))
	for _, g := range order {
		if len(c.groups[g].requires) > 0 {
			c.reqOrder = append(c.reqOrder, g)
		}
		for _, r := range c.groups[g].requires {
			c.requiredBy[r] = append(c.requiredBy[r], g)
		}
	}
	for i, u := range patUses {
		c.pats[i].uFirst, c.pats[i].uN = int32(len(c.uses)), int32(len(u))
		c.uses = append(c.uses, u...)
	}
	for i := range c.uses {
		u := &c.uses[i]
		if u.kind == useNeg {
			n := &c.negs[u.idx]
			u.slot, u.limit = u.idx+int32(len(c.terms)), maxHitsPerNeg
			u.group, u.topic, u.langMask = -1, n.topic, n.langMask
		} else {
			t := &c.terms[u.idx]
			g := &c.groups[t.group]
			u.slot, u.limit = u.idx, maxHitsPerTerm
			u.group, u.topic, u.langMask = t.group, g.topic, g.langMask
			u.near = t.near > 0
		}
	}
	c.ac = buildAutomaton(patterns)
	c.pool.New = func() any { return &scratch{} }
	return c, nil
}

func or(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

func (c *Classifier) mask(langs []string) uint64 {
	var m uint64
	for _, l := range langs {
		b, ok := c.langBit[l]
		if !ok {
			b = 1 << (len(c.langBit) % 64)
			c.langBit[l] = b
		}
		m |= b
	}
	return m
}

// itemMask is the language bit of an item; all bits when unknown, so that
// every group applies.
func (c *Classifier) itemMask(lang string) uint64 {
	lang = strings.ToLower(lang)
	if i := strings.IndexAny(lang, "-_"); i >= 0 {
		lang = lang[:i]
	}
	if lang == "" {
		return math.MaxUint64
	}
	return c.langBit[lang] // 0 for a language no rule names
}

// topoGroups orders groups so that every group comes after those it
// requires.
func (c *Classifier) topoGroups() ([]int32, error) {
	state := make([]uint8, len(c.groups))
	order := make([]int32, 0, len(c.groups))
	var visit func(g int32) error
	visit = func(g int32) error {
		switch state[g] {
		case 1:
			return fmt.Errorf("classifier: topics.%s: requires form a cycle", c.topics[c.groups[g].topic].name)
		case 2:
			return nil
		}
		state[g] = 1
		for _, r := range c.groups[g].requires {
			if err := visit(r); err != nil {
				return err
			}
		}
		state[g] = 2
		order = append(order, g)
		return nil
	}
	for g := range c.groups {
		if err := visit(int32(g)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// variants expands a phrase: a hyphen between letters means "space or
// nothing", so "anti-dumping" also finds "antidumping". Normalisation
// already reads the hyphen as a space. Returned forms are normalised and
// distinct.
func variants(p string) []string {
	base := normalize(p)
	out := []string{base}
	if !strings.Contains(p, "-") {
		return out
	}
	parts := strings.Split(p, "-")
	if len(parts) > 5 {
		// Too many combinations: only the fully joined form in addition.
		if j := normalize(strings.Join(parts, "")); j != base {
			out = append(out, j)
		}
		return out
	}
	for mask := 1; mask < 1<<(len(parts)-1); mask++ {
		var b strings.Builder
		b.WriteString(parts[0])
		for i := 1; i < len(parts); i++ {
			if mask&(1<<(i-1)) == 0 {
				b.WriteByte(' ')
			}
			b.WriteString(parts[i])
		}
		if v := normalize(b.String()); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func newPatInfo(v string, p topics.Phrase) patInfo {
	pi := patInfo{}
	first, last := v[0], v[len(v)-1]
	pi.wideFirst = wideLead(first)
	// A side needs a word boundary unless "*" opens it or the character
	// there is CJK, which is matched as a substring.
	pi.checkLeft = !p.OpenLeft && !pi.wideFirst
	lastWide := false
	for i := len(v) - 1; i >= 0 && i >= len(v)-4; i-- {
		if v[i] >= 0xC0 {
			lastWide = wideLead(v[i])
			break
		}
		if v[i] < 0x80 {
			break
		}
	}
	pi.checkRight = !p.OpenRight && !lastWide
	pi.plural = pi.checkRight && last >= 'a' && last <= 'z'
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' || wideLead(v[i]) {
			pi.toks++
		}
	}
	return pi
}
