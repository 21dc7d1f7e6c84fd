package classifier

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naiveScan is the reference matcher: every occurrence of every pattern,
// found by brute force, ordered like automaton.scan (by end, then id).
func naiveScan(patterns []string, text []byte) []rawHit {
	var out []rawHit
	for id, p := range patterns {
		if p == "" {
			continue
		}
		for i := 0; i+len(p) <= len(text); i++ {
			if string(text[i:i+len(p)]) == p {
				out = append(out, rawHit{id: int32(id), end: int32(i + len(p))})
			}
		}
	}
	slices.SortFunc(out, func(a, b rawHit) int {
		if a.end != b.end {
			return int(a.end - b.end)
		}
		return int(a.id - b.id)
	})
	return out
}

func scanSorted(a *automaton, text []byte) []rawHit {
	hits := a.scan(text, nil)
	for i := range hits {
		hits[i].tok = 0
	}
	slices.SortFunc(hits, func(a, b rawHit) int {
		if a.end != b.end {
			return int(a.end - b.end)
		}
		return int(a.id - b.id)
	})
	return hits
}

func TestAutomatonMatchesNaive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		text     string
	}{
		{[]string{"he", "she", "his", "hers"}, "ushers and his hershe"},
		{[]string{"a", "aa", "aaa"}, "aaaaa"},
		{[]string{"rare earth", "earth", "art"}, "rare earth day earthart"},
		{[]string{"稀土", "土", "出口管制"}, "稀土出口管制稀土"},
		{[]string{"", "x"}, "xx"},
		{[]string{"abc"}, ""},
	}
	for _, tt := range tests {
		a := buildAutomaton(tt.patterns)
		got, want := scanSorted(a, []byte(tt.text)), naiveScan(tt.patterns, []byte(tt.text))
		if !slices.Equal(got, want) {
			t.Errorf("patterns %q text %q: got %v, want %v", tt.patterns, tt.text, got, want)
		}
	}
}

// TestAutomatonDeep forces sparse (non-dense) states and long failure
// chains.
func TestAutomatonDeep(t *testing.T) {
	t.Parallel()
	pats := []string{strings.Repeat("ab", 20), strings.Repeat("ab", 7) + "c", "babab", "bc"}
	text := []byte(strings.Repeat("ab", 30) + "c" + strings.Repeat("ab", 8) + "c")
	if got, want := scanSorted(buildAutomaton(pats), text), naiveScan(pats, text); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzAutomaton checks the automaton against the naive matcher on
// arbitrary patterns (split from one fuzz string) and text. It runs its
// seed corpus as a normal test.
func FuzzAutomaton(f *testing.F) {
	f.Add("he|she|his|hers", "ushers")
	f.Add("a|aa|aaa|b", "aaabaaa")
	f.Add("rare earth|earth|稀土|土", "rare earth 稀土 earthy")
	f.Add("abab|bab|ba", "abababab")
	f.Add("\xff|\x00\x01", "\xff\x00\x01\xff")
	f.Fuzz(func(t *testing.T, pats, text string) {
		patterns := strings.Split(pats, "|")
		if len(patterns) > 64 {
			patterns = patterns[:64]
		}
		a := buildAutomaton(patterns)
		got, want := scanSorted(a, []byte(text)), naiveScan(patterns, []byte(text))
		if !slices.Equal(got, want) {
			t.Fatalf("patterns %q text %q:\n got  %v\n want %v", patterns, text, got, want)
		}
	})
}

// FuzzClassify checks that classification never panics, whatever the
// text, and that its output is well formed.
func FuzzClassify(f *testing.F) {
	c := builtin(f)
	f.Add("EU and Japan agree to jointly mine rare earths", "<p>defense &amp; tariffs</p>", "en")
	f.Add("稀土出口管制", "商务部", "zh")
	f.Add("ｶﾞ\u3099e\u0301", "\xff\xfe", "")
	f.Add("NATO's", "trade-deadline", "en-US")
	f.Fuzz(func(t *testing.T, title, summary, lang string) {
		res := c.ClassifyExplain(title, summary, lang)
		if res.Topics == nil {
			t.Fatal("nil Topics")
		}
		for _, tp := range res.Topics {
			if len(res.Matches[tp]) > MaxMatches {
				t.Fatalf("too many matches for %s", tp)
			}
			if _, ok := res.Scores[tp]; !ok {
				t.Fatalf("no score for %s", tp)
			}
		}
	})
}

// TestAutomatonSparse runs the matcher with a dense-row budget so small
// that most states are sparse, so the scan leaves and re-enters the dense
// rows, and ends texts in sparse states.
func TestAutomatonSparse(t *testing.T) {
	t.Parallel()
	pats := []string{strings.Repeat("ab", 20), strings.Repeat("ab", 7) + "c", "babab", "bc", "rare earth", "earth", "稀土", "出口管制", "a"}
	texts := []string{
		strings.Repeat("ab", 30) + "c" + strings.Repeat("ab", 8) + "c",
		"rare earth 稀土出口管制 babab",
		"abababab",
		"rare eart",
		"",
	}
	for _, budget := range []int{0, 4, 16, 64, 1 << 20} {
		a := buildAutomatonBudget(pats, budget)
		for _, text := range texts {
			if got, want := scanSorted(a, []byte(text)), naiveScan(pats, []byte(text)); !slices.Equal(got, want) {
				t.Errorf("budget %d (%d dense of %d states) text %q:\n got  %v\n want %v", budget, a.nDense, len(a.states), text, got, want)
			}
		}
	}
}

// TestNormalizeExpanding: runes whose normal form is longer than they are
// (㍿ is four CJK characters) before and after ASCII runs.
func TestNormalizeExpanding(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("㍿", 50) + " rare earth " + strings.Repeat("ﬃ㍿", 40) + " tariffs"
	got := normalize(in)
	want := strings.Repeat("株式会社", 50) + " rare earth " + strings.Repeat("ffi株式会社", 40) + " tariffs"
	if got != want {
		t.Errorf("normalize = %q, want %q", got, want)
	}
}

// TestScanSplit checks the two-halves scan (texts of splitMin bytes or
// more) against the naive matcher and the sequential scan, tokens
// included, on small alphabets where states deeper than splitBack at the
// split are common.
func TestScanSplit(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		alpha := "ab "
		if iter%3 == 0 {
			alpha = "ab\xe7"
		}
		var pats []string
		for range 1 + r.IntN(8) {
			p := make([]byte, 1+r.IntN(14))
			for i := range p {
				p[i] = alpha[r.IntN(len(alpha))]
			}
			pats = append(pats, string(p))
		}
		a := buildAutomaton(pats)
		text := make([]byte, splitMin-8+r.IntN(150))
		for i := range text {
			text[i] = alpha[r.IntN(len(alpha))]
		}
		seq := a.scanFrom(text, 0, 0, nil)
		countTokens(text, seq)
		got, _ := a.scanBuf(text, nil, nil)
		if !slices.Equal(got, seq) {
			t.Fatalf("patterns %q, text %q: split scan %v, sequential %v", pats, text, got, seq)
		}
		if got, want := scanSorted(a, text), naiveScan(pats, text); !slices.Equal(got, want) {
			t.Fatalf("patterns %q, text %q: %v, naive %v", pats, text, got, want)
		}
	}
}

func TestTokensIn(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			switch r.IntN(4) {
			case 0:
				b[i] = ' '
			case 1:
				b[i] = byte(0xC0 + r.IntN(64))
			default:
				b[i] = byte(r.IntN(256))
			}
		}
		want := uint32(0)
		for _, c := range b {
			if c == ' ' || c >= 0xE0 {
				want++
			}
		}
		if got := tokensIn(b); got != want {
			t.Fatalf("%x: %d, want %d", b, got, want)
		}
	}
}
