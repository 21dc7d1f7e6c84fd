package story

import (
	"os"
	"sort"
	"testing"
)

// TestMargins logs, for a labelled file, the lowest similarity of a gold
// pair and the highest of a wrong pair: how much room Threshold has.
// Skipped unless FEEDMON_STORY_GOLD is set.
func TestMargins(t *testing.T) {
	goldPath := os.Getenv("FEEDMON_STORY_GOLD")
	if goldPath == "" {
		t.Skip("FEEDMON_STORY_GOLD not set")
	}
	fx := readJSONL(t, goldPath)
	type pair struct {
		a, b string
		sim  float64
		same bool
	}
	var ps []pair
	sigs := make([]signature, len(fx))
	for i, f := range fx {
		sigs[i] = sign(f.Title, f.Summary, f.Lang, nil)
	}
	for i := range fx {
		for j := i + 1; j < len(fx); j++ {
			ps = append(ps, pair{fx[i].ID, fx[j].ID, similarity(sigs[i].toks, sigs[j].toks), fx[i].Group != "" && fx[i].Group == fx[j].Group})
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].sim > ps[j].sim })
	for _, p := range ps[:min(len(ps), 30)] {
		t.Logf("%.3f %v %s %s", p.sim, p.same, p.a, p.b)
	}
}
