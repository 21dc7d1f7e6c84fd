package story

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestAnchorsFile prints the anchors of every item of a labelled file:
//
//	FEEDMON_STORY_ANCHORS=$PWD/internal/story/testdata/hard_tune.jsonl go test -run TestAnchorsFile -v ./internal/story/
//
// Skipped unless FEEDMON_STORY_ANCHORS is set.
func TestAnchorsFile(t *testing.T) {
	path := os.Getenv("FEEDMON_STORY_ANCHORS")
	if path == "" {
		t.Skip("FEEDMON_STORY_ANCHORS not set")
	}
	for _, f := range readJSONL(t, path) {
		a := extractAnchors(f.Title, f.Summary, f.Lang, nil)
		t.Logf("%s %s", f.ID, a.String())
	}
}

// TestPairsFile prints, for a labelled file, every pair grouped wrongly
// or missed, with its score and what matched or kept it apart:
//
//	FEEDMON_STORY_PAIRS=$PWD/internal/story/testdata/hard_tune.jsonl go test -run TestPairsFile -v ./internal/story/
//
// Skipped unless FEEDMON_STORY_PAIRS is set.
func TestPairsFile(t *testing.T) {
	path := os.Getenv("FEEDMON_STORY_PAIRS")
	if path == "" {
		t.Skip("FEEDMON_STORY_PAIRS not set")
	}
	fx := readJSONL(t, path)
	gold := map[string]string{}
	for _, f := range fx {
		gold[f.ID] = f.Group
	}
	x := New(Options{})
	pred := assignAll(t, fx, Options{})
	for _, f := range fx {
		x.Assign(Doc{ID: f.ID, Title: f.Title, Text: f.Summary, Lang: f.Lang})
	}
	s := scorePairs(gold, pred)
	byID := map[string]fixture{}
	for _, f := range fx {
		byID[f.ID] = f
	}
	show := func(kind string, pairs []string) {
		for _, p := range pairs {
			ids := strings.SplitN(p, "+", 2)
			a, b := byID[ids[0]], byID[ids[1]]
			da := Doc{Title: a.Title, Text: a.Summary, Lang: a.Lang}
			db := Doc{Title: b.Title, Text: b.Summary, Lang: b.Lang}
			sa, sb := signDoc(da, nil), signDoc(db, nil)
			x.mu.Lock()
			sc := x.scoreLocked(sa.toks, sb.toks, &sa.anc, &sb.anc, true)
			x.mu.Unlock()
			sim, g := sc.sim, sc.g
			t.Logf("%s %s sim %.3f bonus %.3f kept %d: %s", kind, p, sim, g.bonus(), g.kept, g.detail)
		}
	}
	show("FP", s.Merged)
	show("FN", s.Missed)
	if os.Getenv("FEEDMON_STORY_ALLPAIRS") == "" {
		return
	}
	var all []string
	for i, a := range fx {
		for _, b := range fx[i+1:] {
			if a.Lang != b.Lang {
				continue
			}
			kind := "neg"
			if a.Group != "" && a.Group == b.Group {
				kind = "POS"
			}
			all = append(all, kind+" "+a.ID+"+"+b.ID)
		}
	}
	var lines []string
	for _, p := range all {
		kind, pair, _ := strings.Cut(p, " ")
		ids := strings.SplitN(pair, "+", 2)
		a, b := byID[ids[0]], byID[ids[1]]
		sa := signDoc(Doc{Title: a.Title, Text: a.Summary, Lang: a.Lang}, nil)
		sb := signDoc(Doc{Title: b.Title, Text: b.Summary, Lang: b.Lang}, nil)
		x.mu.Lock()
		sc := x.scoreLocked(sa.toks, sb.toks, &sa.anc, &sb.anc, true)
		x.mu.Unlock()
		sim, g := sc.sim, sc.g
		if sim >= 0.12 || kind == "POS" {
			lines = append(lines, fmt.Sprintf("%.3f %s %s bonus %.2f: %s", sim, kind, pair, g.bonus(), g.detail))
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		t.Log(l)
	}
}
