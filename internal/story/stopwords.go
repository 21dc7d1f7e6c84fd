package story

import "strings"

// stopSet is a set of folded (lower-case, accent-free) words that carry no
// story: function words, reporting verbs ("said", "sagte") and magnitude
// words ("million": the number beside it is kept).
type stopSet map[string]struct{}

func (s stopSet) has(w []byte) bool {
	_, ok := s[string(w)]
	return ok
}

func newStopSet(lists ...string) stopSet {
	s := stopSet{}
	for _, l := range lists {
		for w := range strings.FieldsSeq(l) {
			s[w] = struct{}{}
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

var (
	stopAll = newStopSet(stopEN, stopDE, stopFR)
	stopBy  = map[string]stopSet{
		"en": newStopSet(stopEN),
		"de": newStopSet(stopDE),
		"fr": newStopSet(stopFR),
	}
)

// stopWords is the list of lang, or all of them when lang is unknown. CJK
// text needs none: its kana particles are dropped by the tokenizer.
func stopWords(lang string) stopSet {
	if s, ok := stopBy[lang]; ok {
		return s
	}
	return stopAll
}
