// Package topics holds the topic rule language: the YAML schema, the
// built-in rules (embedded builtin.yaml), merging user topics over the
// built-ins, and validation. The classifier compiles a validated Set.
//
// # Rule language
//
// A topic is a set of term groups plus negative contexts and a threshold.
// Every term of a group that matches adds the group's weight to the topic's
// score once (a term found in the title adds TitleBoost times as much); the
// topic applies when the score reaches its threshold.
//
// A term is a phrase matched on normalised text (NFKC, case folded, accents
// removed from Latin letters, punctuation, hyphens and apostrophes read as
// spaces), so "Rare-earth" matches "rare earth" and "NATO's" matches "nato".
//
//   - Words match whole words; a trailing "s" or "es" is accepted, so
//     "tariff" matches "tariffs".
//   - A leading or trailing "*" drops the word boundary on that side:
//     "sanction*" matches "sanctioned", "*zölle" matches "Ausgleichszölle".
//   - A hyphen inside a term means "space or nothing": "anti-dumping"
//     matches "anti-dumping", "anti dumping" and "antidumping".
//   - Chinese and Japanese terms match as substrings (no word boundaries).
//   - "A NEAR/n B" matches when A and B occur within n words of each other
//     in either order, both in the title or both in the summary; A and B
//     may list alternatives with "|":
//     "export|exports NEAR/3 ban|curb|control". In Chinese and Japanese
//     each character counts as a word.
//
// A group may list Requires: other groups (of this topic, or "topic.group"
// of another) of which a surviving match must occur in the item, within
// Within words when Within > 0. That is how a weak term counts only near a
// strong one, and how a cross-topic rule ("export controls count for
// defense only with military framing") is written.
//
// A negative context cancels the positive matches it overlaps ("trade
// deadline" cancels "trade"), or, with Within > 0, those within Within
// words, or, with Scope "item", every match in the item. Groups limits which
// groups of the topic it cancels.
package topics

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed builtin.yaml
var builtinYAML []byte

// Names of the built-in topics, in their canonical output order.
const (
	RareEarths = "rare_earths"
	Defense    = "defense"
	Trade      = "trade"
)

// BuiltinOrder returns the built-in topic names in output order.
func BuiltinOrder() []string { return []string{RareEarths, Defense, Trade} }

// Defaults applied when a field is left out.
const (
	DefaultThreshold  = 1.0
	DefaultWeight     = 1.0
	DefaultTitleBoost = 1.5
	// MaxNear bounds NEAR/n and Within so a typo cannot make a window
	// larger than any news item.
	MaxNear = 200
	// MaxWeight bounds weights and thresholds to catch typos (3000 for 3).
	MaxWeight = 1000.0
)

// Set maps a topic name to its rules. It is decoded directly from the
// config key "topics:".
type Set map[string]*Topic

// Topic is one topic's rules.
type Topic struct {
	// Description is for people reading the rules.
	Description string `yaml:"description,omitempty"`
	// Disabled drops a built-in topic of the same name (user sets only).
	Disabled bool `yaml:"disabled,omitempty"`
	// Threshold is the score at which the topic applies (default 1).
	Threshold float64 `yaml:"threshold,omitempty"`
	// TitleBoost multiplies the weight of a term found in the title
	// (default 1.5): a headline is what an item is about.
	TitleBoost float64 `yaml:"title_boost,omitempty"`
	// Terms is a shorthand for one group of weight 1 in every language.
	Terms []string `yaml:"terms,omitempty"`
	// Groups are the weighted term groups.
	Groups []Group `yaml:"groups,omitempty"`
	// Negatives are contexts that cancel matches.
	Negatives []Negative `yaml:"negatives,omitempty"`
}

// Group is a list of terms sharing a weight, languages and conditions.
type Group struct {
	// Name lets other groups require this one; unique within the topic.
	Name string `yaml:"name,omitempty"`
	// Weight added per distinct matching term (default 1; may be negative
	// to penalise a term).
	Weight float64 `yaml:"weight,omitempty"`
	// Context marks a group that never scores itself: its matches only
	// serve as the context other groups require.
	Context bool `yaml:"context,omitempty"`
	// Max caps the group's total contribution (0 = no cap).
	Max float64 `yaml:"max,omitempty"`
	// Lang limits the group to items in these languages (ISO 639-1, e.g.
	// en, ja, zh, de, fr); empty = every language. Items of unknown
	// language use every group.
	Lang []string `yaml:"lang,omitempty"`
	// Requires names groups ("name" or "topic.name") one of which must
	// match too for this group's terms to count.
	Requires []string `yaml:"requires,omitempty"`
	// Within is the distance in words for Requires (0 = anywhere).
	Within int `yaml:"within,omitempty"`
	// Terms are the phrases.
	Terms []string `yaml:"terms"`
}

// Negative is a context that cancels positive matches.
type Negative struct {
	Name string `yaml:"name,omitempty"`
	// Lang as for Group.
	Lang []string `yaml:"lang,omitempty"`
	// Within cancels matches up to this many words away (0 = only the
	// matches the negative overlaps).
	Within int `yaml:"within,omitempty"`
	// Scope "item" cancels matches anywhere in the item; default "match".
	Scope string `yaml:"scope,omitempty"`
	// Groups limits the groups cancelled (default: all of the topic).
	Groups []string `yaml:"groups,omitempty"`
	// Terms are the phrases.
	Terms []string `yaml:"terms"`
}

// Scopes of a negative context.
const (
	ScopeMatch = "match"
	ScopeItem  = "item"
)

// BuiltinYAML returns the built-in rules as YAML with comments, ready to
// copy under "topics:" in a config and extend.
func BuiltinYAML() []byte { return slices.Clone(builtinYAML) }

// Builtin returns the built-in topics, freshly decoded so callers may
// modify the result. It panics only if the embedded file is broken, which
// TestBuiltin guards.
func Builtin() Set {
	s, err := Parse(builtinYAML)
	if err != nil {
		panic(fmt.Sprintf("topics: embedded builtin.yaml: %v", err))
	}
	return s
}

// Parse decodes and validates a YAML document holding a Set, rejecting
// unknown keys.
func Parse(b []byte) (Set, error) {
	var s Set
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("topics: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Effective merges user topics over the built-ins: a user topic with a new
// name is added, one with a built-in's name replaces it, and one with
// `disabled: true` removes it. The result is validated as a whole, because
// a user topic may require groups of a built-in one.
//
// The built-in topics refer to each other's groups (trade counts a minerals
// deal only next to rare_earths words). When a user disables or replaces a
// built-in, a built-in topic kept as it is drops its references to groups
// that are gone; a group left with none of its required groups can never
// be met and is dropped with them.
func Effective(user Set) (Set, error) {
	out := Builtin()
	for name, t := range user {
		if t != nil && t.Disabled {
			delete(out, name)
			continue
		}
		out[name] = t
	}
	for _, name := range BuiltinOrder() {
		if _, replaced := user[name]; replaced || out[name] == nil {
			continue
		}
		out[name].pruneRefs(out)
	}
	if err := user.validateTopics(); err != nil {
		return nil, err
	}
	if err := out.validateTopics(); err != nil {
		return nil, err
	}
	if err := out.validateRefs(true); err != nil {
		return nil, err
	}
	return out, nil
}

// pruneRefs drops cross-topic requires that name a group missing from s,
// and the groups (and their negatives' mentions) left unsatisfiable.
func (t *Topic) pruneRefs(s Set) {
	has := func(ref string) bool {
		tn, gn, cross := strings.Cut(ref, ".")
		if !cross {
			return true
		}
		rt := s[tn]
		return rt != nil && !rt.Disabled && slices.ContainsFunc(rt.Groups, func(g Group) bool { return g.Name == gn })
	}
	dropped := map[string]bool{}
	for changed := true; changed; {
		changed = false
		kept := t.Groups[:0]
		for _, g := range t.Groups {
			if len(g.Requires) > 0 {
				req := slices.DeleteFunc(slices.Clone(g.Requires), func(r string) bool { return !has(r) || dropped[r] })
				if len(req) == 0 {
					dropped[g.Name] = true
					changed = true
					continue
				}
				g.Requires = req
			}
			kept = append(kept, g)
		}
		t.Groups = kept
	}
	if len(dropped) == 0 {
		return
	}
	negs := t.Negatives[:0]
	for _, n := range t.Negatives {
		if len(n.Groups) > 0 {
			n.Groups = slices.DeleteFunc(n.Groups, func(g string) bool { return dropped[g] })
			if len(n.Groups) == 0 {
				continue // it limited itself to groups that are gone
			}
		}
		negs = append(negs, n)
	}
	t.Negatives = negs
}
