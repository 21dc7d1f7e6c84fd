package story

import (
	"strconv"
	"strings"
)

// The lexicon of the anchor scanner (see anchors.go): the words that say
// which month, which unit, which magnitude, which direction a report
// speaks of, in English, German and French (folded: lower case, no
// accents), and their Chinese and Japanese counterparts.

// wordKind is what a word of the lexicon is.
type wordKind uint8

const (
	wkNone     wordKind = iota
	wkMonth             // val: 1 to 12
	wkMag               // val: the multiplier ("billion", "Mrd", "milliards")
	wkCurrency          // val: US dollars per unit
	wkUnit              // unit: the figure's class; val: its factor
	wkNumber            // val: a number written as a word ("three", "vier")
	wkDir               // dir: the direction bits
	wkOrdinal           // val: 1 to 4, for quarters and halves
	wkQuarter
	wkHalf
	wkQuake // "magnitude": the figure that follows is one
	wkPer   // "per" of "per cent", "pour" of "pour cent"
	wkCent
	wkAfter // "after", "nach", "après": a passing mention after a span of time
	wkRefer // "lendemain": a passing mention by itself
	wkFrom  // "from", "von", "de": a change, not a range, follows
	wkTo    // "to", "bis", "à": the upper end of a range follows
	wkWeigh // "weighs", "erwägt": a measure considered, not taken
)

type wordInfo struct {
	kind wordKind
	unit uint8 // wkUnit
	dir  uint8 // wkDir
	val  float64
}

// Figure classes: figures of one class can be compared; a figure's class
// is set by its unit.
const (
	classCount   uint8 = iota // no unit: jobs, dead, aircraft, votes
	classPercent              // %
	classPoints               // percentage points (basis points / 100)
	classMoney                // in US dollars
	classMass                 // in tonnes
	classBarrels
	classQuake    // magnitude
	classIndex    // index points ("88.4 points")
	classArea     // hectares
	classDistance // km
	classSpeed    // km/h
	classWeight   // kg
	classShindo   // Japanese seismic intensity
	classWind     // Chinese wind force (级)
	// classSkip marks a unit whose figures are not kept: spans of time
	// and dates ("200 days", "24日") say when, not what.
	classSkip = 255
)

// Direction bits: which way a report says something moved.
const (
	dirUp     = 1 << iota // raise, rise, hike, increase
	dirDown               // cut, lower, fall, reduce
	dirImpose             // impose, ban, suspend, halt
	dirLift               // lift, scrap, resume, end
)

// Approximate exchange rates, US dollars per unit: reports of one sum in
// two currencies meet within the tolerance of figuresMatch.
var currencyRates = map[string]float64{
	"usd": curRates[curUSD], "eur": curRates[curEUR], "gbp": curRates[curGBP], "jpy": curRates[curJPY],
	"cny": curRates[curCNY], "chf": 1.25, "cad": 0.72, "inr": 0.0114, "krw": 0.0007, "aud": 0.65, "rub": 0.0125,
}

const lexiconLatin = `
month:1 january jan janvier januar janner
month:2 february feb fevrier februar
month:3 mars marz
month:4 april apr avril
month:5 mai
month:6 june jun juin juni
month:7 july jul juillet juli
month:8 august aug aout
month:9 september sep septembre
month:10 october oct octobre oktober okt
month:11 november nov novembre
month:12 december dec decembre dezember dez
mag:1e3 thousand thousands tausend mille milliers
mag:1e6 million millions mln mn mio millionen millionen
mag:1e9 bn milliard milliards mrd milliarde milliarden
mag:1e12 trillion trillions tn billionen
currency:usd dollar dollars usd
currency:eur euro euros eur
currency:gbp pound pounds sterling gbp livres
currency:jpy yen jpy
currency:cny yuan renminbi cny rmb
currency:chf franc francs chf franken
currency:cad cad
currency:inr rupee rupees inr
currency:rub rouble roubles ruble rubles
unit:percent:1 percent prozent pct
unit:points:1 pp prozentpunkte prozentpunkt
unit:points:0.01 bp bps basispunkte basispunkten
unit:mass:1 tonnes tonne tons ton tonnen t
unit:mass:1000 kilotonnes kilotons kt
unit:mass:1e6 mt
unit:barrels:1 barrels barrel bpd barils baril fass
unit:index:1 points point punkte punkten punkt
unit:area:1 hectares hectare ha hektar
unit:distance:1 km kilometres kilometers kilometre kilometer
unit:weight:1 kg kilograms kilogrammes kilo kilos
unit:skip:1 seconds second secondes seconde sekunden sekunde days day jours jour tage tagen hours hour heures stunden minutes minuten weeks wochen semaines years ans jahre jahren months monate monaten mois
number:2 two zwei deux
number:3 three drei trois
number:4 four vier quatre
number:5 five funf cinq
number:6 six sechs
number:7 seven sieben sept
number:8 eight acht huit
number:9 nine neun neuf
number:10 ten zehn dix
number:12 twelve zwolf douze
ordinal:1 first erste ersten erstes premier premiere
ordinal:2 second zweite zweiten zweites deuxieme
ordinal:3 third dritte dritten drittes troisieme
ordinal:4 fourth vierte vierten viertes quatrieme
quarter quarter quarterly quartal quartals trimestre
half half halbjahr halbjahres semestre
quake magnitude starke
per per pour
cent cent
after after nach apres
refer lendemain nachdem
from from von de
to to bis a
weigh weigh weighs weighing mull mulls mulling consider considers considering erwagt erwagen pruft envisage envisagent etudie etudient
up add adds added adding unwind unwinds unwinding unwound boost boosts boosted expand expands expanded raise raises raised raising hike hikes hiked increase increases increased rise rises rose risen rising climb climbs climbed jump jumps jumped double doubles doubled doubling soar soars soared surge surges surged higher steigt stieg gestiegen steigen erhoht erhohen erhohte angehoben anheben verdoppeln verdoppelt verdoppelte zulegen legte hausse hausses augmente augmenter augmentation releve relever releves relevement grimpe grimper progresse progression double doubler doublement
down cut cuts cutting lower lowers lowered lowering reduce reduces reduced reducing reduction trim trims trimmed slash slashes slashed fall falls fell fallen drop drops dropped decline declines declined slip slips slipped shrink shrinks shrank shed sheds ease eases eased senkt senken gesenkt senkte sinkt sinken sank gesunken fallt fiel gefallen reduziert kurzt gekurzt streicht streichen baisse baisses abaisse abaisser reduit reduire recule recul chute diminue diminution ramene
impose impose imposes imposed imposing slap slaps slapped halt halts halted suspend suspends suspended barred restrict restricts restricted curb curbs curbed verhangt verbietet verbot stoppt aussetzen impose imposent suspend suspendu interdit interdire
lift lift lifts lifted lifting scrap scraps scrapped resume resumes resumed resuming remove removes removed end ends ended ending repeal repeals repealed aufheben aufgehoben abgeschafft schafft leve lever levee supprime supprimer suppression renonce annule annuler abandonne abandonner
`

// lexiconCJK: Chinese and Japanese words of the lexicon, matched inside
// CJK text.
const lexiconCJK = `
mag:1e3 千
mag:1e4 万 萬
mag:1e8 亿 億
mag:1e12 兆
currency:usd 美元 ドル 美金
currency:cny 元 人民币 人民元
currency:jpy 円 日元 日圆
currency:eur 欧元 ユーロ
currency:gbp 英镑 ポンド
unit:percent:1 ％
unit:points:1 个百分点 百分点 ポイント
unit:mass:1 吨 トン
unit:barrels:1 桶 バレル
unit:weight:1 キロ 公斤
unit:area:1 公顷 ヘクタール
unit:distance:1 公里 キロメートル
unit:count:1 人 名 辆 台 架 艘
unit:skip:1 年 日 天 时 時 小时 時間 週 周 カ月 か月 ヶ月 分 秒 岁 歳 年間 月間 四半期
unit:shindo:1 弱 強
unit:wind:1 级 級
up 引き上げ 利上げ 上昇 上回 増加 増 提高 上调 升至 上升 增加 上涨 回升 升 涨
down 引き下げ 利下げ 下落 下回 減少 減 削減 低下 下调 降至 下降 减少 下跌 降准 降息 降 跌 减
impose 禁止 停止 禁运 制裁 停産
lift 解除 再開 恢复 撤销 取消 撤回
`

// lexicon is the scanner's dictionary: alphabetic words by the hash of
// their folded form, CJK words by their text (longest first when they
// start alike).
type lexicon struct {
	words  map[uint64]wordInfo
	has    hashSet // the keys of words, to skip the map for most words
	cjk    map[string]wordInfo
	maxCJK int // longest CJK entry in runes
}

var lex = newLexicon()

func newLexicon() *lexicon {
	l := &lexicon{words: map[uint64]wordInfo{}, cjk: map[string]wordInfo{}}
	parse := func(text string, put func(w string, wi wordInfo)) {
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			spec := strings.Split(f[0], ":")
			var wi wordInfo
			switch spec[0] {
			case "month":
				wi.kind, wi.val = wkMonth, atof(spec[1])
			case "mag":
				wi.kind, wi.val = wkMag, atof(spec[1])
			case "currency":
				wi.kind, wi.val = wkCurrency, currencyRates[spec[1]]
			case "unit":
				wi.kind, wi.unit, wi.val = wkUnit, unitClass(spec[1]), atof(spec[2])
			case "number":
				wi.kind, wi.val = wkNumber, atof(spec[1])
			case "ordinal":
				wi.kind, wi.val = wkOrdinal, atof(spec[1])
			case "quarter":
				wi.kind = wkQuarter
			case "half":
				wi.kind = wkHalf
			case "quake":
				wi.kind = wkQuake
			case "per":
				wi.kind = wkPer
			case "cent":
				wi.kind = wkCent
			case "after":
				wi.kind = wkAfter
			case "refer":
				wi.kind = wkRefer
			case "from":
				wi.kind = wkFrom
			case "to":
				wi.kind = wkTo
			case "weigh":
				wi.kind = wkWeigh
			case "up":
				wi.kind, wi.dir = wkDir, dirUp
			case "down":
				wi.kind, wi.dir = wkDir, dirDown
			case "impose":
				wi.kind, wi.dir = wkDir, dirImpose
			case "lift":
				wi.kind, wi.dir = wkDir, dirLift
			default:
				panic("story: lexicon: unknown entry " + spec[0])
			}
			for _, w := range f[1:] {
				put(w, wi)
			}
		}
	}
	parse(lexiconLatin, func(w string, wi wordInfo) {
		h := hashBytes([]byte(w))
		if _, dup := l.words[h]; dup && wi.kind == wkDir {
			return // a direction does not override a unit or a month ("sept")
		}
		if strings.HasPrefix(w, "lift") {
			wi.dir |= dirUp // "lift a ban", but also "lift prices"
		}
		l.words[h] = wi
		l.has.add(h)
	})
	parse(lexiconCJK, func(w string, wi wordInfo) {
		l.cjk[w] = wi
		l.maxCJK = max(l.maxCJK, len([]rune(w)))
	})
	return l
}

// lookup is the entry of a folded word's hash, or none.
func (l *lexicon) lookup(h uint64) wordInfo {
	if !l.has.maybe(h) {
		return wordInfo{}
	}
	return l.words[h]
}

// hashSet is a one-hash Bloom filter of word hashes: most words of a text
// are in no list, and a bit test costs less than a map lookup.
type hashSet [1 << 10]uint64

func (s *hashSet) add(h uint64)        { s[h>>54] |= 1 << (h >> 48 & 63) }
func (s *hashSet) maybe(h uint64) bool { return s[h>>54]&(1<<(h>>48&63)) != 0 }

func unitClass(name string) uint8 {
	switch name {
	case "percent":
		return classPercent
	case "points":
		return classPoints
	case "mass":
		return classMass
	case "barrels":
		return classBarrels
	case "index":
		return classIndex
	case "area":
		return classArea
	case "distance":
		return classDistance
	case "weight":
		return classWeight
	case "count":
		return classCount
	case "skip":
		return classSkip
	case "shindo":
		return classShindo
	case "wind":
		return classWind
	}
	panic("story: lexicon: unknown unit " + name)
}

func atof(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic("story: lexicon: " + err.Error())
	}
	return v
}
