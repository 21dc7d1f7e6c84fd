package classifier

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/testkit"
	"github.com/feedmon/feedmon/internal/topics"
)

func builtin(t testing.TB) *Classifier {
	t.Helper()
	set, err := topics.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type fixture struct {
	Name    string   `json:"name"`
	Lang    string   `json:"lang"`
	Title   string   `json:"title"`
	Summary string   `json:"summary"`
	Topics  []string `json:"topics"`
}

func loadFixtures(t testing.TB, path string) []fixture {
	t.Helper()
	return testkit.ReadJSONL[fixture](t, path)
}

// builtinFixtures are the table-test files for the built-in topics.
//   - cases.jsonl: the guide's cases: the reference example, every "does
//     not count" case in English, the "where topics meet" table and
//     positives and negatives in ja, zh, de and fr. It is also the
//     benchmark corpus, so keep it stable.
//   - kinds.jsonl: kinds of items the first rules missed (duties without
//     "tariff", export and import bans, chip licences, blacklists, sanctions
//     on goods, port fees and chokepoints, naval escorts, arms exports,
//     minerals deals and licensing, summits, coast-guard clashes, coercion
//     at sea, boarding tankers, passing mentions), each with positives in
//     several languages and near-miss negatives.
var builtinFixtures = []string{"testdata/cases.jsonl", "testdata/kinds.jsonl"}

// TestBuiltinCases runs every fixture of builtinFixtures.
func TestBuiltinCases(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	var all []fixture
	for _, f := range builtinFixtures {
		all = append(all, loadFixtures(t, f)...)
	}
	seen := map[string]bool{}
	for _, fx := range all {
		if seen[fx.Name] {
			t.Errorf("duplicate fixture name %q", fx.Name)
		}
		seen[fx.Name] = true
		t.Run(fx.Name, func(t *testing.T) {
			t.Parallel()
			res := c.ClassifyExplain(fx.Title, htmltext.ToText(fx.Summary), fx.Lang)
			want := fx.Topics
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(res.Topics, want) {
				ex, _ := json.Marshal(res.Explain)
				t.Errorf("topics = %v, want %v\nexplain: %s", res.Topics, want, ex)
			}
		})
	}
}

func TestMatchesAsTheyAppear(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	res := c.Classify("NATO's eastern flank gets new Rare-Earth magnet plant", "Tariffs on Chinese steel rise; the alliance's troops drill.", "en")
	if !slices.Contains(res.Matches["defense"], "NATO") {
		t.Errorf("defense matches = %q, want NATO", res.Matches["defense"])
	}
	if !slices.Contains(res.Matches["rare_earths"], "Rare-Earth") {
		t.Errorf("rare_earths matches = %q, want Rare-Earth", res.Matches["rare_earths"])
	}
	if !slices.Contains(res.Matches["trade"], "Tariffs") {
		t.Errorf("trade matches = %q, want Tariffs", res.Matches["trade"])
	}
	for topic, ms := range res.Matches {
		if len(ms) > MaxMatches {
			t.Errorf("%s: %d matches", topic, len(ms))
		}
	}
	if res.Scores["defense"] <= 0 {
		t.Errorf("scores = %v", res.Scores)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Rare-Earth", "rare earth"},
		{"NATO’s", "nato s"},
		{"Défense Zölle Straße", "defense zolle strasse"},
		{"ＦＵＬＬ　ｗｉｄｔｈ １２３", "full width 123"},
		{"ﬁnance", "finance"},
		{"ｶﾞｽ", "ガス"},
		{"稀土、出口。", "稀土 出口"},
		{"  --a--  ", "a"},
		{"e\u0301te\u0301", "ete"},
		{"İstanbul", "istanbul"},
	}
	for _, tt := range tests {
		if got := normalize(tt.in); got != tt.want {
			t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRuleLanguage exercises each feature of the rule language with a
// small user topic set.
func TestRuleLanguage(t *testing.T) {
	t.Parallel()
	set := topics.Set{
		"chips": {
			Threshold: 2,
			Groups: []topics.Group{
				{Name: "strong", Weight: 2, Terms: []string{"semiconductor", "*halbleiter*", "anti-dumping", "半導体"}},
				{Name: "near", Weight: 2, Terms: []string{"chip|chips NEAR/3 export|exports"}},
				{Name: "weak", Weight: 1, Requires: []string{"strong"}, Within: 5, Terms: []string{"wafer"}},
				{Name: "ctx", Context: true, Terms: []string{"factory"}},
				{Name: "needs_ctx", Weight: 2, Requires: []string{"ctx"}, Terms: []string{"fab"}},
				{Name: "french", Weight: 2, Lang: []string{"fr"}, Terms: []string{"puce"}},
				{Name: "cross", Weight: 2, Requires: []string{"trade.core", "trade.tariff"}, Terms: []string{"lithography"}},
			},
			Negatives: []topics.Negative{
				{Terms: []string{"semiconductor stocks"}},
				{Scope: topics.ScopeItem, Groups: []string{"near"}, Terms: []string{"potato"}},
				{Within: 2, Groups: []string{"needs_ctx"}, Terms: []string{"music"}},
			},
		},
	}
	eff, err := topics.Effective(set)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(eff)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, title, summary, lang string
		want                       bool
	}{
		{"word", "New semiconductor plant", "", "en", true},
		{"plural", "", "Semiconductors are scarce.", "en", true},
		{"no partial word", "", "Semiconductorish things.", "en", false},
		{"open both ends", "", "Die Halbleiterindustrie wächst.", "de", true},
		{"hyphen variants", "", "New antidumping case.", "en", true},
		{"hyphen as space", "", "New anti dumping case.", "en", true},
		{"cjk substring", "", "日本の半導体産業", "ja", true},
		{"near within", "", "Chips face new exports rules.", "en", true},
		{"near reversed", "", "Exports of advanced chips fall.", "en", true},
		{"near too far", "", "Chips are great and many other words later exports.", "en", false},
		{"near not across title and summary", "New chips", "Exports rise.", "en", false},
		{"near within title", "Chips exports", "Rise.", "en", true},
		{"item negative cancels near", "", "Chips exports up, potato farmers say.", "en", false},
		{"overlap negative", "", "Semiconductor stocks rallied.", "en", false},
		{"requires met", "", "A semiconductor wafer line.", "en", true},
		{"requires unmet alone", "", "A wafer line and a wafer cutter.", "en", false},
		{"context only", "", "The factory is near.", "en", false},
		{"context enables", "", "The factory opens a fab.", "en", true},
		{"within negative", "", "The factory hosts a fab music night.", "en", false},
		{"lang restricted", "", "Une puce.", "fr", true},
		{"lang restricted other", "", "Une puce.", "en", false},
		{"lang unknown uses all", "", "Une puce.", "", true},
		{"cross-topic requires", "", "Lithography tools face new tariffs.", "en", true},
		{"cross-topic requires unmet", "", "Lithography tools are expensive.", "en", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := c.ClassifyExplain(tt.title, tt.summary, tt.lang)
			got := slices.Contains(res.Topics, "chips")
			if got != tt.want {
				ex, _ := json.Marshal(res.Explain)
				t.Errorf("chips = %v, want %v; explain %s", got, tt.want, ex)
			}
		})
	}
}

func TestTopicOrder(t *testing.T) {
	t.Parallel()
	got := TopicOrder([]string{"zeta", "trade", "alpha", "rare_earths", "defense"})
	want := []string{"rare_earths", "defense", "trade", "alpha", "zeta"}
	if !slices.Equal(got, want) {
		t.Errorf("TopicOrder = %v, want %v", got, want)
	}
	c := builtin(t)
	res := c.Classify("EU and Japan agree to jointly mine rare earths abroad",
		"They will counter economic coercion and open a defense-industry dialogue.", "en")
	if !slices.Equal(res.Topics, []string{"rare_earths", "defense", "trade"}) {
		t.Errorf("Topics = %v", res.Topics)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	res := c.ClassifyExplain("Mavericks add a rim protector before the trade deadline to fix their defense", "", "en")
	if len(res.Topics) != 0 {
		t.Fatalf("Topics = %v", res.Topics)
	}
	var cancelled []string
	for _, e := range res.Explain {
		for _, ct := range e.Cancelled {
			cancelled = append(cancelled, e.Topic+":"+ct.Text+"/"+ct.NegText)
		}
	}
	if !slices.Contains(cancelled, "trade:trade/trade deadline") {
		t.Errorf("cancelled = %v, want trade cancelled by 'trade deadline'", cancelled)
	}
	if c.Classify("x", "y", "en").Explain != nil {
		t.Error("Classify filled Explain")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	fx := loadFixtures(t, "testdata/cases.jsonl")
	want := make([][]string, len(fx))
	for i, f := range fx {
		want[i] = c.Classify(f.Title, htmltext.ToText(f.Summary), f.Lang).Topics
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range fx {
				i := (k + g*7) % len(fx)
				got := c.Classify(fx[i].Title, htmltext.ToText(fx[i].Summary), fx[i].Lang).Topics
				if !slices.Equal(got, want[i]) {
					t.Errorf("%s: concurrent result %v, want %v", fx[i].Name, got, want[i])
				}
			}
		}()
	}
	wg.Wait()
}

func TestNewRejectsInvalid(t *testing.T) {
	t.Parallel()
	_, err := Compile(topics.Set{"x": {Terms: []string{""}}})
	if err == nil || !strings.HasPrefix(err.Error(), "classifier: ") {
		t.Errorf("err = %v", err)
	}
}

// TestNearSidesPastLimit: a NEAR term whose sides occur more often than
// maxHitsPerTerm, as the last matches of the item. The sides past the
// limit are not kept, and must not be taken for other hits.
func TestNearSidesPastLimit(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	summary := "NATO troops drilled. " + strings.Repeat("export controls ", 3*maxHitsPerTerm)
	for _, explain := range []bool{false, true} {
		res := c.classify("Allies meet", summary, "en", explain)
		if !slices.Equal(res.Topics, []string{"defense", "trade"}) {
			t.Errorf("explain=%v: topics %v, want [defense trade]", explain, res.Topics)
		}
	}
}
