package story

import (
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/feedmon/feedmon/internal/htmltext"
)

// Anchors are what a report states, whatever its wording: the places,
// bodies and companies it names (by the gazetteer, so that "Britain",
// "UK" and "英国" are one), the figures it quotes (value and unit,
// magnitudes and currencies normalised: "$3.5bn", "2.95 billion euros"
// and "35億ドル" are comparable), the months and quarters it speaks of, and
// which way it says something moved (raise or cut, impose or lift).
//
// Reports of one story agree on them; look-alikes contradict them (see
// compareAnchors): another month's figure, another country's pledge, the
// same duty cut instead of raised. What the headline holds counts most:
// it says what the story is.
type anchors struct {
	ents [maxEnts]uint16 // sorted, parents included
	head [maxHeadEnts]uint16
	// figs are at most maxFigs, in their own array (nil when none): an
	// item's anchors are kept with it in the index, and most items quote
	// fewer figures than an inline array would hold room for.
	figs    []figure
	nEnts   uint8
	nHead   uint8
	dir     uint8 // direction bits of the whole text
	headDir uint8
	// periods has one bit per month (quarters and halves set theirs);
	// headPeriods those of the headline.
	periods, headPeriods uint16
	// headWeigh: the headline weighs a measure rather than reports one.
	headWeigh bool
	// lang is the item's language (langCode), 0 when unknown.
	lang uint32
}

const (
	maxEnts     = 16
	maxHeadEnts = 8
	maxFigs     = 8
)

// figure is one quoted figure, normalised: money in US dollars, mass in
// tonnes, basis points as percentage points.
type figure struct {
	v     float64
	tol   float64 // half a unit of its last significant digit
	class uint8
	cur   uint8 // currency code (1 + index in curCodes), 0 for none
	head  bool  // quoted by the headline
	weak  bool  // a small count without a unit ("five", "3 fabs")
	// rich: a figure that few stories share by chance: a sum, a tonnage,
	// or one of two significant digits or more ("411,000", "2.7%",
	// "35,000"), not "2%" or "50".
	rich bool
	// hi is the upper end of a range ("3.75% to 4%"), 0 for one figure.
	hi float64
}

// extractAnchors reads the anchors of an item, its figures into scratch
// as scanAnchors does.
func extractAnchors(title, text, lang string, scratch []figure) anchors {
	// Items may hold HTML (see Doc), which sign reads through too.
	if strings.ContainsAny(title, "<&") {
		title = htmltext.ToText(title)
	}
	if strings.ContainsAny(text, "<&") {
		text = htmltext.ToText(text)
	}
	return scanAnchors(title, text, lang, scratch)
}

// scanAnchors is extractAnchors of plain text. Its figures go to scratch
// when that has room for maxFigs (they then share its array), else to an
// array of their own.
func scanAnchors(title, text, lang string, scratch []figure) anchors {
	var a anchors
	sc := scanners.Get().(*scanner)
	defer scanners.Put(sc)
	a.figs = sc.figs[:0]
	if cap(scratch) >= maxFigs {
		a.figs = scratch[:0]
	}
	sc.run(&a, title, lang, true)
	sc.run(&a, text, lang, false)
	a.lang = langCode(lang)
	switch {
	case len(a.figs) == 0:
		a.figs = nil
	case cap(scratch) < maxFigs:
		// Not to share the pooled scanner's array.
		a.figs = slices.Clone(a.figs)
	}
	return a
}

// anchorKeys fills keys (anchorBands of them) with band values for the
// first rich figures: each figure's class and value on two logarithmic
// grids of buckets 30% wide, offset by half a bucket, so that two values
// within 14% of each other ("$3.5bn", "2.95 billion euros") share a
// bucket of one grid. Unused keys are noBand.
func (a *anchors) anchorKeys(keys []uint64) {
	k := 0
	for i := range a.figs {
		f := &a.figs[i]
		if !f.rich || f.v <= 0 || k+2 > len(keys) {
			continue
		}
		l := math.Log(f.v) / math.Log(1.3)
		for grid := range 2 {
			b := int64(math.Floor(l + 0.5*float64(grid)))
			keys[k] = splitmix(uint64(b)<<8 ^ uint64(f.class)<<1 ^ uint64(grid) ^ 0x6a09e667f3bcc908)
			k++
		}
	}
	for ; k < len(keys); k++ {
		keys[k] = noBand
	}
}

// langCode packs the primary subtag of a BCP 47 tag ("en", "de-AT",
// "zh-Hans") into an integer, lower case; 0 for none.
func langCode(tag string) uint32 {
	var c uint32
	for i := 0; i < len(tag) && i < 4; i++ {
		b := tag[i]
		if b == '-' || b == '_' {
			break
		}
		c = c<<8 | uint32(b|0x20)
	}
	return c
}

func (a *anchors) addEnt(id uint16, head bool) {
	for id != 0 {
		addSorted(a.ents[:], &a.nEnts, id)
		if head {
			addSorted(a.head[:], &a.nHead, id)
		}
		id = gaz.ents[id].parent
	}
}

// addSorted inserts id into the sorted set s[:*n] unless it is there or
// s is full.
func addSorted(s []uint16, n *uint8, id uint16) {
	k := int(*n)
	i := 0
	for i < k && s[i] < id {
		i++
	}
	if i < k && s[i] == id || k == len(s) {
		return
	}
	copy(s[i+1:k+1], s[i:k])
	s[i] = id
	*n++
}

func hasID(s []uint16, id uint16) bool {
	for _, x := range s {
		if x == id {
			return true
		}
	}
	return false
}

func (a *anchors) addFig(f figure) {
	for i := range a.figs {
		g := &a.figs[i]
		if g.class == f.class && g.v == f.v {
			g.head = g.head || f.head
			g.weak = g.weak && f.weak
			g.rich = g.rich || f.rich
			return
		}
	}
	if len(a.figs) < maxFigs {
		a.figs = append(a.figs, f)
	}
}

func (a *anchors) addPeriod(bits uint16, head bool) {
	a.periods |= bits
	if head {
		a.headPeriods |= bits
	}
}

func (a *anchors) addDir(d uint8, head bool) {
	a.dir |= d
	if head {
		a.headDir |= d
	}
}

// Token kinds of the scanner.
const (
	tkWord = iota + 1
	tkNum
	tkSym
	tkCJK
)

// atok is one token of the scanner: a word (letters), a number, a symbol
// or a run of CJK text.
type atok struct {
	s     string   // the token's text
	h     uint64   // word: hash of its folded form
	wi    wordInfo // word: its entry in the lexicon
	alias bool     // word: part of some alias of the gazetteer
	v     float64
	kind  uint8
	dec   int8 // number: digits after the decimal mark
	zeros int8 // number: trailing zeros of an integer
	glued bool // no space before it
	brk   bool // punctuation before it: no name spans it
	first bool // the first word of a sentence
	upper bool // word: starts with a capital
	group bool // number: written with a thousands separator
	r     rune // symbol
}

// scanners holds scanners between items: a scanner is a few kilobytes,
// too much to clear (or allocate) for each item.
var scanners = sync.Pool{New: func() any { return new(scanner) }}

// maxScanTokens bounds the tokens read of one text: the headline and the
// start of the summary say what a story is.
const maxScanTokens = 128

type scanner struct {
	toks [maxScanTokens]atok
	n    int
	// ents are the entities matched in the text being read, with the
	// token where their alias starts (a longer alias ending later drops
	// the shorter ones it covers: "Bank of England" is not "England").
	ents  [32]struct{ id, at uint16 }
	nents int
	// skip is a number token already read as part of something else: the
	// day of a date, the second part of "1兆5000億円" or of a range.
	skip int
	// mention: the tokens being read refer back to another event in
	// passing ("two days after drones shut Copenhagen airport"): what
	// they name is not this report's (see clause in signature.go).
	mention bool
	// titleCase: a headline that capitalises every word, where a
	// capital says nothing about names.
	titleCase bool
	// figs gathers the figures of the anchors being read.
	figs [maxFigs]figure
}

// run scans s and adds its anchors to a.
func (sc *scanner) run(a *anchors, s, lang string, head bool) {
	sc.tokenize(s, lang)
	sc.nents = 0
	sc.skip = -1
	sc.mention = false
	toks := sc.toks[:sc.n]
	sc.titleCase = false
	if head {
		words, caps := 0, 0
		for _, t := range toks {
			if t.kind == tkWord {
				words++
				if t.upper {
					caps++
				}
			}
		}
		sc.titleCase = words >= 3 && caps*10 > words*6
	}
	for i := range toks {
		t := &toks[i]
		if t.brk {
			sc.mention = false
		}
		if t.kind == tkWord && i > 0 && toks[i-1].kind == tkWord {
			switch t.wi.kind {
			case wkAfter:
				if pw := toks[i-1].wi; pw.kind == wkUnit && pw.unit == classSkip {
					sc.mention = true
				}
			case wkRefer:
				sc.mention = true
			}
		}
		if sc.mention {
			continue
		}
		switch t.kind {
		case tkWord:
			sc.matchWords(i)
			wi := t.wi
			switch {
			case wi.kind == wkMonth || t.upper && (t.s == "May" || t.s == "March"):
				m := int(wi.val)
				if wi.kind != wkMonth {
					m = 5
					if t.s == "March" {
						m = 3
					}
				}
				a.addPeriod(1<<(m-1), head)
				// "August 1": the day is no figure.
				if i+1 < len(toks) && toks[i+1].kind == tkNum && toks[i+1].v <= 31 && toks[i+1].dec == 0 {
					sc.skip = i + 1
				}
			case wi.kind == wkDir:
				a.addDir(wi.dir, head)
			case wi.kind == wkWeigh:
				a.headWeigh = a.headWeigh || head
			case wi.kind == wkOrdinal && wi.val <= 4:
				if i+1 < len(toks) && toks[i+1].kind == tkWord {
					switch toks[i+1].wi.kind {
					case wkQuarter:
						a.addPeriod(quarterBits(int(wi.val)), head)
					case wkHalf:
						if wi.val <= 2 {
							a.addPeriod(halfBits(int(wi.val)), head)
						}
					}
				}
			case wi.kind == wkNumber:
				if f, ok := sc.figure(i, lang, wi.val, 0, 0); ok {
					f.head = head
					a.addFig(f)
				}
			case (t.s == "Q" || t.s == "H") && i+1 < len(toks) && toks[i+1].kind == tkNum && toks[i+1].glued:
				n := int(toks[i+1].v)
				if t.s == "Q" && n >= 1 && n <= 4 {
					a.addPeriod(quarterBits(n), head)
				} else if t.s == "H" && n >= 1 && n <= 2 {
					a.addPeriod(halfBits(n), head)
				}
				sc.skip = i + 1
			}
		case tkNum:
			if i == sc.skip {
				continue
			}
			if bits, next := sc.cjkPeriod(i); bits != 0 {
				a.addPeriod(bits, head)
				sc.skip = next
				continue
			}
			if f, ok := sc.figure(i, lang, t.v, t.dec, t.zeros); ok {
				f.head = head
				sc.rangeEnd(&f, i, lang)
				a.addFig(f)
			}
		case tkCJK:
			sc.matchCJK(a, t.s, head)
		}
	}
	for _, e := range sc.ents[:sc.nents] {
		a.addEnt(e.id, head)
	}
}

func quarterBits(q int) uint16 { return 7 << (3 * (q - 1)) }
func halfBits(h int) uint16    { return 63 << (6 * (h - 1)) }

// monthRange is the bits of months m1 to m2.
func monthRange(m1, m2 int) uint16 {
	var b uint16
	for m := m1; m <= m2 && m <= 12; m++ {
		if m >= 1 {
			b |= 1 << (m - 1)
		}
	}
	return b
}

// rangeEnd makes f, the figure of the number token i, a range when a
// second number follows it as its upper end ("3.75% to 4%", "6-4",
// "von 2 bis 3 Prozent", "4,00 %-4,25 %"): two reports of one range
// quote both ends, and one end alone is another range's. "from 150% to
// 75%" is a change, not a range.
func (sc *scanner) rangeEnd(f *figure, i int, lang string) {
	toks := sc.toks[:sc.n]
	if i > 0 && toks[i-1].kind == tkWord && toks[i-1].wi.kind == wkFrom {
		return
	}
	j := i + 1
	for j < len(toks) && j <= i+3 {
		t := toks[j]
		if t.kind == tkSym && t.r == '-' || t.kind == tkWord && t.wi.kind == wkTo {
			break
		}
		if t.kind == tkNum || t.brk {
			return
		}
		j++
	}
	if j+1 >= len(toks) || j > i+3 || toks[j+1].kind != tkNum {
		return
	}
	n := toks[j+1]
	g, ok := sc.figure(j+1, lang, n.v, n.dec, n.zeros)
	if !ok || g.v < f.v || g.class != f.class && f.class != classCount {
		return
	}
	if f.class == classCount && g.class != classCount {
		// "3 to 4 percent": the unit of the upper end is the range's.
		f.v *= g.v / n.v
		f.class, f.cur, f.tol = g.class, g.cur, g.tol
	}
	f.hi = g.v
	f.weak = f.weak && g.weak
	f.rich = f.rich || g.rich
	sc.skip = j + 1
}

// cjkPeriod reads a month or a span of months written in digits in
// Chinese or Japanese: "8月", "4～6月期", "1至6月", "第2四半期". next is the
// last token it read.
func (sc *scanner) cjkPeriod(i int) (bits uint16, next int) {
	toks := sc.toks[:sc.n]
	n := int(toks[i].v)
	if toks[i].dec != 0 || n < 1 || n > 12 || i+1 >= len(toks) {
		return 0, i
	}
	t := toks[i+1]
	if t.kind == tkCJK && hasPrefix(t.s, "月") {
		return 1 << (n - 1), i
	}
	ordinal := i > 0 && toks[i-1].kind == tkCJK && hasSuffix(toks[i-1].s, "第")
	if t.kind == tkCJK && (hasPrefix(t.s, "四半期") || hasPrefix(t.s, "季度")) && n <= 4 && ordinal {
		return quarterBits(n), i
	}
	rangeMark := t.kind == tkSym && (t.r == '~' || t.r == '-' || t.r == '〜') ||
		t.kind == tkCJK && (t.s == "至" || t.s == "到")
	if rangeMark && i+3 < len(toks) && toks[i+2].kind == tkNum && toks[i+3].kind == tkCJK && hasPrefix(toks[i+3].s, "月") {
		m2 := int(toks[i+2].v)
		if m2 >= n && m2 <= 12 {
			return monthRange(n, m2), i + 2
		}
	}
	return 0, i
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// figure reads the figure of the number token i (or number word) of value
// v: its currency before it, its magnitude and unit after it. ok is false
// for a number that is no figure: a date, a year, a span of time, part of
// a name ("F-35", "H20").
func (sc *scanner) figure(i int, lang string, v float64, dec, zeros int8) (f figure, ok bool) {
	toks := sc.toks[:sc.n]
	t := toks[i]
	unit := math.Pow(10, -float64(dec))
	if dec == 0 {
		unit = math.Pow(10, float64(zeros))
	}
	mult := 1.0
	class := classCount
	var cur uint8
	word := t.kind == tkWord
	// Before it: a currency, "magnitude", or a name it belongs to.
	if i > 0 {
		p := toks[i-1]
		switch {
		case p.kind == tkSym && t.glued || p.kind == tkSym && (p.r == '$' || p.r == '€' || p.r == '£' || p.r == '¥'):
			switch p.r {
			case '$':
				cur = curUSD
			case '€':
				cur = curEUR
			case '£':
				cur = curGBP
			case '¥', '￥':
				cur = curJPY
				if lang == "zh" {
					cur = curCNY
				}
			case '-':
				// "F-35", "PAC-3": a designation after a name.
				if i > 1 && toks[i-2].kind == tkWord && toks[i-2].upper && !p.brk && t.glued {
					return f, false
				}
			}
		case p.kind == tkWord && t.glued && !word:
			switch {
			case p.s == "M":
				class = classQuake
			case p.s == "US" || p.s == "C" || p.s == "A":
			default:
				return f, false // "H20", "MI308", "A320"
			}
		case p.kind == tkWord && p.upper && (!p.first || isCompany(p.h)) && !t.glued && !t.brk && !word && dec == 0 && !t.group &&
			!sc.titleCase && p.wi.kind == wkNone && !nextIsUnit(toks, i):
			// "Boeing 787", "Ariane 6", "Windows 11": part of a name.
			return f, false
		case p.kind == tkWord && p.wi.kind == wkQuake,
			i > 1 && toks[i-2].kind == tkWord && toks[i-2].wi.kind == wkQuake:
			// "magnitude 6.9", "a magnitude of 7.0", "Stärke 6,9"
			class = classQuake
		case p.kind == tkWord && p.wi.kind == wkMonth && !word:
			if v <= 31 && dec == 0 {
				return f, false // "August 1"
			}
		case p.kind == tkCJK && !word:
			if r, _ := utf8.DecodeLastRuneInString(p.s); r == '第' {
				return f, false // an ordinal
			}
			if hasSuffix(p.s, "マグニチュード") || hasSuffix(p.s, "震级") || hasSuffix(p.s, "里氏") {
				class = classQuake
			}
			if hasSuffix(p.s, "震度") {
				class = classShindo
			}
		}
	}
	// After it: magnitude, then unit.
	j := i + 1
	for j < len(toks) {
		n := toks[j]
		if n.kind == tkWord {
			wi := n.wi
			if wi.kind == wkMag || n.glued && (n.s == "m" || n.s == "k" || n.s == "b") {
				switch {
				case wi.kind == wkMag && (n.s == "billion" || n.s == "billions") && (lang == "fr" || lang == "de"):
					mult *= 1e12
				case wi.kind == wkMag:
					mult *= wi.val
				case n.s == "m":
					mult *= 1e6
				case n.s == "k":
					mult *= 1e3
				case n.s == "b":
					mult *= 1e9
				}
				j++
				continue
			}
			if n.s == "billion" || n.s == "billions" {
				mult *= 1e9
				j++
				continue
			}
		}
		if n.kind == tkCJK {
			// 万, 亿, 万亿, and "1兆5000億円": a sum in two parts.
			rest, m := cjkMag(n.s)
			if m == 0 {
				break
			}
			mult *= m
			if rest == "" && j+2 < len(toks) && toks[j+1].kind == tkNum && toks[j+2].kind == tkCJK {
				if rest2, m2 := cjkMag(toks[j+2].s); m2 != 0 && m2 < m {
					low := toks[j+1]
					v = v*m/m2 + low.v
					mult = mult / m * m2
					unit = math.Pow(10, float64(low.zeros))
					if low.dec > 0 {
						unit = math.Pow(10, -float64(low.dec))
					}
					sc.skip = j + 1
					rest = rest2
				}
			}
			return sc.cjkUnit(f, v, unit, mult, class, cur, rest)
		}
		break
	}
	if j >= len(toks) {
		return finishFigure(f, v, unit, mult, class, cur, dec, word)
	}
	n := toks[j]
	switch n.kind {
	case tkSym:
		switch n.r {
		case '%':
			class = classPercent
		case '€':
			cur = curEUR
		case '$':
			cur = curUSD
		}
	case tkWord:
		wi := n.wi
		switch wi.kind {
		case wkUnit:
			if wi.unit == classSkip {
				return f, false
			}
			// "13.9 million tonnes", "25 basis points", "5-4 vote"
			if wi.unit == classIndex && j+1 < len(toks) && toks[j+1].wi.kind == wkUnit {
				break
			}
			class, mult = wi.unit, mult*wi.val
		case wkCurrency:
			cur = curCode(wi.val)
		case wkMonth:
			return f, false // "1 November", "24 juin"
		case wkPer:
			if j+1 < len(toks) && toks[j+1].wi.kind == wkCent {
				class = classPercent
			}
		default:
			switch {
			case n.glued && (n.s == "er" || n.s == "st" || n.s == "nd" || n.s == "rd" || n.s == "th" || n.s == "e" || n.s == "eme" || n.s == "ème"):
				return f, false // an ordinal or a date
			case n.glued && !word:
				return f, false // "5G", "737MAX"
			case wi.kind == wkQuarter || wi.kind == wkHalf:
			}
			// "basis points", "percentage points", "points de base"
			if n.s == "basis" || n.s == "percentage" {
				if j+1 < len(toks) && toks[j+1].wi.kind == wkUnit && toks[j+1].wi.unit == classIndex {
					class = classPoints
					if n.s == "basis" {
						mult *= 0.01
					}
				}
			}
		}
	case tkCJK:
		return sc.cjkUnit(f, v, unit, mult, class, cur, n.s)
	}
	return finishFigure(f, v, unit, mult, class, cur, dec, word)
}

// isCompany reports whether the folded word of hash h names a company
// ("Boeing" of "Boeing 787").
func isCompany(h uint64) bool {
	ids := gaz.words[h]
	return ids[0] != 0 && gaz.ents[ids[0]].kind == kindCompany
}

// nextIsUnit reports whether the number token i is followed by a unit,
// a magnitude, a currency or a percent sign: a measure, not a name.
func nextIsUnit(toks []atok, i int) bool {
	if i+1 >= len(toks) {
		return false
	}
	n := toks[i+1]
	if n.kind == tkSym {
		return n.r == '%' || n.r == '€' || n.r == '$'
	}
	switch n.wi.kind {
	case wkUnit, wkMag, wkCurrency, wkPer:
		return n.kind == tkWord
	}
	return false
}

func hasSuffix(s, p string) bool { return len(s) >= len(p) && s[len(s)-len(p):] == p }

// cjkMag reads the magnitudes at the start of s (万, 亿, 万亿): their
// product, 0 for none, and what follows them.
func cjkMag(s string) (rest string, m float64) {
	for s != "" {
		_, size := utf8.DecodeRuneInString(s)
		wi := lex.cjk[s[:size]]
		if wi.kind != wkMag {
			break
		}
		m = max(m, 1) * wi.val
		s = s[size:]
	}
	return s, m
}

// cjkUnit reads the unit at the start of s, the CJK text after a number.
func (sc *scanner) cjkUnit(f figure, v, unit, mult float64, class, cur uint8, s string) (figure, bool) {
	if hasPrefix(s, "月") || hasPrefix(s, "四半期") || hasPrefix(s, "季度") {
		return f, false
	}
	// The longest unit that s starts with.
	n := 0
	for k := 0; k < len(s) && n < lex.maxCJK; n++ {
		_, size := utf8.DecodeRuneInString(s[k:])
		k += size
		if wi, ok := lex.cjk[s[:k]]; ok {
			switch wi.kind {
			case wkUnit:
				if wi.unit == classSkip {
					return f, false
				}
				class, mult = wi.unit, mult*wi.val
			case wkCurrency:
				cur = curCode(wi.val)
			}
		}
	}
	return finishFigure(f, v, unit, mult, class, cur, 0, false)
}

func finishFigure(f figure, v, unit, mult float64, class, cur uint8, dec int8, word bool) (figure, bool) {
	if class == classCount && cur == 0 && mult == 1 && dec == 0 && v >= 1900 && v <= 2100 {
		return f, false // a year
	}
	f.weak = class == classCount && cur == 0 && mult == 1 && dec == 0 && v <= 12
	if cur != 0 {
		class = classMoney
		mult *= curRates[cur]
	}
	digits := 1 + int(math.Floor(math.Log10(v/unit)+1e-9))
	f.rich = !f.weak && (digits >= 2 || class == classMoney || class == classMass || class == classBarrels)
	f.v, f.tol, f.class, f.cur = v*mult, unit*mult/2, class, cur
	if word {
		f.tol = 0
	}
	return f, true
}

// Currency codes of figure.cur: indexes in curRates.
const (
	curUSD = 1 + iota
	curEUR
	curGBP
	curJPY
	curCNY
)

// curRates are US dollars per unit of each currency code; the lexicon
// names each currency by its rate.
var curRates = [...]float64{0, 1, 1.16, 1.33, 0.0067, 0.14, 1.25, 0.72, 0.0114, 0.0007, 0.65, 0.0125}

// curCode maps a rate of the lexicon to its code.
func curCode(rate float64) uint8 {
	for c := curUSD; c < len(curRates); c++ {
		if curRates[c] == rate {
			return uint8(c)
		}
	}
	return curUSD
}

// matchWords looks for a gazetteer alias ending at the word token i.
func (sc *scanner) matchWords(i int) {
	toks := sc.toks[:sc.n]
	t := toks[i]
	if len(t.s) <= 3 && t.upper {
		if ids, ok := gaz.caps[t.s]; ok {
			sc.addEnts(ids, i)
			return
		}
	}
	if !t.alias {
		return
	}
	// Words before it, back to the longest alias, without punctuation
	// between them.
	start := i
	for start > 0 && i-start+1 < gaz.maxSeq && toks[start-1].kind == tkWord && toks[start-1].alias && !toks[start].brk {
		start--
	}
	for from := start; from <= i; from++ {
		var h uint64
		for k := from; k <= i; k++ {
			h = seqHash(h, k-from, toks[k].h)
		}
		if ids, ok := gaz.words[h]; ok {
			// A longer alias covers the shorter ones it holds.
			for sc.nents > 0 && int(sc.ents[sc.nents-1].at) >= from {
				sc.nents--
			}
			sc.addEnts(ids, from)
			return
		}
	}
}

func (sc *scanner) addEnts(ids entityIDs, at int) {
	for _, id := range ids {
		if id != 0 && sc.nents < len(sc.ents) {
			sc.ents[sc.nents] = struct{ id, at uint16 }{id, uint16(at)}
			sc.nents++
		}
	}
}

// matchCJK finds gazetteer aliases, months written in numerals,
// quarters, halves and direction words in a run of CJK text, longest
// first.
func (sc *scanner) matchCJK(a *anchors, s string, head bool) {
	var prev, prev2 rune
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '月' {
			if m := cjkNumeral(prev); m > 0 {
				if m <= 2 && prev2 == '十' {
					m += 10
				}
				a.addPeriod(1<<(m-1), head)
			}
		}
		if cjkStarts[int(r)&(len(cjkStarts)-1)] {
			// Entities first, then the lexicon, longest match first.
			end, ids := 0, entityIDs{}
			k, n := i, 0
			for k < len(s) && n < max(gaz.maxCJK, lex.maxCJK) {
				_, sz := utf8.DecodeRuneInString(s[k:])
				k += sz
				n++
				if e, ok := gaz.cjk[s[i:k]]; ok {
					end, ids = k, e
				}
			}
			if end > 0 {
				for _, id := range ids {
					if id != 0 {
						a.addEnt(id, head)
					}
				}
				prev, prev2 = 0, 0
				i = end
				continue
			}
			k, n = i, 0
			var dir uint8
			for k < len(s) && n < lex.maxCJK {
				_, sz := utf8.DecodeRuneInString(s[k:])
				k += sz
				n++
				if wi, ok := lex.cjk[s[i:k]]; ok && wi.kind == wkDir {
					end, dir = k, wi.dir
				}
			}
			if end > 0 {
				a.addDir(dir, head)
				i = end
				prev, prev2 = 0, 0
				continue
			}
		}
		switch {
		case hasPrefix(s[i:], "上半年") || hasPrefix(s[i:], "上期"):
			a.addPeriod(halfBits(1), head)
		case hasPrefix(s[i:], "下半年") || hasPrefix(s[i:], "下期"):
			a.addPeriod(halfBits(2), head)
		case r == '季' && hasPrefix(s[i:], "季度"):
			if q := cjkNumeral(prev); q >= 1 && q <= 4 {
				a.addPeriod(quarterBits(q), head)
			}
		}
		prev2, prev = prev, r
		i += size
	}
}

// cjkStarts marks (by the low bits of the rune) the runes an alias or a
// direction word of CJK text starts with: most runes are not, and cost no
// lookup.
var cjkStarts = func() (t [1 << 14]bool) {
	for w := range gaz.cjk {
		r, _ := utf8.DecodeRuneInString(w)
		t[int(r)&(len(t)-1)] = true
	}
	for w, wi := range lex.cjk {
		if wi.kind == wkDir {
			r, _ := utf8.DecodeRuneInString(w)
			t[int(r)&(len(t)-1)] = true
		}
	}
	return t
}()

// tokenize splits s into the scanner's tokens.
func (sc *scanner) tokenize(s, lang string) {
	sc.n = 0
	space, brk, first := true, true, true
	commaDecimal := lang == "de" || lang == "fr"
	var buf [64]byte
	for i := 0; i < len(s) && sc.n < len(sc.toks); {
		if c := s[i]; c < utf8.RuneSelf && c|0x20 >= 'a' && c|0x20 <= 'z' {
			// Fast path: an ASCII word that ends in ASCII (most words),
			// lower-cased as it is copied.
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && s[j]|0x20 >= 'a' && s[j]|0x20 <= 'z' {
				j++
			}
			if j == len(s) || s[j] < utf8.RuneSelf {
				n := min(j-i, len(buf))
				for k := range n {
					buf[k] = s[i+k] | 0x20
				}
				sc.pushWord(s, i, j, buf[:n], space, brk, first)
				space, brk, first = false, false, false
				i = j
				if n == 1 && i+2 < len(s) && s[i] == '.' && s[i+1] >= 'A' && s[i+1] <= 'Z' && s[i+2] == '.' &&
					c >= 'A' && c <= 'Z' && (i+3 == len(s) || !isWordRune(rune(s[i+3]))) {
					// "U.S.", "U.K.": one word.
					sc.n--
					buf[1] = s[i+1] | 0x20
					sc.pushWord(s[i-1:i]+s[i+1:i+2], 0, 2, buf[:2], space, brk, first)
					i += 3
				}
				continue
			}
		}
		r, size := decode(s, i)
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == 0xa0 || r == 0x202f || r == 0x3000 || r == '\r':
			space = true
			i += size
		case isDigit(fold(r)):
			start := i
			n, dec, zeros := 0, int8(0), int8(0)
			point, grouped := false, false
			for i < len(s) {
				c, sz := decode(s, i)
				c = fold(c)
				if isDigit(c) {
					if n < len(buf) {
						buf[n] = byte(c)
						n++
					}
					if point {
						dec++
					}
					i += sz
					continue
				}
				// A separator: thousands or decimals.
				if (c == ',' || c == '.' || c == ' ' || c == 0xa0 || c == 0x202f) && !point {
					k := i + sz
					d := 0
					for k < len(s) && isDigit(rune(s[k])) {
						k++
						d++
					}
					if d == 0 {
						break
					}
					thousands := d == 3
					switch {
					case c == ' ' || c == 0xa0 || c == 0x202f:
						if !commaDecimal || d != 3 || n > 3 {
							thousands = false
						}
						if !thousands {
							break
						}
						grouped = true
						i += sz
						continue
					case (c == ',') != commaDecimal && thousands:
						grouped = true
						i += sz
						continue
					default:
						point = true
						if n < len(buf) {
							buf[n] = '.'
							n++
						}
						i += sz
						continue
					}
				}
				break
			}
			v := parseDecimal(buf[:n])
			if !point {
				for k := n - 1; k > 0 && buf[k] == '0'; k-- {
					zeros++
				}
			}
			sc.push(atok{s: s[start:i], kind: tkNum, v: v, dec: dec, zeros: zeros, glued: !space, brk: brk, group: grouped, first: first})
			space, brk, first = false, false, false
		case r >= 0x2e80 && isCJK(r):
			start := i
			for i < len(s) {
				c, sz := decode(s, i)
				if c < 0x2e80 || !isCJK(c) {
					break
				}
				i += sz
			}
			sc.push(atok{s: s[start:i], kind: tkCJK, glued: !space, brk: brk})
			space, brk, first = false, false, false
		case isWordRune(r):
			start := i
			n := 0
			for i < len(s) {
				c, sz := decode(s, i)
				if !isWordRune(c) || isDigit(fold(c)) || c >= 0x2e80 && isCJK(c) {
					if c >= 0x300 && unicode.Is(unicode.Mn, c) {
						i += sz
						continue
					}
					break
				}
				if n+utf8.UTFMax <= len(buf) {
					n += utf8.EncodeRune(buf[n:], fold(c))
				}
				i += sz
			}
			sc.pushWord(s, start, i, buf[:n], space, brk, first)
			space, brk, first = false, false, false
		default:
			f := fold(r)
			switch f {
			case '$', '€', '£', '¥', '%', '~', '〜':
				sc.push(atok{kind: tkSym, r: f, glued: !space, brk: brk})
				brk = true
			case '-':
				// Before a digit, a range, a score or a designation ("F-35");
				// between words, a compound ("EU-Kommission", "Neu-Delhi").
				if i+1 < len(s) && isDigit(rune(s[i+1])) {
					sc.push(atok{kind: tkSym, r: f, glued: !space, brk: brk})
				}
			case '\'', '’', '+':
				// "People's", "d'Angleterre", "OPEC+": inside a name.
			case '.', '!', '?', ':', ';', '。', '！', '？', '：', '；', '"', '“', '«':
				brk, first = true, true
			default:
				brk = true
			}
			space = space || f != '-' && f != '\'' && f != '’' && f != '+'
			i += size
		}
	}
}

// parseDecimal is the value of digits with at most one '.'.
func parseDecimal(b []byte) float64 {
	var m uint64
	frac := 0
	point := false
	for _, c := range b {
		if c == '.' {
			point = true
			continue
		}
		if m < 1e17 {
			m = m*10 + uint64(c-'0')
			if point {
				frac++
			}
		}
	}
	return float64(m) / math.Pow10(frac)
}

// pushWord adds the word s[start:end], folded into w.
func (sc *scanner) pushWord(s string, start, end int, w []byte, space, brk, first bool) {
	h := hashBytes(w)
	r, _ := utf8.DecodeRuneInString(s[start:end])
	sc.push(atok{s: s[start:end], kind: tkWord, h: h, wi: lex.lookup(h), alias: gaz.aliasWord(h),
		glued: !space, brk: brk, upper: isUpper(r), first: first})
}

func (sc *scanner) push(t atok) {
	if sc.n < len(sc.toks) {
		sc.toks[sc.n] = t
		sc.n++
	}
}
