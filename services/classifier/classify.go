package classifier

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Result is the classification of one item.
type Result struct {
	// Topics that apply, in TopicOrder; never nil.
	Topics []string
	// Scores of the topics that apply.
	Scores map[string]float64
	// Matches holds, per topic that applies, the terms that counted as
	// they appear in the text (deduplicated, at most MaxMatches).
	Matches map[string][]string
	// Explain is filled by ClassifyExplain only: one entry per topic with
	// any match, in topic order.
	Explain []TopicExplain
}

// MaxMatches bounds Result.Matches per topic.
const MaxMatches = 10

// TopicExplain says why a topic did or did not apply.
type TopicExplain struct {
	Topic     string          `json:"topic"`
	Matched   bool            `json:"matched"`
	Score     float64         `json:"score"`
	Threshold float64         `json:"threshold"`
	Fired     []FiredTerm     `json:"fired,omitempty"`
	Cancelled []CancelledTerm `json:"cancelled,omitempty"`
	Unmet     []UnmetTerm     `json:"unmet,omitempty"`
}

// FiredTerm is a term that counted towards the score.
type FiredTerm struct {
	Group   string  `json:"group,omitempty"`
	Term    string  `json:"term"`
	Text    string  `json:"text"`
	Weight  float64 `json:"weight"`
	InTitle bool    `json:"in_title,omitempty"`
}

// CancelledTerm is a match cancelled by a negative context.
type CancelledTerm struct {
	Term     string `json:"term"`
	Text     string `json:"text"`
	Negative string `json:"negative"`
	NegText  string `json:"negative_text"`
}

// UnmetTerm is a match that did not count because the context its group
// requires was missing.
type UnmetTerm struct {
	Group    string   `json:"group,omitempty"`
	Term     string   `json:"term"`
	Text     string   `json:"text"`
	Requires []string `json:"requires"`
}

// Limits that keep the work per item bounded on very long text.
const (
	maxHitsPerTerm = 16
	maxHitsPerNeg  = 64
)

type hit struct {
	kind   useKind
	idx    int32 // term or negative
	group  int32 // positive hits: the term's group
	topic  int32
	s, e   int32 // bytes in normText
	ts, te int32 // token positions
	alive  bool
	cancel int32 // negative hit (index into hits) that cancelled it, or -1
	unmet  bool
	// counted: this alive hit adds to the score (see markCounted).
	counted bool
}

// scratch is the per-call working memory, pooled so a classification
// allocates only its result.
type scratch struct {
	nt      normText
	raw     []rawHit
	hits    []hit
	counts  []uint8 // per term or negative: hits kept
	touched []int32
	title   string
	summary string
	// byGroup lists the hits of each group: hits[gIdx[gOff[g]:gOff[g+1]]].
	gOff     []int32
	gIdx     []int32
	groupSum []float64
	topicAny []bool
	// nearIdx lists the hits that are sides of NEAR terms.
	nearIdx []int32
}

// Classify classifies one item. title and summary are plain text (the
// poller strips HTML; RunClassify does it for its input); lang is the
// item's language ("en", "ja", "zh-CN", ...) or empty when unknown.
func (c *Classifier) Classify(title, summary, lang string) Result {
	return c.classify(title, summary, lang, false)
}

// ClassifyExplain is Classify plus Result.Explain.
func (c *Classifier) ClassifyExplain(title, summary, lang string) Result {
	return c.classify(title, summary, lang, true)
}

func (c *Classifier) classify(title, summary, lang string, explain bool) Result {
	sc := c.pool.Get().(*scratch)
	defer c.pool.Put(sc)
	sc.title, sc.summary = title, summary
	sc.nt.set(title, summary)
	sc.raw = c.ac.scan(sc.nt.b, sc.raw[:0])
	c.resolve(sc, c.itemMask(lang))
	c.cancelNegatives(sc)
	c.pairNear(sc)
	c.indexGroups(sc)
	c.applyRequires(sc)
	c.markCounted(sc)
	res := c.score(sc, explain)
	sc.title, sc.summary = "", ""
	return res
}

// resolve turns automaton occurrences into hits: word boundaries, plural
// endings and languages are checked here.
func (c *Classifier) resolve(sc *scratch, itemLang uint64) {
	sc.hits = sc.hits[:0]
	sc.nearIdx = sc.nearIdx[:0]
	if n := len(c.terms) + len(c.negs); cap(sc.counts) < n {
		sc.counts = make([]uint8, n)
	} else {
		sc.counts = sc.counts[:n]
	}
	for _, t := range sc.touched {
		sc.counts[t] = 0
	}
	sc.touched = sc.touched[:0]
	b := sc.nt.b
	for _, r := range sc.raw {
		pi := &c.pats[r.id]
		end := int(r.end)
		start := end - int(c.ac.patLen[r.id])
		if pi.checkLeft && !leftBoundary(b, start) {
			continue
		}
		if pi.checkRight && !rightBoundary(b, end) {
			if !pi.plural {
				continue
			}
			switch {
			case end < len(b) && b[end] == 's' && rightBoundary(b, end+1):
				end++
			case end+1 < len(b) && b[end] == 'e' && b[end+1] == 's' && rightBoundary(b, end+2):
				end += 2
			default:
				continue
			}
		}
		ts := r.tok - pi.toks
		if pi.wideFirst {
			ts++
		}
		for _, u := range c.uses[pi.uFirst : pi.uFirst+pi.uN] {
			slot := u.idx
			limit := uint8(maxHitsPerTerm)
			group, topic := int32(-1), int32(0)
			if u.kind == useNeg {
				n := &c.negs[u.idx]
				if n.langMask != 0 && n.langMask&itemLang == 0 {
					continue
				}
				slot += int32(len(c.terms))
				limit = maxHitsPerNeg
				topic = n.topic
			} else {
				group = c.terms[u.idx].group
				g := &c.groups[group]
				if g.langMask != 0 && g.langMask&itemLang == 0 {
					continue
				}
				topic = g.topic
				if c.terms[u.idx].near > 0 {
					sc.nearIdx = append(sc.nearIdx, int32(len(sc.hits)))
				}
			}
			if sc.counts[slot] >= limit {
				continue
			}
			if sc.counts[slot] == 0 {
				sc.touched = append(sc.touched, slot)
			}
			sc.counts[slot]++
			sc.hits = append(sc.hits, hit{kind: u.kind, idx: u.idx, group: group, topic: topic,
				s: int32(start), e: int32(end), ts: ts, te: r.tok, alive: true, cancel: -1})
		}
	}
}

func leftBoundary(b []byte, i int) bool {
	if i == 0 || b[i-1] == ' ' {
		return true
	}
	if b[i-1] < 0x80 {
		return false
	}
	// A CJK character before a Latin word is a boundary too.
	_, size := utf8.DecodeLastRune(b[:i])
	return size >= 3
}

func rightBoundary(b []byte, i int) bool {
	return i >= len(b) || b[i] == ' ' || wideLead(b[i])
}

// cancelNegatives applies negative contexts to the positive hits of their
// topic, before NEAR pairing, so a negative cancels the part it touches.
func (c *Classifier) cancelNegatives(sc *scratch) {
	for ni := range sc.hits {
		nh := &sc.hits[ni]
		if nh.kind != useNeg {
			continue
		}
		neg := &c.negs[nh.idx]
		for pi := range sc.hits {
			ph := &sc.hits[pi]
			if ph.kind == useNeg || !ph.alive {
				continue
			}
			if ph.topic != neg.topic {
				continue
			}
			if neg.groups != nil && !containsID(neg.groups, ph.group) {
				continue
			}
			var hitIt bool
			switch {
			case neg.item:
				hitIt = true
			case neg.within == 0:
				hitIt = ph.s < nh.e && nh.s < ph.e
			default:
				hitIt = dist(ph, nh) <= neg.within
			}
			if hitIt {
				ph.alive = false
				ph.cancel = int32(ni)
			}
		}
	}
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// dist is the distance in words between two hits (0 when they overlap).
func dist(a, b *hit) int32 {
	switch {
	case a.te < b.ts:
		return b.ts - a.te
	case b.te < a.ts:
		return a.ts - b.te
	}
	return 0
}

// pairNear turns the A and B sides of NEAR terms into hits of the term:
// each surviving A is paired with its nearest surviving B. The sides
// themselves never score.
func (c *Classifier) pairNear(sc *scratch) {
	if len(sc.nearIdx) == 0 {
		return
	}
	for _, ai := range sc.nearIdx {
		a := &sc.hits[ai]
		if a.kind != useA || !a.alive {
			continue
		}
		best, bestD := int32(-1), int32(math.MaxInt32)
		for _, bi := range sc.nearIdx {
			b := &sc.hits[bi]
			if b.kind != useB || b.idx != a.idx || !b.alive {
				continue
			}
			if d := dist(a, b); d < bestD {
				best, bestD = bi, d
			}
		}
		if best < 0 || bestD > c.terms[a.idx].near {
			continue
		}
		b := &sc.hits[best]
		sc.hits = append(sc.hits, hit{kind: useA, idx: a.idx, group: a.group, topic: a.topic, s: min(a.s, b.s), e: max(a.e, b.e),
			ts: min(a.ts, b.ts), te: max(a.te, b.te), alive: true, cancel: -1})
	}
	// The sides themselves never score; explain still shows cancelled ones.
	for _, i := range sc.nearIdx {
		h := &sc.hits[i]
		if h.kind == useA {
			h.kind = useSideA
		}
		h.alive = false
	}
}

// indexGroups fills the per-group hit lists (counting sort by group).
func (c *Classifier) indexGroups(sc *scratch) {
	ng := len(c.groups)
	sc.gOff = grow(sc.gOff, ng+1)
	clear(sc.gOff)
	for i := range sc.hits {
		if h := &sc.hits[i]; h.kind == useA {
			sc.gOff[h.group+1]++
		}
	}
	for g := 1; g <= ng; g++ {
		sc.gOff[g] += sc.gOff[g-1]
	}
	sc.gIdx = grow(sc.gIdx, int(sc.gOff[ng]))
	// fill uses gOff[g] as a cursor, then shifts back.
	for i := range sc.hits {
		if h := &sc.hits[i]; h.kind == useA {
			sc.gIdx[sc.gOff[h.group]] = int32(i)
			sc.gOff[h.group]++
		}
	}
	for g := ng; g > 0; g-- {
		sc.gOff[g] = sc.gOff[g-1]
	}
	sc.gOff[0] = 0
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (sc *scratch) groupHits(g int32) []int32 { return sc.gIdx[sc.gOff[g]:sc.gOff[g+1]] }

// applyRequires drops hits of groups whose required context is missing,
// in dependency order, so a required group's own requirements count first.
func (c *Classifier) applyRequires(sc *scratch) {
	for _, g := range c.groupOrder {
		gr := &c.groups[g]
		if len(gr.requires) == 0 {
			continue
		}
		for _, i := range sc.groupHits(g) {
			h := &sc.hits[i]
			if !h.alive {
				continue
			}
			ok := false
		reqs:
			for _, r := range gr.requires {
				for _, j := range sc.groupHits(r) {
					o := &sc.hits[j]
					if j != i && o.alive && (gr.within == 0 || dist(h, o) <= gr.within) {
						ok = true
						break reqs
					}
				}
			}
			if !ok {
				h.alive = false
				h.unmet = true
			}
		}
	}
}

// markCounted decides which alive hits score. A topic counts each thing
// the text says once: a hit inside a longer hit of the same topic
// ("fighter" inside "fighter jets") does not count, and within a group a
// surface form counts once however often it occurs or however many terms
// find it ("missile" and "missiles"). Context groups (weight 0) neither
// count nor suppress.
func (c *Classifier) markCounted(sc *scratch) {
	b := sc.nt.b
	for ti := range c.topics {
		groups := c.topics[ti].groups
		for _, g := range groups {
			if c.groups[g].weight == 0 {
				continue
			}
			for _, i := range sc.groupHits(g) {
				h := &sc.hits[i]
				h.counted = false
				if !h.alive {
					continue
				}
				ok := true
			others:
				for _, og := range groups {
					if c.groups[og].weight == 0 {
						continue
					}
					for _, j := range sc.groupHits(og) {
						o := &sc.hits[j]
						if j == i || !o.alive {
							continue
						}
						if o.s <= h.s && h.e <= o.e && (o.e-o.s > h.e-h.s || j < i) {
							ok = false // inside a longer (or an earlier, equal) hit
							break others
						}
						if j < i && og == g && o.counted && sameForm(b[o.s:o.e], b[h.s:h.e]) {
							ok = false
							break others
						}
					}
				}
				h.counted = ok
			}
		}
	}
}

// sameForm compares two matched forms ignoring a plural ending.
func sameForm(a, b []byte) bool {
	a, b = stem(a), stem(b)
	return string(a) == string(b)
}

func stem(w []byte) []byte {
	switch {
	case len(w) > 3 && w[len(w)-1] == 's' && w[len(w)-2] == 'e':
		return w[:len(w)-2]
	case len(w) > 2 && w[len(w)-1] == 's':
		return w[:len(w)-1]
	}
	return w
}

// text returns the source text of a hit as it appears in the item.
func (sc *scratch) text(h *hit) string {
	src := sc.summary
	if int(h.s) < sc.nt.titleEnd {
		src = sc.title
	}
	// Widen open-ended ("sanction*") matches to whole words for display.
	b := sc.nt.b
	hs, he := int(h.s), int(h.e)
	for hs > 0 && b[hs-1] != ' ' && b[hs-1] < 0x80 && b[hs] < 0x80 {
		hs--
	}
	for he < len(b) && b[he] != ' ' && b[he] < 0x80 && b[he-1] < 0x80 {
		he++
	}
	if (hs < sc.nt.titleEnd) != (int(h.s) < sc.nt.titleEnd) {
		hs = int(h.s)
	}
	s := int(sc.nt.src[hs])
	last := int(sc.nt.src[he-1])
	if int(h.s) < sc.nt.titleEnd && int(h.e) > sc.nt.titleEnd {
		// A match across title and summary (rare): report the title part.
		last = len(src) - 1
	}
	if last < s || last >= len(src) {
		return ""
	}
	_, size := utf8.DecodeRuneInString(src[last:])
	return strings.TrimSpace(src[s : last+size])
}

func (c *Classifier) score(sc *scratch, explain bool) Result {
	res := Result{Topics: []string{}}
	var ex []TopicExplain
	for ti := range c.topics {
		t := &c.topics[ti]
		var te *TopicExplain
		total := 0.0
		any := false
		for _, g := range t.groups {
			gr := &c.groups[g]
			sum := 0.0
			for _, i := range sc.groupHits(g) {
				h := &sc.hits[i]
				any = true
				if !h.alive || !h.counted {
					continue
				}
				w := gr.weight
				if int(h.s) < sc.nt.titleEnd {
					w *= t.titleBoost
				}
				sum += w
			}
			if gr.max > 0 && sum > gr.max {
				sum = gr.max
			}
			total += sum
		}
		if !any && !explain {
			continue
		}
		total = math.Round(total*1000) / 1000
		matched := total >= t.threshold && total > 0
		if explain && (any || negHitFor(c, sc, int32(ti))) {
			ex = append(ex, TopicExplain{Topic: t.name, Matched: matched, Score: total, Threshold: t.threshold})
			te = &ex[len(ex)-1]
			c.explainTopic(sc, int32(ti), te)
		}
		if !matched {
			continue
		}
		res.Topics = append(res.Topics, t.name)
		if res.Scores == nil {
			res.Scores = map[string]float64{}
			res.Matches = map[string][]string{}
		}
		res.Scores[t.name] = total
		var ms []string
		for i := range sc.hits {
			h := &sc.hits[i]
			if h.kind != useA || !h.alive || h.topic != int32(ti) || c.groups[h.group].weight <= 0 {
				continue
			}
			txt := sc.text(h)
			if txt == "" || containsFold(ms, txt) {
				continue
			}
			if len(ms) < MaxMatches {
				ms = append(ms, txt)
			}
		}
		res.Matches[t.name] = ms
	}
	res.Explain = ex
	return res
}

func negHitFor(c *Classifier, sc *scratch, topic int32) bool {
	for i := range sc.hits {
		if sc.hits[i].kind == useNeg && c.negs[sc.hits[i].idx].topic == topic {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (c *Classifier) explainTopic(sc *scratch, ti int32, te *TopicExplain) {
	t := &c.topics[ti]
	for i := range sc.hits {
		h := &sc.hits[i]
		if h.kind == useNeg || c.groups[c.terms[h.idx].group].topic != ti {
			continue
		}
		if h.kind != useA && h.cancel < 0 {
			continue // an uncancelled NEAR side: the paired hit explains it
		}
		term := &c.terms[h.idx]
		gr := &c.groups[term.group]
		switch {
		case h.alive:
			if !sc.hits[i].counted {
				continue
			}
			w := gr.weight
			in := int(h.s) < sc.nt.titleEnd
			if in {
				w *= t.titleBoost
			}
			te.Fired = append(te.Fired, FiredTerm{Group: gr.name, Term: term.text, Text: sc.text(h), Weight: w, InTitle: in})
		case h.cancel >= 0:
			n := &sc.hits[h.cancel]
			neg := &c.negs[n.idx]
			name := neg.text
			if neg.name != "" {
				name = neg.name + ": " + neg.text
			}
			te.Cancelled = append(te.Cancelled, CancelledTerm{Term: term.text, Text: sc.text(h), Negative: name, NegText: sc.text(n)})
		case h.unmet:
			var req []string
			for _, r := range gr.requires {
				rg := &c.groups[r]
				req = append(req, c.topics[rg.topic].name+"."+rg.name)
			}
			te.Unmet = append(te.Unmet, UnmetTerm{Group: gr.name, Term: term.text, Text: sc.text(h), Requires: req})
		}
	}
}
