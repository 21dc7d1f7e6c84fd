package story

import "strings"

// stopSet is a set of folded (lower-case, accent-free) words that carry no
// story: function words, reporting verbs ("said", "sagte") and magnitude
// words ("million": the number beside it is kept). It holds the words'
// hashes, as tokenize computes them (hashBytes of the folded word).
// An open-addressing table: a lookup per word of every item is the hot
// path, and a Go map costs several times more here.
type stopSet struct {
	slots [stopSlots]uint64
	// vals holds, per slot, stopMark for a stop word or the stem hash a
	// demonym stands for (see demonyms): one probe answers both questions.
	vals [stopSlots]uint64
	// filter has a bit per (length, first two letters) of the words
	// held (see maybe): most content words skip the hash and the probe.
	filter [(maxStopLen + 1) << 10 / 64]uint64
}

const stopSlots = 1024 // a power of two, well above the largest list

// Values of a stop word in a stopSet. Besides plain stop words (stopMark),
// some say where a clause begins that refers back to another event (see
// tokenize) or stand for a number.
const (
	stopMark = 1
	// stopUnit is a span of time: "days", "Wochen", "mois".
	stopUnit = 2
	// stopAfter is "after", "nach", "après": right after a span of time
	// ("two days after", "zwei Wochen nach"), it opens a passing mention.
	stopAfter = 3
	// stopRefer opens a passing mention by itself ("au lendemain de").
	stopRefer = 4
	// stopOrdinal+n is an ordinal: "fourth", "vierte", "quatrième" are
	// the number n (up to maxOrdinal), as "4th", "4." and "4e" are.
	stopOrdinal = 16
	maxOrdinal  = 10
	// stopMax is the largest of these values: a demonym's stem hash is
	// never this small in practice.
	stopMax = stopOrdinal + maxOrdinal
)

// maxStopLen is the longest stop word in bytes: longer words skip the
// lookup. TestStopLen keeps it true.
const maxStopLen = 12

func (s *stopSet) has(h uint64) bool { v := s.lookup(h); return v != 0 && v <= stopMax }

// lookup returns stopMark (or another value up to stopMax) for a stop
// word, the stem hash of a demonym's country, or 0.
func (s *stopSet) lookup(h uint64) uint64 {
	for i := (h * 0x9e3779b97f4a7c15) >> 54; ; i = (i + 1) & (stopSlots - 1) {
		switch s.slots[i] {
		case h:
			return s.vals[i]
		case 0:
			return 0
		}
	}
}

// maybe reports whether an ASCII word of n bytes (2 to maxStopLen), whose
// first bytes, lower-cased, are the low bytes of w, may be in s. It has
// false positives (digits share their low five bits with letters), never
// false negatives.
func (s *stopSet) maybe(n int, w uint64) bool {
	k := uint(n)<<10 | uint(w&0x1f)<<5 | uint(w>>8&0x1f)
	return s.filter[k>>6]&(1<<(k&63)) != 0
}

func (s *stopSet) put(w string, v uint64) {
	if n := len(w); n >= 2 && n <= maxStopLen {
		k := uint(n)<<10 | uint(w[0]&0x1f)<<5 | uint(w[1]&0x1f)
		s.filter[k>>6] |= 1 << (k & 63)
	}
	h := hashBytes([]byte(w))
	i := (h * 0x9e3779b97f4a7c15) >> 54
	for s.slots[i] != 0 && s.slots[i] != h {
		i = (i + 1) & (stopSlots - 1)
	}
	s.slots[i], s.vals[i] = h, v
}

// newStopSet builds the table of the stop word lists, with the demonyms
// (stop words win over demonyms, as they did when looked up apart). Each
// of lists is a language's stop words, then its words of time spans,
// "after" words, words that refer back by themselves and ordinals (see
// the stop* values), in that order; the last two may be empty.
func newStopSet(lists ...[5]string) *stopSet {
	s := &stopSet{}
	for p := range strings.FieldsSeq(demonymsEN) {
		from, to, _ := strings.Cut(p, ":")
		s.put(from, hashBytes([]byte(stemString(to))))
	}
	for _, l := range lists {
		for k, v := range []uint64{stopMark, stopUnit, stopAfter, stopRefer} {
			for w := range strings.FieldsSeq(l[k]) {
				s.put(w, v)
			}
		}
		// One ordinal a field, each with its forms ("vierte:vierten").
		for n, f := range strings.Fields(l[4]) {
			for w := range strings.SplitSeq(f, ":") {
				s.put(w, stopOrdinal+uint64(n+1))
			}
		}
	}
	return s
}

const (
	stopEN = `a about above after again against all also although am an and any are around as at
	be been before being below between both but by can could did do does doing down during each
	either few for from further had has have having he her here hers him his how however i if in
	into is it its itself just last least less like made make makes many may me might more most much
	must my near neither new no nor not now of off on once one only or other our ours out over own
	per same she should since so some such than that the their theirs them then there these they
	this those though through to too under until up upon us very via was we were what when where
	whether which while who whom whose why will with within without would yet you your
	said say says saying told tells according reported reports week weeks year years day days
	today yesterday tomorrow time times million millions billion billions trillion percent cent
	mn bn m pct two three four five six seven eight nine ten first second third another several
	including include includes included amid among`
	stopDE = `aber alle allem allen aller alles als also am an ans auch auf aus bei beim bis bisher
	da dabei damit dann das dass dem den denen der des dessen die dies diese diesem diesen dieser
	dieses doch dort durch ein eine einem einen einer eines er es etwa fur gegen hat hatte haben
	hier ihr ihre im in ist jetzt kann mit nach nicht noch nun nur ob oder ohne sein seine seit sich
	sie sind so soll sollen uber um und uns unter vom von vor war waren warde was weil wenn werden
	wie wieder wird wurde wurden zu zum zur zwei drei sagte sagt teilte mit laut millionen milliarden
	prozent jahr jahres woche heute`
	stopFR = `a au aux avec ce ces cet cette comme dans de des du elle en entre est et etait eu il
	ils la le les leur leurs lui mais me meme mes moi mon ne ni nos notre nous on ont ou par pas
	pour qu que qui sa sans se ses si son sont sur ta te tes ton tous tout tres un une vos votre
	vous deux trois apres avant selon depuis a ete sera fait dit declare annonce millions milliards
	million milliard pour cent an ans annee semaine aujourd hui lors plus moins`
)

// Words that mark a passing mention of another event (see clause), and
// ordinals, per language: the extra fields of newStopSet. All of them are
// stop words: spans of time ("weeks", "Monaten", "jours") say no more of a
// story than "week" and "Jahr" did.
var (
	langEN = [5]string{stopEN,
		`day days week weeks month months year years`,
		`after before`,
		``,
		`first second third fourth fifth sixth seventh eighth ninth tenth`}
	langDE = [5]string{stopDE,
		`tag tage tagen woche wochen monat monate monaten jahr jahre jahren jahres`,
		`nach vor`,
		``,
		// Not "achten" ("to respect").
		`erste:ersten:erster:erstes:erstem zweite:zweiten:zweiter:zweites:zweitem
		dritte:dritten:dritter:drittes:drittem vierte:vierten:vierter:viertes:viertem
		funfte:funften:funfter:funftes:funftem sechste:sechsten:sechster:sechstes:sechstem
		siebte:siebten:siebter:siebtes:siebtem achte:achter:achtes:achtem
		neunte:neunten:neunter:neuntes:neuntem zehnte:zehnten:zehnter:zehntes:zehntem`}
	langFR = [5]string{stopFR,
		`jour jours semaine semaines mois an ans annee annees`,
		`apres avant`,
		`lendemain`,
		// Not "premier": "Premier ministre".
		`premiere:premieres deuxieme:deuxiemes troisieme:troisiemes quatrieme:quatriemes
		cinquieme:cinquiemes sixieme:sixiemes septieme:septiemes huitieme:huitiemes
		neuvieme:neuviemes dixieme:dixiemes`}
)

var (
	stopAll = newStopSet(langEN, langDE, langFR)
	stopEn  = newStopSet(langEN)
	stopDe  = newStopSet(langDE)
	stopFr  = newStopSet(langFR)
)

// stopWords is the list of lang, or all of them when lang is unknown. CJK
// text needs none: its kana particles are dropped by the tokenizer.
func stopWords(lang string) *stopSet {
	switch lang {
	case "en":
		return stopEn
	case "de":
		return stopDe
	case "fr":
		return stopFr
	}
	return stopAll
}

// demonyms maps nationality words whose stem differs from their country's
// to the country, so that "Polish jets" and "jets over Poland", or
// "Chinese curbs" and "China's curbs", share a word. (Where the stems
// already meet, as Russian/Russia or Canadian/Canada, no entry is needed.)
const demonymsEN = `polish:poland danish:denmark dane:denmark danes:denmark dutch:netherlands
	swiss:switzerland chinese:china french:france british:britain briton:britain britons:britain
	spanish:spain swedish:sweden swede:sweden swedes:sweden norwegian:norway norwegians:norway
	turkish:turkey greek:greece greeks:greece thai:thailand finnish:finland irish:ireland
	italian:italy italians:italy iranian:iran iranians:iran iraqi:iraq iraqis:iraq
	peruvian:peru cuban:cuba filipino:philippines filipinos:philippines emirati:emirates
	burmese:myanmar welsh:wales scottish:scotland scots:scotland english:england`

// stemString is the stem tokenize takes of a folded ASCII word.
func stemString(w string) string {
	switch {
	case len(w) == prefixLen && w[4] == 's' && w[3] != 's':
		return w[:4]
	case len(w) > prefixLen:
		return w[:prefixLen]
	}
	return w
}
