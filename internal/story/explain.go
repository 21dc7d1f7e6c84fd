package story

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Explanation says why an item got its story: the item it joined and
// what they share, or the closest item it did not join and what kept
// them apart.
type Explanation struct {
	Threshold float64 `json:"threshold"`
	// Matched is the item whose story the item joined.
	Matched *Candidate `json:"matched,omitempty"`
	// NearMiss is the closest item of another story: the highest score
	// under the threshold, or the closest in words of those a
	// contradiction kept apart.
	NearMiss *Candidate `json:"near_miss,omitempty"`
	// Contradicted lists the stories the item was close enough to join
	// but that hold a member contradicting it (see Candidate.ContradictedBy),
	// the closest first.
	Contradicted []Candidate `json:"contradicted,omitempty"`
}

// Candidate is an item the index compared the item with.
type Candidate struct {
	ID    string  `json:"id"`
	Story string  `json:"story"`
	Score float64 `json:"score"`
	// Words is the similarity of their words alone; Score adds what
	// their anchors share.
	Words float64 `json:"words"`
	// Shared lists the figures, names, periods and direction both state.
	Shared string `json:"shared,omitempty"`
	// KeptApart says what contradicts the two, or that the score is
	// under the threshold.
	KeptApart string `json:"kept_apart,omitempty"`
	// ContradictedBy is the member of the candidate's story that
	// contradicts the item (KeptApart says how): a report joins a story
	// only when none of its members contradicts it.
	ContradictedBy string `json:"contradicted_by,omitempty"`
}

// AssignExplain is Assign, with the explanation of its decision. It costs
// more than Assign: use it for `feedmon classify -explain`, not in the
// service.
func (x *Index) AssignExplain(d Doc) (storyID string, isNew bool, ex Explanation) {
	sig := signDoc(d, nil)
	key := memKey(d)
	x.mu.Lock()
	defer x.mu.Unlock()
	ex.Threshold = x.opts.Threshold
	kh := x.keyHash(key)
	if m := x.byHashLocked(key, kh); m != nil {
		return m.story, false, ex
	}
	var near *member
	var nearScore score
	var ms []match
	scores := map[*member]score{}
	bestSim := 0.0
	x.candidatesLocked(&sig, d.At, func(m *member) bool {
		sc := x.scoreLocked(sig.toks, m.toks, &sig.anc, &m.anc, true)
		switch {
		case sc.g.kept == keptNone && sc.sim >= x.opts.Threshold:
			// As bestLocked: the first item this close ends the search
			// for candidates (not for near misses).
			if bestSim < sureSimilarity {
				ms = append(ms, match{m: m, sim: sc.sim})
				scores[m] = sc
				bestSim = max(bestSim, sc.sim)
			}
		case near == nil || nearer(sc, nearScore):
			near, nearScore = m, sc
		}
		return true
	})
	best := x.chooseLocked(&sig, ms, func(c match, by *member, g agreement) {
		v := candidate(c.m, scores[c.m], x.opts.Threshold)
		v.ContradictedBy, v.KeptApart = by.key, g.detail
		ex.Contradicted = append(ex.Contradicted, *v)
	})
	storyID, isNew = newStoryID(d), true
	if best != nil {
		storyID, isNew = best.story, false
		ex.Matched = candidate(best, scores[best], x.opts.Threshold)
	}
	if near != nil && (best == nil || near.story != best.story) {
		ex.NearMiss = candidate(near, nearScore, x.opts.Threshold)
	}
	x.insertNewLocked(key, kh, storyID, d.At, &sig)
	return storyID, isNew, ex
}

// nearer orders near misses: by score, then (for items a contradiction
// kept apart, whose score is 0) by the similarity of their words.
func nearer(a, b score) bool {
	if a.sim != b.sim {
		return a.sim > b.sim
	}
	return a.words > b.words
}

func candidate(m *member, sc score, threshold float64) *Candidate {
	c := &Candidate{ID: m.key, Story: m.story, Score: round3(sc.sim), Words: round3(sc.words)}
	switch {
	case sc.g.kept != keptNone:
		c.KeptApart = sc.g.detail
	default:
		c.Shared = sc.g.detail
		if sc.sim < threshold {
			c.KeptApart = fmt.Sprintf("score %.3f under the threshold %.3f", sc.sim, threshold)
		}
	}
	return c
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// SharedWords lists the content words two items have in common (folded,
// stop words left out; Chinese and Japanese as character pairs), for
// -explain: what their similarity of words is made of.
func SharedWords(a, b Doc) []string {
	wa, wb := contentWords(a), contentWords(b)
	var out []string
	for stem, w := range wa {
		if _, ok := wb[stem]; ok {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// contentWords maps the stems of d's content words (as tokenize cuts
// them) to the first form d uses.
func contentWords(d Doc) map[string]string {
	stop := stopWords(d.Lang)
	words := map[string]string{}
	put := func(stem, w string) {
		if _, ok := words[stem]; !ok {
			words[stem] = w
		}
	}
	for _, s := range []string{d.Title, d.Text} {
		forWords(s, func(w []byte) {
			if utf8.RuneCount(w) < 2 || stop.has(hashBytes(w)) {
				return
			}
			put(stemString(string(w)), string(w))
		})
		var prev rune
		for _, r := range s {
			if r >= 0x2e80 && isCJK(r) {
				if prev != 0 && !cjkBreak(prev) && !cjkBreak(r) {
					bi := string([]rune{prev, r})
					put(bi, bi)
				}
				prev = r
				continue
			}
			prev = 0
		}
	}
	return words
}

// String is the explanation in one line.
func (e Explanation) String() string {
	var b strings.Builder
	if m := e.Matched; m != nil {
		fmt.Fprintf(&b, "joined %s (score %.3f, words %.3f; %s)", m.ID, m.Score, m.Words, m.Shared)
	}
	if n := e.NearMiss; n != nil {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "kept apart from %s (score %.3f, words %.3f): %s", n.ID, n.Score, n.Words, n.KeptApart)
	}
	for _, c := range e.Contradicted {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "not joined %s's story (score %.3f): its member %s contradicts: %s", c.ID, c.Score, c.ContradictedBy, c.KeptApart)
	}
	return b.String()
}
