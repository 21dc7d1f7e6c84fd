package topics

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestBuiltin(t *testing.T) {
	t.Parallel()
	s := Builtin()
	for _, name := range BuiltinOrder() {
		if s[name] == nil {
			t.Fatalf("built-in topic %q missing", name)
		}
	}
	if len(s) != len(BuiltinOrder()) {
		t.Errorf("Builtin() has %d topics, want %d", len(s), len(BuiltinOrder()))
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// Builtin returns a fresh copy each time.
	s[Trade].Threshold = 99
	if Builtin()[Trade].Threshold == 99 {
		t.Error("Builtin() shares state between calls")
	}
}

// TestBuiltinYAMLUnderConfigKey checks that the printed rules decode, as
// they are, with the strict decoder the config loader uses.
func TestBuiltinYAMLUnderConfigKey(t *testing.T) {
	t.Parallel()
	b := BuiltinYAML()
	if !strings.Contains(string(b), "NEAR/") || !strings.HasPrefix(string(b), "#") {
		t.Error("BuiltinYAML should start with comments explaining the language")
	}
	indented := "topics:\n  " + strings.ReplaceAll(string(b), "\n", "\n  ")
	var cfg struct {
		Topics Set `yaml:"topics"`
	}
	dec := yaml.NewDecoder(strings.NewReader(indented))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Topics.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEffective(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/user.yaml")
	if err != nil {
		t.Fatal(err)
	}
	user, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	eff, err := Effective(user)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := eff[Defense]; ok {
		t.Error("disabled built-in still present")
	}
	if eff[RareEarths] == nil || eff["semiconductors"] == nil {
		t.Error("built-in or user topic missing")
	}
	if got := eff[Trade].Terms; len(got) != 2 || len(eff[Trade].Groups) != 0 {
		t.Errorf("trade not replaced: %v", eff[Trade])
	}
	if eff, err := Effective(nil); err != nil || len(eff) != 3 {
		t.Errorf("Effective(nil) = %d topics, %v", len(eff), err)
	}
}

// TestEffectiveBuiltinCrossReferences: disabling or replacing one built-in
// keeps the others valid; their groups that need the missing one go.
func TestEffectiveBuiltinCrossReferences(t *testing.T) {
	t.Parallel()
	for _, name := range BuiltinOrder() {
		for _, user := range []Set{
			{name: {Disabled: true}},
			{name: {Terms: []string{"x"}}},
		} {
			eff, err := Effective(user)
			if err != nil {
				t.Errorf("%s %+v: %v", name, user[name], err)
				continue
			}
			for tn, tp := range eff {
				for _, g := range tp.Groups {
					for _, r := range g.Requires {
						if rt, _, ok := strings.Cut(r, "."); ok && rt == name {
							t.Errorf("%s.%s still requires %s of the disabled or replaced topic", tn, g.Name, r)
						}
					}
				}
			}
		}
	}
	eff, err := Effective(Set{RareEarths: {Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range eff[Trade].Groups {
		if g.Name == "minerals_deals" {
			t.Errorf("trade.minerals_deals kept without rare_earths: %+v", g)
		}
	}
	// The built-ins themselves are not modified by pruning.
	if b := Builtin(); !slices.ContainsFunc(b[Trade].Groups, func(g Group) bool { return g.Name == "minerals_deals" }) {
		t.Error("Builtin lost trade.minerals_deals")
	}
}

func TestEffectiveCrossReferenceToDisabled(t *testing.T) {
	t.Parallel()
	user := Set{
		Defense: {Disabled: true},
		"x":     {Groups: []Group{{Terms: []string{"a"}, Requires: []string{"defense.military"}}}},
	}
	if _, err := Effective(user); err == nil || !strings.Contains(err.Error(), `topics.x.groups[0].requires[0]`) {
		t.Errorf("err = %v, want a requires error", err)
	}
	user[Defense] = nil
	delete(user, Defense)
	if _, err := Effective(user); err != nil {
		t.Errorf("reference to an enabled built-in: %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	ok := func() *Topic { return &Topic{Terms: []string{"x"}} }
	tests := []struct {
		name string
		set  Set
		want string
	}{
		{"empty term", Set{"defense": {Terms: []string{"a", "b", "c", " "}}}, "topics.defense.terms[3]: empty term"},
		{"bad name", Set{"Rare-Earths": ok()}, `topics.Rare-Earths: invalid topic name`},
		{"dot in name", Set{"a.b": ok()}, "invalid topic name"},
		{"nil topic", Set{"x": nil}, "topics.x: empty topic"},
		{"no terms", Set{"x": {Threshold: 2}}, "topics.x: empty topic"},
		{"negative threshold", Set{"x": {Threshold: -1, Terms: []string{"a"}}}, "topics.x.threshold"},
		{"huge weight", Set{"x": {Groups: []Group{{Weight: 1e9, Terms: []string{"a"}}}}}, "topics.x.groups[0].weight"},
		{"bad near", Set{"x": {Terms: []string{"a NEAR/0 b"}}}, "topics.x.terms[0]: term \"a NEAR/0 b\": bad NEAR/n"},
		{"near too far", Set{"x": {Terms: []string{"a NEAR/500 b"}}}, "bad NEAR/n"},
		{"near missing side", Set{"x": {Terms: []string{"NEAR/3 b"}}}, "needs a phrase on both sides"},
		{"star inside", Set{"x": {Terms: []string{"ab*cd"}}}, "'*' is allowed only"},
		{"punctuation only", Set{"x": {Terms: []string{"--"}}}, "no letter or digit"},
		{"unknown lang", Set{"x": {Groups: []Group{{Lang: []string{"xx"}, Terms: []string{"a"}}}}}, `topics.x.groups[0].lang[0]: unknown language "xx"`},
		{"unknown group ref", Set{"x": {Groups: []Group{{Requires: []string{"nope"}, Terms: []string{"a"}}}}}, `no group named "nope"`},
		{"unknown topic ref", Set{"x": {Groups: []Group{{Requires: []string{"nope.g"}, Terms: []string{"a"}}}}}, `no topic "nope"`},
		{"cycle", Set{"x": {Groups: []Group{
			{Name: "a", Requires: []string{"b"}, Terms: []string{"a"}},
			{Name: "b", Requires: []string{"a"}, Terms: []string{"b"}},
		}}}, "cycle"},
		{"bad scope", Set{"x": {Terms: []string{"a"}, Negatives: []Negative{{Scope: "all", Terms: []string{"b"}}}}}, "topics.x.negatives[0].scope"},
		{"only context", Set{"x": {Groups: []Group{{Context: true, Terms: []string{"a"}}}}}, "can never apply"},
		{"within without requires", Set{"x": {Groups: []Group{{Within: 3, Terms: []string{"a"}}}}}, "needs requires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.set.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("x:\n  terms: [a]\n  treshold: 2\n"))
	if err == nil || !strings.Contains(err.Error(), "treshold") {
		t.Errorf("err = %v, want unknown key named", err)
	}
}

func TestParseTerm(t *testing.T) {
	t.Parallel()
	term, err := ParseTerm("export|exports NEAR/3 ban|*curbs")
	if err != nil {
		t.Fatal(err)
	}
	if term.Near != 3 || len(term.A) != 2 || len(term.B) != 2 || !term.B[1].OpenLeft || term.B[1].Text != "curbs" {
		t.Errorf("ParseTerm = %+v", term)
	}
}
