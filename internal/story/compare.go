package story

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Reasons two reports are kept apart whatever their words share (see
// compareAnchors).
const (
	keptNone    = iota
	keptFigure  // a headline figure the other report contradicts
	keptFigures // figures of one kind, none in common
	keptPeriod  // another month or quarter
	keptEntity  // another country, body or company in the headline
	keptDirection
	keptLanguage // two languages: see compareAnchors
	keptWeigh    // one weighs a measure, the other reports one taken
)

var keptReasons = [...]string{
	keptFigure:    "a figure of the headline differs",
	keptFigures:   "their figures differ",
	keptPeriod:    "another month or period",
	keptEntity:    "another place, body or company in the headline",
	keptDirection: "opposite directions",
	keptLanguage:  "another language",
	keptWeigh:     "one headline weighs a measure, the other does not",
}

// agreement is what two reports' anchors share, or the first thing that
// contradicts them.
type agreement struct {
	kept     int // a kept* reason, keptNone when nothing contradicts
	rich     int // figures both quote (counted once each): rich ones,
	richHead int // (of them, quoted by both headlines)
	figs     int // others,
	weak     int // and small counts
	// anchored: a rich figure and a name of a headline in common, which
	// no look-alike without a contradiction shares.
	anchored bool
	headEnt  bool // both headlines name one entity
	ents     int  // entities both name
	period   bool
	sameDir  bool
	// what explains the decision: the figures and entities at stake.
	detail string
}

// Evidence weights: what an agreement adds to the word similarity. A
// figure both reports quote ("$100 billion", "411,000 bpd") is the
// strongest sign of one story; a shared name, month or direction less,
// each of them being common to many stories of a stream.
const (
	bonusRich     = 0.15 // one both headlines quote
	bonusRichBody = 0.06 // one quoted elsewhere
	bonusRich2    = 0.10 // a second one
	bonusFigure   = 0.08
	bonusWeak     = 0.02
	bonusEntity   = 0.05
	bonusAnchored = 0.05
	bonusPeriod   = 0.04
	bonusDir      = 0.02
	maxBonusEnt   = 3
)

func (g agreement) bonus() float64 {
	if g.rich == 0 && g.figs == 0 {
		// Names, months and directions alone are what look-alikes share:
		// the same company's next move, the same country's next storm.
		return 0
	}
	b := bonusFigure*float64(min(g.figs, 2)) + bonusWeak*float64(min(g.weak, 2)) +
		b2f(g.period)*bonusPeriod + b2f(g.sameDir)*bonusDir
	if g.rich+g.figs > 0 {
		b += bonusEntity*float64(min(g.ents, maxBonusEnt)) + b2f(g.anchored)*bonusAnchored
	}
	switch {
	case g.richHead > 0:
		b += bonusRich
	case g.rich > 0:
		b += bonusRichBody
	}
	if g.rich >= 2 {
		b += bonusRich2
	}
	return b
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// compareAnchors compares the anchors of two reports. Any of these keeps
// them apart, whatever else they share:
//
//   - a figure of one headline that the other report contradicts: it
//     quotes figures of that kind, none of them this one (2.7% in June
//     against 2.4% in May; 411,000 bpd against 548,000);
//   - figures of one kind on both sides and none in common anywhere;
//   - a month or period of one headline the other does not speak of,
//     though it names periods (or, when no headline names one, no period
//     in common);
//   - each headline naming a place, body or company of one kind that the
//     other report does not name at all (Japan's pledge and Germany's);
//   - opposite directions (a duty raised and the same duty cut, a ban
//     imposed and one lifted);
//   - one headline weighing a measure ("EU weighs minimum prices"), the
//     other not ("EU slaps duties of up to 35.3%");
//   - two languages, when both are known: a story is one language's
//     reporting of an event. Its words can only be compared within a
//     language, and anchors alone (an ECB cut to 2%, reported in German
//     and in French) would join every language's reports of every event
//     that has a figure and a name.
//
// With explain, detail says what matched or what kept them apart.
func compareAnchors(a, b *anchors, explain bool) agreement {
	var g agreement
	if a.lang != 0 && b.lang != 0 && a.lang != b.lang {
		return g.keep(keptLanguage, explain, func() string { return langString(a.lang) + " / " + langString(b.lang) })
	}
	// Figures.
	var matchedB uint16
	for i := range a.figs {
		fa := &a.figs[i]
		for k := range b.figs {
			if figuresMatch(fa, &b.figs[k]) {
				if matchedB&(1<<k) == 0 {
					switch {
					case fa.weak || b.figs[k].weak:
						g.weak++
					case fa.rich && b.figs[k].rich:
						g.rich++
						if fa.head && b.figs[k].head {
							g.richHead++
						}
					default:
						g.figs++
					}
					if explain {
						g.detail = appendDetail(g.detail, "figure "+fa.String())
					}
				}
				matchedB |= 1 << k
				break
			}
		}
	}
	if f := headFigureConflict(a, b); f != nil {
		return g.keep(keptFigure, explain, func() string { return f.String() })
	}
	if f := headFigureConflict(b, a); f != nil {
		return g.keep(keptFigure, explain, func() string { return f.String() })
	}
	if g.rich == 0 && g.figs == 0 && g.weak == 0 {
		if c, ok := commonClass(a, b); ok {
			return g.keep(keptFigures, explain, func() string { return className(c) })
		}
	}
	// Periods.
	switch {
	case a.headPeriods != 0 && b.periods != 0 && a.headPeriods&b.periods == 0,
		b.headPeriods != 0 && a.periods != 0 && b.headPeriods&a.periods == 0,
		a.headPeriods == 0 && b.headPeriods == 0 && a.periods != 0 && b.periods != 0 && a.periods&b.periods == 0:
		return g.keep(keptPeriod, explain, func() string { return periodString(a.periods) + " / " + periodString(b.periods) })
	}
	g.period = a.periods&b.periods != 0
	if g.period && explain {
		g.detail = appendDetail(g.detail, "period "+periodString(a.periods&b.periods))
	}
	// Entities.
	if ea, eb := uniqueHeadEntity(a, b); ea != 0 {
		return g.keep(keptEntity, explain, func() string { return gaz.name(ea) + " / " + gaz.name(eb) })
	}
	for _, id := range a.ents[:a.nEnts] {
		if hasID(b.ents[:b.nEnts], id) {
			g.ents++
			inA, inB := hasID(a.head[:a.nHead], id), hasID(b.head[:b.nHead], id)
			if inA || inB {
				g.anchored = g.rich > 0
			}
			g.headEnt = g.headEnt || inA && inB
			if explain {
				g.detail = appendDetail(g.detail, gaz.name(id))
			}
		}
	}
	// Directions: the headlines'. A summary moves more than one thing
	// ("duties up, quotas down").
	da, db := a.headDir, b.headDir
	if opposite(da, db, dirUp, dirDown) || opposite(da, db, dirImpose, dirLift) {
		return g.keep(keptDirection, explain, func() string { return dirString(da) + " / " + dirString(db) })
	}
	if a.headWeigh != b.headWeigh {
		return g.keep(keptWeigh, explain, func() string { return "weighs / done" })
	}
	g.sameDir = da != 0 && da == db
	if g.sameDir && explain {
		g.detail = appendDetail(g.detail, "direction "+dirString(da))
	}
	return g
}

// keep records what keeps two items apart; what is called only to
// explain.
func (g agreement) keep(reason int, explain bool, what func() string) agreement {
	g.kept = reason
	if explain {
		g.detail = keptReasons[reason] + ": " + what()
	}
	return g
}

func appendDetail(d, s string) string {
	if d == "" {
		return s
	}
	return d + ", " + s
}

// opposite reports whether one side moved only one way (x) and the other
// only the other way (y).
func opposite(a, b, x, y uint8) bool {
	return a&(x|y) == x && b&(x|y) == y || a&(x|y) == y && b&(x|y) == x
}

// headFigureConflict returns a figure of a's headline (not a small count)
// that b contradicts: b quotes figures of its kind, and none matches it.
func headFigureConflict(a, b *anchors) *figure {
	for i := range a.figs {
		fa := &a.figs[i]
		if !fa.head || fa.weak {
			continue
		}
		same, match := false, false
		for k := range b.figs {
			fb := &b.figs[k]
			if !comparable(fa, fb) {
				continue
			}
			same = true
			if figuresMatch(fa, fb) {
				match = true
				break
			}
		}
		if same && !match {
			return fa
		}
	}
	return nil
}

// commonClass returns a kind of figure (not small counts) both quote.
func commonClass(a, b *anchors) (uint8, bool) {
	for i := range a.figs {
		if a.figs[i].weak {
			continue
		}
		for k := range b.figs {
			if !b.figs[k].weak && b.figs[k].class == a.figs[i].class {
				return a.figs[i].class, true
			}
		}
	}
	return 0, false
}

// uniqueHeadEntity returns an entity of a's headline that b does not
// name and one of b's headline of the same kind that a does not name, or
// 0s. An entity of one headline that the other report names only in
// passing, in its summary, counts as its own when the other headline
// names one of its kind that the first report does not name at all:
// "Switzerland wins lower US levy" (recalling the EU's rate) is not "EU
// and US publish framework".
func uniqueHeadEntity(a, b *anchors) (uint16, uint16) {
	if ea, eb := uniqueHead(a, b, b.ents[:b.nEnts], a.ents[:a.nEnts], false); ea != 0 {
		return ea, eb
	}
	if ea, eb := uniqueHead(a, b, b.head[:b.nHead], a.ents[:a.nEnts], true); ea != 0 {
		return ea, eb
	}
	if eb, ea := uniqueHead(b, a, a.head[:a.nHead], b.ents[:b.nEnts], true); ea != 0 {
		return ea, eb
	}
	return 0, 0
}

// uniqueHead returns an entity of a's headline not in inB and one of b's
// headline not in inA, of one kind; with top, only entities that are not
// part of another (countries, not their cities: a storm's report names
// the cities it hit in any order).
func uniqueHead(a, b *anchors, inB, inA []uint16, top bool) (uint16, uint16) {
	for _, ea := range a.head[:a.nHead] {
		if hasID(inB, ea) || top && gaz.ents[ea].parent != 0 {
			continue
		}
		for _, eb := range b.head[:b.nHead] {
			if !hasID(inA, eb) && gaz.ents[ea].kind == gaz.ents[eb].kind && (!top || gaz.ents[eb].parent == 0) {
				return ea, eb
			}
		}
	}
	return 0, 0
}

// comparable reports whether two figures are of one kind: of one class,
// or one of them without a unit (a headline drops it: "Ifo-Index bei
// 88,4", "88,4 Punkte": a measure with decimals, not a count) and the
// other no sum (sums are converted).
func comparable(a, b *figure) bool {
	switch {
	case a.class == b.class:
		return true
	case a.class == classCount && a.v != math.Trunc(a.v):
		return b.class != classMoney
	case b.class == classCount && b.v != math.Trunc(b.v):
		return a.class != classMoney
	}
	return false
}

// figuresMatch reports whether two figures can be one: equal once
// rounded to the coarser one's last digit ("about $10bn" and "$9.8
// billion", "4,000" and "4,017.5"; a coarser figure may also be cut:
// "over 2.14 million" and 2,145,954), for sums in two currencies within
// 10% (exchange rates move), for a quake's magnitude within 0.15 (two
// agencies). Two figures of one precision must be equal: 2.4% and 2.5%
// are two months' inflation, 8.7 and 8.8 trillion yen two budgets.
func figuresMatch(a, b *figure) bool {
	if !comparable(a, b) {
		return false
	}
	d, m := math.Abs(a.v-b.v), math.Max(math.Abs(a.v), math.Abs(b.v))
	if d <= 1e-9*m {
		return true
	}
	if (a.hi != 0) != (b.hi != 0) {
		// One figure and a range: the figure is one of its ends ("up to
		// 36%" and "10-36%").
		r, one := a, b
		if b.hi != 0 {
			r, one = b, a
		}
		lo, hi := *r, *r
		lo.hi, hi.hi, hi.v = 0, 0, r.hi
		return figuresMatch(&lo, one) || figuresMatch(&hi, one)
	}
	if a.hi != 0 {
		lo, hi := *a, *b
		lo.hi, hi.hi = 0, 0
		hi2, lo2 := lo, hi
		hi2.v, lo2.v = a.hi, b.hi
		return figuresMatch(&lo, &hi) && figuresMatch(&hi2, &lo2)
	}
	if a.class == classMoney && a.cur != b.cur {
		return d <= 0.1*m
	}
	coarse := math.Max(a.tol, b.tol)
	if a.tol != b.tol {
		// A coarser figure may be cut rather than rounded ("over 2.14
		// million" for 2,145,954; "逾214万" for "214.6万").
		coarse *= 2
	}
	if d <= math.Min(coarse, 0.05*m)+1e-9*m {
		return true
	}
	if a.class == classQuake {
		return d <= 0.15+1e-9
	}
	return false
}

func className(c uint8) string {
	switch c {
	case classCount:
		return "counts"
	case classPercent:
		return "percentages"
	case classPoints:
		return "percentage points"
	case classMoney:
		return "sums"
	case classMass:
		return "tonnages"
	case classBarrels:
		return "barrels"
	case classQuake:
		return "magnitudes"
	case classIndex:
		return "index points"
	}
	return "measures"
}

// String formats a figure for -explain: "$3.42bn", "2.7%", "13.9 Mt".
func (f *figure) String() string {
	v := f.v
	switch f.class {
	case classPercent:
		return fmtNum(v) + "%"
	case classPoints:
		return fmtNum(v) + " pp"
	case classMoney:
		return "$" + fmtMag(v)
	case classMass:
		return fmtMag(v) + " t"
	case classBarrels:
		return fmtMag(v) + " bbl"
	case classQuake:
		return "M" + fmtNum(v)
	}
	return fmtMag(v)
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func fmtMag(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e12:
		return fmtNum(math.Round(v/1e10)/100) + "tn"
	case a >= 1e9:
		return fmtNum(math.Round(v/1e7)/100) + "bn"
	case a >= 1e6:
		return fmtNum(math.Round(v/1e4)/100) + "m"
	}
	return fmtNum(math.Round(v*100) / 100)
}

var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func periodString(p uint16) string {
	if p == 0 {
		return "none"
	}
	var b strings.Builder
	for m := range 12 {
		if p&(1<<m) != 0 {
			if b.Len() > 0 {
				b.WriteByte('+')
			}
			b.WriteString(monthNames[m])
		}
	}
	if bits.OnesCount16(p) > 3 {
		return b.String()
	}
	return b.String()
}

func langString(c uint32) string {
	var b []byte
	for ; c != 0; c >>= 8 {
		b = append([]byte{byte(c)}, b...)
	}
	return string(b)
}

func dirString(d uint8) string {
	var s []string
	for i, n := range []string{"up", "down", "imposed", "lifted"} {
		if d&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// String describes anchors, for tests and -explain.
func (a *anchors) String() string {
	var b strings.Builder
	b.WriteString("entities [")
	for i, id := range a.ents[:a.nEnts] {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(gaz.name(id))
		if hasID(a.head[:a.nHead], id) {
			b.WriteByte('*')
		}
	}
	b.WriteString("] figures [")
	for i := range a.figs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.figs[i].String())
		if a.figs[i].head {
			b.WriteByte('*')
		}
		if a.figs[i].weak {
			b.WriteByte('?')
		}
	}
	fmt.Fprintf(&b, "] period %s (headline %s) direction %s (headline %s)",
		periodString(a.periods), periodString(a.headPeriods), dirString(a.dir), dirString(a.headDir))
	return b.String()
}
