package story

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/testkit"
)

// pairScore is the pairwise quality of a grouping against gold groups:
// over all pairs of items, a pair is predicted when both have one story id
// and true when both have one non-empty gold group.
type pairScore struct {
	TP, FP, FN        int
	Precision, Recall float64
	Merged            []string // wrongly merged pairs, for the failure message
	Missed            []string // gold pairs left apart
}

// scorePairs compares predicted story ids with gold groups ("" = a story
// of its own) for the ids in gold.
func scorePairs(gold, pred map[string]string) pairScore {
	var s pairScore
	ids := make([]string, 0, len(gold))
	for id := range gold {
		ids = append(ids, id)
	}
	sortStrings(ids)
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			same := gold[a] != "" && gold[a] == gold[b]
			got := pred[a] != "" && pred[a] == pred[b]
			switch {
			case same && got:
				s.TP++
			case got:
				s.FP++
				s.Merged = append(s.Merged, a+"+"+b)
			case same:
				s.FN++
				s.Missed = append(s.Missed, a+"+"+b)
			}
		}
	}
	s.Precision, s.Recall = 1, 1
	if s.TP+s.FP > 0 {
		s.Precision = float64(s.TP) / float64(s.TP+s.FP)
	}
	if s.TP+s.FN > 0 {
		s.Recall = float64(s.TP) / float64(s.TP+s.FN)
	}
	return s
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

type fixture struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	Lang      string `json:"lang"`
	Title     string `json:"title"`
	Summary   string `json:"summary"`
	Published string `json:"published"`
	StoryID   string `json:"story_id"`
}

func readJSONL(t testing.TB, path string) []fixture {
	t.Helper()
	return testkit.ReadJSONL[fixture](t, path)
}

// assignAll runs fixtures through a fresh in-memory index, in file order.
func assignAll(t testing.TB, fx []fixture, opts Options) map[string]string {
	t.Helper()
	x := New(opts)
	pred := map[string]string{}
	// Feeds deliver roughly in publication order; the index evicts by it.
	fx = slices.Clone(fx)
	slices.SortStableFunc(fx, func(a, b fixture) int { return strings.Compare(a.Published, b.Published) })
	for _, f := range fx {
		var at time.Time
		if f.Published != "" {
			var err error
			if at, err = time.Parse(time.RFC3339, f.Published); err != nil {
				t.Fatalf("%s: published: %v", f.ID, err)
			}
		}
		id, _ := x.Assign(Doc{ID: f.ID, Title: f.Title, Text: f.Summary, Lang: f.Lang, At: at})
		pred[f.ID] = id
	}
	return pred
}

// TestScoreFile scores a labelled file of the dupes.jsonl kind (id, group,
// title, summary): either through the index directly, or, with
// FEEDMON_STORY_PRED, the story ids of `feedmon classify` output:
//
//	go run ./cmd/feedmon classify < ../shared/dev-set/dupes.jsonl > /tmp/stories.jsonl
//	FEEDMON_STORY_GOLD=$PWD/../shared/dev-set/dupes.jsonl FEEDMON_STORY_PRED=/tmp/stories.jsonl \
//	  go test -run TestScoreFile -v ./internal/story/
//
// Skipped unless FEEDMON_STORY_GOLD is set.
func TestScoreFile(t *testing.T) {
	goldPath := os.Getenv("FEEDMON_STORY_GOLD")
	if goldPath == "" {
		t.Skip("FEEDMON_STORY_GOLD not set")
	}
	fx := readJSONL(t, goldPath)
	gold := map[string]string{}
	for _, f := range fx {
		gold[f.ID] = f.Group
	}
	var pred map[string]string
	if p := os.Getenv("FEEDMON_STORY_PRED"); p != "" {
		pred = map[string]string{}
		for _, f := range readJSONL(t, p) {
			pred[f.ID] = f.StoryID
		}
	} else {
		pred = assignAll(t, fx, Options{})
	}
	reportScore(t, gold, pred)
	// Per language: the pairs of two lines of that language (a line
	// without one counts as English, as the sets write English).
	langs := map[string]map[string]string{}
	for _, f := range fx {
		l := f.Lang
		if l == "" {
			l = "en"
		}
		if langs[l] == nil {
			langs[l] = map[string]string{}
		}
		langs[l][f.ID] = f.Group
	}
	names := make([]string, 0, len(langs))
	for l := range langs {
		names = append(names, l)
	}
	sortStrings(names)
	for _, l := range names {
		s := scorePairs(langs[l], pred)
		t.Logf("%s: precision %.3f recall %.3f (tp %d, fp %d, fn %d)", l, s.Precision, s.Recall, s.TP, s.FP, s.FN)
	}
}

func reportScore(t *testing.T, gold, pred map[string]string) pairScore {
	t.Helper()
	s := scorePairs(gold, pred)
	groups := map[string]bool{}
	grouped := 0
	for id, g := range gold {
		if g != "" && !groups[g] {
			groups[g] = true
			for id2, g2 := range gold {
				if id2 != id && g2 == g && pred[id] != "" && pred[id] == pred[id2] {
					grouped++
					break
				}
			}
		}
	}
	lookalikesMerged := 0
	for id, g := range gold {
		if g != "" {
			continue
		}
		for id2 := range gold {
			if id2 != id && pred[id] != "" && pred[id] == pred[id2] {
				lookalikesMerged++
				break
			}
		}
	}
	t.Logf("groups with their pair together: %d of %d; ungrouped items merged with another: %d", grouped, len(groups), lookalikesMerged)
	t.Logf("pairwise precision %.3f recall %.3f (tp %d, fp %d, fn %d)", s.Precision, s.Recall, s.TP, s.FP, s.FN)
	if len(s.Merged) > 0 {
		t.Logf("wrongly merged: %v", s.Merged)
	}
	if len(s.Missed) > 0 {
		t.Logf("missed: %v", s.Missed)
	}
	return s
}
