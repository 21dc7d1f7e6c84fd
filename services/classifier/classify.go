package classifier

import (
	"cmp"
	"math"
	"slices"
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
	idx    int32 // term or negative
	group  int32 // positive hits: the term's group
	topic  int32
	s, e   int32 // bytes in normText
	ts, te int32 // token positions
	cancel int32 // negative hit (index into hits) that cancelled it, or -1
	kind   useKind
	alive  bool
	unmet  bool
	// counted: this alive hit adds to the score (see markCounted).
	counted bool
}

// scratch is the per-call working memory, pooled so a classification
// allocates only its result.
type scratch struct {
	nt      normText
	raw     []rawHit
	raw2    []rawHit // scanBuf's buffer
	hits    []hit
	counts  []uint8 // per term or negative: hits kept
	sides   []uint8 // per term: bit 0 an A side seen, bit 1 a B side
	present []bool  // per group: a hit in the item (dropIdle; left all false)
	touched []int32
	title   string
	summary string
	// The hits of group g are hits[gIdx[gStart[g]:gEnd[g]]] when
	// gStamp[g] == epoch, else none: stamping spares clearing per-group
	// state for every item (most groups have no hit).
	epoch         uint32
	gStamp        []uint32
	gStart, gEnd  []int32
	gIdx          []int32
	touchedGroups []int32
	topicHits     []int32 // markCounted's per-topic list
	matchBuf      []string
	topicSum      []float64
	topicAny      []bool
	// nearIdx lists the hits that are sides of NEAR terms; pairNear sorts
	// a copy by term (nearOrd) and notes each A side's B side (nearBest,
	// by hit index).
	nearIdx  []int32
	nearOrd  []int32
	nearBest []int32
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
	sc.raw, sc.raw2 = c.ac.scanBuf(sc.nt.b, sc.raw[:0], sc.raw2)
	c.resolve(sc, c.itemMask(lang))
	if !explain {
		c.dropIdle(sc)
	}
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
		sc.sides = make([]uint8, len(c.terms))
	} else {
		sc.counts = sc.counts[:n]
	}
	for _, t := range sc.touched {
		sc.counts[t] = 0
		if int(t) < len(sc.sides) {
			sc.sides[t] = 0
		}
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
		for i := pi.uFirst; i < pi.uFirst+pi.uN; i++ {
			u := &c.uses[i]
			if u.langMask != 0 && u.langMask&itemLang == 0 {
				continue
			}
			slot := u.slot
			if sc.counts[slot] >= u.limit {
				continue
			}
			if sc.counts[slot] == 0 {
				sc.touched = append(sc.touched, slot)
			}
			sc.counts[slot]++
			if u.near {
				// (Only for a hit that is kept: a side past the limit
				// must not point at the next hit.)
				sc.nearIdx = append(sc.nearIdx, int32(len(sc.hits)))
				sc.sides[u.idx] |= 1 << u.kind // useA = 0, useB = 1
			}
			sc.hits = append(sc.hits, hit{kind: u.kind, idx: u.idx, group: u.group, topic: u.topic,
				s: int32(start), e: int32(end), ts: ts, te: r.tok, alive: true, cancel: -1})
		}
	}
}

// dropIdle removes hits that cannot matter, before the quadratic steps:
//   - sides of NEAR terms whose other side does not occur in the item: they
//     can never pair. A common word is a side of many NEAR terms
//     ("exports" of a dozen): this was 40% of an item's hits.
//   - hits of context groups that no group with a hit in the item
//     requires: context never scores, it only serves groups that need it.
//   - hits of groups none of whose required groups has a hit.
//
// Explain keeps them, to show a side or context a negative cancelled.
func (c *Classifier) dropIdle(sc *scratch) {
	if len(sc.hits) == 0 {
		return
	}
	ng := len(c.groups)
	sc.present = grow(sc.present, ng)
	for _, h := range sc.hits {
		if h.kind != useNeg {
			sc.present[h.group] = true
		}
	}
	kept := sc.hits[:0]
	sc.nearIdx = sc.nearIdx[:0]
	for _, h := range sc.hits {
		if h.kind != useNeg {
			if c.terms[h.idx].near > 0 && sc.sides[h.idx] != 3 {
				continue
			}
			gr := &c.groups[h.group]
			if gr.weight == 0 && !c.needed(sc, h.group) {
				continue
			}
			if len(gr.requires) > 0 && !c.anyPresent(sc, gr.requires) {
				continue // applyRequires would find it unmet
			}
			if c.terms[h.idx].near > 0 {
				sc.nearIdx = append(sc.nearIdx, int32(len(kept)))
			}
		}
		kept = append(kept, h)
	}
	for _, h := range sc.hits {
		if h.kind != useNeg {
			sc.present[h.group] = false
		}
	}
	sc.hits = kept
}

// needed reports whether a group with a hit in the item requires group g.
func (c *Classifier) needed(sc *scratch, g int32) bool {
	return c.anyPresent(sc, c.requiredBy[g])
}

func (c *Classifier) anyPresent(sc *scratch, groups []int32) bool {
	for _, g := range groups {
		if sc.present[g] {
			return true
		}
	}
	return false
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
	// Bucket the sides by term (hit order within a term), so each A side
	// is compared only with the B sides of its own term: a long item has
	// hundreds of sides of dozens of terms.
	ord := append(sc.nearOrd[:0], sc.nearIdx...)
	slices.SortFunc(ord, func(x, y int32) int {
		if d := cmp.Compare(sc.hits[x].idx, sc.hits[y].idx); d != 0 {
			return d
		}
		return cmp.Compare(x, y)
	})
	sc.nearOrd = ord
	sc.nearBest = grow(sc.nearBest, len(sc.hits))
	te := int32(sc.nt.titleEnd)
	for lo := 0; lo < len(ord); {
		term := sc.hits[ord[lo]].idx
		hi := lo + 1
		for hi < len(ord) && sc.hits[ord[hi]].idx == term {
			hi++
		}
		for _, ai := range ord[lo:hi] {
			a := &sc.hits[ai]
			if a.kind != useA || !a.alive {
				continue
			}
			best, bestD := int32(-1), int32(math.MaxInt32)
			for _, bi := range ord[lo:hi] {
				b := &sc.hits[bi]
				if b.kind != useB || !b.alive {
					continue
				}
				// The title and the summary are different sentences: a
				// NEAR term does not pair across them.
				if (a.s < te) != (b.s < te) {
					continue
				}
				if d := dist(a, b); d < bestD {
					best, bestD = bi, d
				}
			}
			if bestD > c.terms[term].near {
				best = -1
			}
			sc.nearBest[ai] = best
		}
		lo = hi
	}
	// Pair in hit order, as the rest of the pipeline expects.
	for _, ai := range sc.nearIdx {
		a := &sc.hits[ai]
		if a.kind != useA || !a.alive || sc.nearBest[ai] < 0 {
			continue
		}
		b := &sc.hits[sc.nearBest[ai]]
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

// indexGroups fills the per-group hit lists (counting sort by group, over
// the groups that have hits only).
func (c *Classifier) indexGroups(sc *scratch) {
	ng := len(c.groups)
	if len(sc.gStamp) != ng {
		sc.gStamp = make([]uint32, ng)
		sc.gStart = make([]int32, ng)
		sc.gEnd = make([]int32, ng)
		sc.epoch = 0
	}
	sc.epoch++
	if sc.epoch == 0 { // wrapped: old stamps could look current
		clear(sc.gStamp)
		sc.epoch = 1
	}
	ep := sc.epoch
	sc.touchedGroups = sc.touchedGroups[:0]
	n := int32(0)
	for i := range sc.hits {
		h := &sc.hits[i]
		if h.kind != useA {
			continue
		}
		if sc.gStamp[h.group] != ep {
			sc.gStamp[h.group] = ep
			sc.gEnd[h.group] = 0
			sc.touchedGroups = append(sc.touchedGroups, h.group)
		}
		sc.gEnd[h.group]++ // a count for now
		n++
	}
	// gEnd[g] becomes the cursor where g's hits start; after the fill it
	// is where they end.
	off := int32(0)
	for _, g := range sc.touchedGroups {
		sc.gStart[g] = off
		off += sc.gEnd[g]
		sc.gEnd[g] = sc.gStart[g]
	}
	sc.gIdx = grow(sc.gIdx, int(n))
	for i := range sc.hits {
		if h := &sc.hits[i]; h.kind == useA {
			sc.gIdx[sc.gEnd[h.group]] = int32(i)
			sc.gEnd[h.group]++
		}
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (sc *scratch) groupHits(g int32) []int32 {
	if sc.gStamp[g] != sc.epoch {
		return nil
	}
	return sc.gIdx[sc.gStart[g]:sc.gEnd[g]]
}

// applyRequires drops hits of groups whose required context is missing,
// in dependency order, so a required group's own requirements count first.
func (c *Classifier) applyRequires(sc *scratch) {
	for _, g := range c.reqOrder {
		gr := &c.groups[g]
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
		// The topic's hits in scoring groups; within a group in hit order,
		// so an earlier equal hit of the group is decided first.
		// (Across groups only hit order matters, so the groups can come in
		// the order of their first hit.)
		list := sc.topicHits[:0]
		for _, g := range sc.touchedGroups {
			if gr := &c.groups[g]; gr.weight == 0 || gr.topic != int32(ti) {
				continue
			}
			for _, i := range sc.groupHits(g) {
				sc.hits[i].counted = false
				if sc.hits[i].alive {
					list = append(list, i)
				}
			}
		}
		sc.topicHits = list
		for _, i := range list {
			h := &sc.hits[i]
			ok := true
			for _, j := range list {
				if j == i {
					continue
				}
				o := &sc.hits[j]
				if o.s <= h.s && h.e <= o.e && (o.e-o.s > h.e-h.s || j < i) {
					ok = false // inside a longer (or an earlier, equal) hit
					break
				}
				if j < i && o.group == h.group && o.counted && sameForm(b[o.s:o.e], b[h.s:h.e]) {
					ok = false
					break
				}
			}
			h.counted = ok
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
	// Scores first; the result's slices and maps are then allocated once,
	// at their final size.
	type scored struct {
		ti    int32
		total float64
	}
	var matchedBuf [8]scored
	matched := matchedBuf[:0]
	// Sum the groups that have hits; a group's sum is capped at its max.
	nt := len(c.topics)
	sc.topicSum = grow(sc.topicSum, nt)
	sc.topicAny = grow(sc.topicAny, nt)
	clear(sc.topicSum)
	clear(sc.topicAny)
	for _, g := range sc.touchedGroups {
		gr := &c.groups[g]
		sc.topicAny[gr.topic] = true
		boost := c.topics[gr.topic].titleBoost
		sum := 0.0
		for _, i := range sc.groupHits(g) {
			h := &sc.hits[i]
			if !h.alive || !h.counted {
				continue
			}
			w := gr.weight
			if int(h.s) < sc.nt.titleEnd {
				w *= boost
			}
			sum += w
		}
		if gr.max > 0 && sum > gr.max {
			sum = gr.max
		}
		sc.topicSum[gr.topic] += sum
	}
	for ti := range c.topics {
		t := &c.topics[ti]
		any := sc.topicAny[ti]
		if !any && !explain {
			continue
		}
		total := math.Round(sc.topicSum[ti]*1000) / 1000
		ok := total >= t.threshold && total > 0
		if explain && (any || negHitFor(c, sc, int32(ti))) {
			ex = append(ex, TopicExplain{Topic: t.name, Matched: ok, Score: total, Threshold: t.threshold})
			c.explainTopic(sc, int32(ti), &ex[len(ex)-1])
		}
		if ok {
			matched = append(matched, scored{int32(ti), total})
		}
	}
	res.Explain = ex
	if len(matched) == 0 {
		return res
	}
	res.Scores = make(map[string]float64, len(matched))
	res.Matches = make(map[string][]string, len(matched))
	// One backing array for every topic's matches, each topic's part capped
	// with a full slice expression so appends cannot run into the next.
	// (Topics is capped at its length, so appending to it copies.)
	n := 0
	for _, m := range matched {
		k := 0
		for i := range sc.hits {
			if h := &sc.hits[i]; h.kind == useA && h.alive && h.topic == m.ti && c.groups[h.group].weight > 0 {
				k++
			}
		}
		n += min(k, MaxMatches)
	}
	// Topics and the matched strings share one allocation too.
	all := make([]string, 0, len(matched)+n)
	res.Topics = all[:0:len(matched)]
	buf := all[len(matched):len(matched)]
	for _, m := range matched {
		t := &c.topics[m.ti]
		res.Topics = append(res.Topics, t.name)
		res.Scores[t.name] = m.total
		start := len(buf)
		for i := range sc.hits {
			h := &sc.hits[i]
			if h.kind != useA || !h.alive || h.topic != m.ti || c.groups[h.group].weight <= 0 {
				continue
			}
			if len(buf)-start >= MaxMatches {
				break
			}
			txt := sc.text(h)
			if txt == "" || containsFold(buf[start:], txt) {
				continue
			}
			buf = append(buf, txt)
		}
		res.Matches[t.name] = buf[start:len(buf):len(buf)]
	}
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
