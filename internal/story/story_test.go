package story

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAssign(t *testing.T) {
	t.Parallel()
	type doc struct {
		id, title, text, lang string
		at                    time.Duration // after t0
	}
	tests := []struct {
		name string
		a, b doc
		same bool
	}{
		{
			name: "reworded report of one story",
			a:    doc{"a", "Chile's Codelco and SQM seal lithium partnership", "The state copper miner and SQM agreed to jointly run the Atacama salt flat lithium operations from 2031, the companies said.", "en", 0},
			b:    doc{"b", "Codelco, SQM finalise Atacama lithium joint venture", "<p>Chile&#8217;s Codelco will control the joint venture that takes over lithium extraction in the Atacama salt flat from 2031, SQM said on Friday.</p>", "en", 3 * time.Hour},
			same: true,
		},
		{
			name: "same subject, different story",
			a:    doc{"a", "Chile's Codelco and SQM seal lithium partnership", "The state copper miner and SQM agreed to jointly run the Atacama salt flat lithium operations from 2031, the companies said.", "en", 0},
			b:    doc{"b", "Argentina approves Rio Tinto lithium project in Salta", "The provincial government gave environmental approval for the Rincon brine project, which aims to produce 60,000 tonnes of lithium carbonate a year.", "en", time.Hour},
		},
		{
			name: "one story outside the window",
			a:    doc{"a", "Chile's Codelco and SQM seal lithium partnership", "The state copper miner and SQM agreed to jointly run the Atacama salt flat lithium operations from 2031, the companies said.", "en", 0},
			b:    doc{"b", "Codelco, SQM finalise Atacama lithium joint venture", "Chile's Codelco will control the joint venture that takes over lithium extraction in the Atacama salt flat from 2031, SQM said.", "en", 72 * time.Hour},
		},
		{
			name: "accents and case folded",
			a:    doc{"a", "Défense : la France commande 42 Rafale supplémentaires", "Le ministère des Armées a signé la commande de 42 avions Rafale auprès de Dassault Aviation, livrables à partir de 2027.", "fr", 0},
			b:    doc{"b", "DEFENSE: LA FRANCE COMMANDE 42 RAFALE SUPPLEMENTAIRES", "Dassault Aviation livrera les 42 Rafale commandés par le ministère des Armées à partir de 2027.", "fr", time.Hour},
			same: true,
		},
		{
			name: "Chinese by character bigrams",
			a:    doc{"a", "中国与巴西签署稀土合作协议", "两国政府在北京签署稀土勘探和加工合作协议，巴西将扩大对华稀土出口。", "zh", 0},
			b:    doc{"b", "巴西与中国达成稀土合作协议", "中巴两国签署协议，在稀土勘探和加工领域开展合作。", "zh", time.Hour},
			same: true,
		},
		{
			name: "too little text to match",
			a:    doc{"a", "Live updates", "", "en", 0},
			b:    doc{"b", "Live updates", "", "en", time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := New(Options{})
			ida, newA := x.Assign(Doc{ID: tt.a.id, Title: tt.a.title, Text: tt.a.text, Lang: tt.a.lang, At: t0.Add(tt.a.at)})
			if !newA || ida != "a" {
				t.Fatalf("first item: story %q new %v, want a new story named a", ida, newA)
			}
			idb, newB := x.Assign(Doc{ID: tt.b.id, Title: tt.b.title, Text: tt.b.text, Lang: tt.b.lang, At: t0.Add(tt.b.at)})
			if got := idb == ida; got != tt.same || newB == tt.same {
				t.Errorf("second item: story %q (new %v); same story = %v, want %v (similarity %.3f)", idb, newB, got, tt.same,
					similarity(sign(tt.a.title, tt.a.text, tt.a.lang, nil).toks, sign(tt.b.title, tt.b.text, tt.b.lang, nil).toks))
			}
		})
	}
}

func TestAssignSameItemTwice(t *testing.T) {
	t.Parallel()
	x := New(Options{})
	d := Doc{ID: "item-1", Title: "Storm closes ports along the Baltic coast", Text: "Ferries between Germany and Sweden were cancelled as winds reached 120 km/h.", At: t0}
	first, _ := x.Assign(d)
	// A redelivered item keeps its story even if another story came first.
	other := Doc{ID: "item-0", Title: "Baltic storm: ferries cancelled, ports closed", Text: "Winds of 120 km/h cancelled ferries between Germany and Sweden.", At: t0}
	x.Assign(other)
	again, isNew := x.Assign(d)
	if again != first || isNew {
		t.Errorf("same item again: story %q new %v, want %q", again, isNew, first)
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	x := New(Options{MaxEntries: 100, Window: time.Hour})
	for i := range 1000 {
		x.Assign(Doc{ID: fmt.Sprint(i), Title: fmt.Sprintf("Item %d about topic %d", i, i%37), Text: fmt.Sprintf("Words w%d x%d y%d z%d", i, i*7, i*13, i%11), At: t0.Add(time.Duration(i) * time.Second)})
	}
	if n := x.Len(); n > 100 {
		t.Errorf("index holds %d items, cap 100", n)
	}
	// Past the window everything goes, whatever the cap.
	x.Assign(Doc{ID: "late", Title: "A much later item with its own words", Text: "Nothing like the others at all here", At: t0.Add(48 * time.Hour)})
	if n := x.Len(); n != 1 {
		t.Errorf("index holds %d items after the window passed, want 1", n)
	}
	live := 0
	for _, e := range x.bands.slots {
		if e.key != 0 && e.seq >= x.head {
			live++
		}
	}
	if live > Bands {
		t.Errorf("%d band values lead to one item", live)
	}
	if n := x.bands.n; n > 2*Bands*100+4096 {
		t.Errorf("band table holds %d entries for at most 100 items", n)
	}
}

func TestConcurrentAssign(t *testing.T) {
	t.Parallel()
	x := New(Options{})
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() {
			ids[i], _ = x.Assign(Doc{ID: fmt.Sprint(i), Title: "Storm closes ports along the Baltic coast", Text: fmt.Sprintf("Ferries between Germany and Sweden were cancelled as winds reached 120 km/h (report %d).", i), At: t0})
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent reports of one story got ids %v", ids)
		}
	}
}

// TestFixtureQuality checks pairwise precision and recall on the labelled
// fixtures, each fed through a fresh index in publication (else file)
// order:
//
//   - stories.jsonl: reworded pairs of one story (en, de, fr, ja, zh) and
//     look-alikes on the same subject, some deliberately close to
//     boilerplate (two EU duty decisions, two Chinese control notices).
//   - tune.jsonl: pairs and triples of one event by different outlets, and
//     look-alikes with the same actors and vocabulary (two Entity List
//     additions, two Chinese technology export bans, two Rheinmetall
//     shell plants, two drone incidents in eastern Poland); the weights
//     and Threshold were chosen on it.
//   - heldout.jsonl: the same kind, written before tuning and never tuned
//     on: what the index does with news it was not fitted to. (The rules
//     for passing mentions, ordinals and headline names were then drawn
//     from its errors: it is no longer unseen.)
//   - heldout2.jsonl: the same kind again, harder (follow-ups naming the
//     event they follow, the same actors at another place or in another
//     round), written before those rules and never tuned on. (Reading a
//     product's number as part of its name was then drawn from its
//     errors.)
//   - heldout3.jsonl: the same kind again (trade, export controls,
//     minerals, defence, sport, weather, crime, markets; en, de, fr, ja,
//     zh), written before those two rules and never tuned on.
//
// The aim is precision 0.95 and recall 0.90 on each. Where a file falls
// short, its floor is today's quality (a regression guard) and the
// comment says why.
func TestFixtureQuality(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file                    string
		minPrecision, minRecall float64
	}{
		// Scores with anchors (before them: 0.87 / 1.00).
		{"testdata/stories.jsonl", 0.95, 0.95},
		// 0.92 / 0.69: two Chinese technology bans in the same official
		// wording merge (nothing but their goods tells them apart), and
		// some reworded pairs share too little (a German pair with four
		// words in common, two reports of one drone crash with one place
		// name).
		{"testdata/tune.jsonl", 0.90, 0.65},
		{"testdata/heldout.jsonl", 0.95, 0.95},
		// 1.00 / 0.91: a heist told by different details.
		{"testdata/heldout2.jsonl", 0.95, 0.90},
		// 1.00 / 0.77 (0.88 / 0.54 before anchors): pairs that share no
		// figure and few words stay apart (a tennis final told by its
		// score in one report, a shooting, a trade treaty).
		{"testdata/heldout3.jsonl", 0.95, 0.75},
		// 1.00 / 0.80 (0.29 / 0.16 before anchors): look-alikes of every
		// kind (the same duty raised and cut, one statistic for two
		// months, one pledge by two countries, two races' winners, one
		// measure at two values) in five languages. Missed: pairs with
		// no figure in common (a rate cut told as "2%" and as "2
		// percent" with nothing else shared, a flood's four dead).
		{"testdata/hard_tune.jsonl", 0.95, 0.75},
		// 1.00 / 0.76; scored once unseen at 0.85 / 0.76 (0.58 / 0.24
		// before anchors): 72 reports of the kind of hard_tune written
		// apart from it. Its two false pairs were then fixed, so it is no
		// longer unseen: a budget of 8.7 trillion yen joined the 8.8
		// trillion request through a third report's "about $60 billion",
		// which matches both (now every member of a story must agree
		// with a report that joins it), and a Japan-Philippines pact
		// written "日菲" joined a Philippines-New Zealand one (pairs of
		// one-character country names now name both).
		{"testdata/heldout_hard.jsonl", 0.95, 0.70},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			fx := readJSONL(t, tt.file)
			gold := map[string]string{}
			for _, f := range fx {
				gold[f.ID] = f.Group
			}
			s := reportScore(t, gold, assignAll(t, fx, Options{}))
			if s.Precision < tt.minPrecision || s.Recall < tt.minRecall {
				t.Errorf("precision %.3f recall %.3f, want at least %.2f and %.2f", s.Precision, s.Recall, tt.minPrecision, tt.minRecall)
			}
		})
	}
}

func TestScorePairs(t *testing.T) {
	t.Parallel()
	gold := map[string]string{"a": "g1", "b": "g1", "c": "", "d": "g2", "e": "g2"}
	pred := map[string]string{"a": "1", "b": "1", "c": "1", "d": "4", "e": "5"}
	s := scorePairs(gold, pred)
	if s.TP != 1 || s.FP != 2 || s.FN != 1 {
		t.Errorf("tp %d fp %d fn %d, want 1 2 1", s.TP, s.FP, s.FN)
	}
}

// TestLookAlikes: a report of another event told in the same words (the
// look-alike) stays apart from a story, while a reworded report of the
// story joins it. Each case is what one rule is for.
func TestLookAlikes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                       string
		background                 []Doc // assigned first, to set word frequencies
		story, lookAlike, reworded Doc
	}{
		{
			name:      "different goods at different rates (figures)",
			story:     Doc{ID: "wire", At: t0, Title: "Brazil raises import duty on steel wire rod to 25%", Text: "The foreign trade chamber lifted the tariff on steel wire rod from 10.8% to 25% for a year, for imports above a quota of 64,000 tonnes."},
			lookAlike: Doc{ID: "tubes", At: t0, Title: "Brazil raises import duty on steel tubes to 35%", Text: "The foreign trade chamber lifted the tariff on steel tubes from 14% to 35% for a year, for imports above a quota of 9,000 tonnes."},
			reworded:  Doc{ID: "wire2", At: t0, Title: "Brazilian tariff on wire rod imports jumps to 25%", Text: "Gecex approved the rise from 10.8%, which applies to shipments beyond 64,000 tonnes."},
		},
		{
			name:      "one rocket, two missions (numbers in names are no figures)",
			story:     Doc{ID: "aurora", At: t0, Title: "Falcon 9 puts Aurora weather satellite into orbit from Vandenberg", Text: "The rocket lifted off on Tuesday and placed the European weather satellite in a polar orbit on its fourth mission of the year, the operator said."},
			lookAlike: Doc{ID: "argos", At: t0, Title: "Falcon 9 launches Argos radar satellite from Vandenberg", Text: "The rocket lifted off on Thursday and placed the French radar satellite in a polar orbit on its fifth mission of the year, the operator said."},
			reworded:  Doc{ID: "aurora2", At: t0, Title: "Aurora weather satellite in orbit after Vandenberg launch", Text: "The European satellite reached its polar orbit after Tuesday's lift-off on a Falcon 9, the rocket's fourth mission of the year."},
		},
		{
			name:      "two months of one series (headline figures)",
			story:     Doc{ID: "aug", At: t0, Title: "Thai exports rise 7% in August on electronics demand", Text: "Shipments abroad grew from a year earlier despite the 19% US tariff on Thai goods, the commerce ministry said, led by electronics and rubber."},
			lookAlike: Doc{ID: "sep", At: t0, Title: "Thai exports rise 3% in September", Text: "Sales of rice and cars abroad slowed under the 19% US tariff on Thai goods, though electronics shipments held up, the commerce ministry said."},
			reworded:  Doc{ID: "aug2", At: t0, Title: "Thailand's August shipments abroad up 7%", Text: "Electronics and rubber drove the rise, the commerce ministry said, even as Thai goods face a 19% US tariff."},
		},
		{
			name:      "two airports (headline names)",
			story:     Doc{ID: "billund", At: t0, Title: "Fog halts flights at Billund airport", Text: "Dense fog grounded all departures at Billund on Tuesday morning, and incoming flights were diverted to other Danish airports, the operator said."},
			lookAlike: Doc{ID: "esbjerg", At: t0, Title: "Thick fog closes Esbjerg airport", Text: "The west coast airport suspended departures on Tuesday morning as dense fog settled over Esbjerg; incoming flights were diverted, the operator said."},
			reworded:  Doc{ID: "billund2", At: t0, Title: "Billund departures grounded as fog blankets Jutland", Text: "The airport in Billund said dense fog had grounded departures on Tuesday morning and arriving flights were sent to other airports."},
		},
		{
			// Once the index has seen several monthly trade-figure stories,
			// their shared vocabulary weighs little.
			name: "two countries' monthly trade figures (rarity)",
			background: []Doc{
				{Title: "Korea's exports rise for a third month on chip shipments", Text: "Outbound shipments grew 6% in October from a year earlier, trade ministry data showed, while imports fell and the trade surplus widened."},
				{Title: "German exports unexpectedly fall in September", Text: "Shipments abroad dropped 1.2% from the previous month, the statistics office said, with exports to the United States down sharply; the trade surplus narrowed."},
				{Title: "Vietnam's trade surplus hits a record as electronics exports surge", Text: "Exports rose 14% in the first ten months, customs figures showed, with shipments to the United States up by a fifth."},
				{Title: "Taiwan export orders beat forecasts", Text: "Orders rose 9% in September from a year earlier on demand for AI servers, the economy ministry said; shipments to the United States led the gains."},
				{Title: "India's trade deficit widens as gold imports jump", Text: "Imports rose 16% in October while exports fell, commerce ministry figures showed; shipments to the United States slowed."},
			},
			story:     Doc{ID: "billund", At: t0, Title: "Fog halts flights at Billund airport", Text: "Dense fog grounded all departures at Billund on Tuesday morning, and incoming flights were diverted to other Danish airports, the operator said."},
			lookAlike: Doc{ID: "esbjerg", At: t0, Title: "Thick fog closes Esbjerg airport", Text: "The west coast airport suspended departures on Tuesday morning as dense fog settled over Esbjerg; incoming flights were diverted, the operator said."},
			reworded:  Doc{ID: "billund2", At: t0, Title: "Billund departures grounded as fog blankets Jutland", Text: "The airport in Billund said dense fog had grounded departures on Tuesday morning and arriving flights were sent to other airports."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := New(Options{})
			for i, d := range tt.background {
				d.ID, d.At = fmt.Sprintf("bg%d", i), t0
				x.Assign(d)
			}
			id, _ := x.Assign(tt.story)
			if got, _ := x.Assign(tt.lookAlike); got == id {
				t.Errorf("the look-alike %s joined story %q (similarity %.3f)", tt.lookAlike.ID, id,
					x.similarityDocs(tt.story, tt.lookAlike))
			}
			if got, _ := x.Assign(tt.reworded); got != id {
				t.Errorf("the reworded report %s got story %q, want %q", tt.reworded.ID, got, id)
			}
		})
	}
}

// TestModelNumbers: a number that is part of a name is no figure; a count,
// a measure, a score or a date next to a capitalised word still is.
func TestModelNumbers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		title, lang, number string
		figure              bool
	}{
		{"Ariane 6 lifts off from Kourou", "fr", "6", false},
		{"Airline grounds its Boeing 787 fleet", "en", "787", false},
		{"Norway receives more F-35 jets", "en", "35", false},
		{"Army orders Patriot PAC-3 interceptors", "en", "3", false},
		{"Heer bekommt neue Leopard-2-Panzer", "de", "2", false},
		{"Satellite Sentinel-1D reaches orbit", "en", "1", false},
		{"Magnitude 7.4 quake hits Mindanao", "en", "74", true},
		{"Madrid beat Barcelona 2-1 in the league", "en", "2", true},
		{"Tariffs on Brazil 50% higher from Friday", "en", "50", true},
		{"Talks resume on October 9 in Geneva", "en", "9", true},
		{"A 10-year deal for Lockheed", "en", "10", true},
		{"Carmaker recalls 200 cars in Ohio", "en", "200", true},
		// Title Case capitalises every word: "Recalls" names nothing.
		{"Tesla Axes 200 Jobs At Ohio Plant", "en", "200", true},
	} {
		plain := hashBytes([]byte(tt.number)) >> 8
		var figure, model bool
		for _, tok := range sign(tt.title, "", tt.lang, nil).toks {
			switch tok.id() {
			case plain:
				figure = tok.figure()
			case (hashBytes([]byte(tt.number)) ^ modelSalt) >> 8:
				model = !tok.figure()
			}
		}
		if figure != tt.figure || model == tt.figure {
			t.Errorf("%q: %s read as a figure %v, as part of a name %v; want a figure %v", tt.title, tt.number, figure, model, tt.figure)
		}
	}
}

// TestCommonWords: the vocabulary of every story is common, what names
// one story is not.
func TestCommonWords(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text, lang string
		common     bool
	}{
		{"government officials announced new tariffs on imports", "en", true},
		{"Regierung kündigte Zölle an", "de", true},
		{"le gouvernement annonce des droits de douane", "fr", true},
		{"商务部发布公告", "zh", true},
		{"Piotech Osiny Baisogala dysprosium 1,970", "en", false},
	} {
		for _, tok := range sign(tt.text, "", tt.lang, nil).toks {
			if tok.common() != tt.common {
				t.Errorf("%q: a token is common=%v, want %v", tt.text, tok.common(), tt.common)
			}
		}
	}
}

func TestStopLen(t *testing.T) {
	t.Parallel()
	for _, lang := range [][5]string{langEN, langDE, langFR} {
		for _, l := range lang {
			for w := range strings.FieldsFuncSeq(l, func(r rune) bool { return r == ':' || r == ' ' || r == '\n' || r == '\t' }) {
				if len(w) > maxStopLen {
					t.Errorf("stop word %q is longer than maxStopLen %d", w, maxStopLen)
				}
			}
		}
	}
}

// TestSignatureFolds: forms that must meet as one token.
func TestSignatureFolds(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b, lang string }{
		{"Défense", "DEFENSE", "fr"},
		{"defence", "defended", "en"},
		{"tariffs", "tariff", "en"},
		{"tanks", "tank", "en"},
		{"Polish", "Poland", "en"},
		{"Chinese", "China's", "en"},
		{"$400m", "400 million", "en"},
		{"26,000", "26000", "en"},
		{"１２０", "120", "ja"},
		{"Zölle", "zolle", "de"},
		{"レアアース", "レアアース", "ja"},
		// Particles and function characters end a CJK word.
		{"半導体の製造装置", "半導体 製造装置", "ja"},
		{"原产于美国", "原产 美国", "zh"},
	}
	for _, tt := range tests {
		a, b := sign(tt.a, "", tt.lang, nil), sign(tt.b, "", tt.lang, nil)
		if len(a.toks) == 0 || similarity(a.toks, b.toks) != 1 {
			t.Errorf("%q and %q: %d and %d tokens, similarity %.2f, want the same tokens", tt.a, tt.b, len(a.toks), len(b.toks), similarity(a.toks, b.toks))
		}
	}
	for _, w := range []string{"the", "said", "und", "les", "の"} {
		if s := sign(w, "", "", nil); len(s.toks) != 0 {
			t.Errorf("%q gave %d tokens, want none (a stop word)", w, len(s.toks))
		}
	}
}

// TestOrdinals: an ordinal is a figure, the same in words and in digits,
// and not a common word (the common lists must not hold one).
func TestOrdinals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ word, digits, lang string }{
		{"fourth", "4th", "en"},
		{"vierte", "4.", "de"},
		{"quatrième", "4e", "fr"},
		{"第四", "4", "zh"},
		{"first", "1st", "en"},
		{"première", "1re", "fr"},
		{"ersten", "1.", "de"},
	} {
		a, b := sign(tt.word, "", tt.lang, nil), sign(tt.digits, "", tt.lang, nil)
		if len(a.toks) != 1 || len(b.toks) != 1 || a.toks[0].id() != b.toks[0].id() || !a.toks[0].figure() {
			t.Errorf("%q and %q: tokens %v and %v, want one figure, the same", tt.word, tt.digits, a.toks, b.toks)
		}
	}
	// "Premier ministre" is no ordinal.
	if s := sign("premier", "", "fr", nil); len(s.toks) != 1 || s.toks[0].figure() {
		t.Errorf("premier: tokens %v, want one word", s.toks)
	}
}

// TestPassingMention: what a follow-up says of the event it follows
// ("days after ...", "zwei Wochen nach ...") does not count, up to the end
// of the clause; a bare "after" is the event itself and counts.
func TestPassingMention(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text, lang string
		gone, kept []string
	}{
		{"Strikers blocked the Antwerp docks, three days after a fire gutted Rotterdam's terminal, unions said.", "en", []string{"Rotterdam", "gutted"}, []string{"Antwerp", "unions"}},
		{"Flights resumed a week after the Ostrava blackout; the airline said.", "en", []string{"Ostrava", "blackout"}, []string{"flights", "airline"}},
		{"Flights were halted after drones were seen near Billund airport.", "en", nil, []string{"drones", "Billund"}},
		{"Die Werft meldet Kurzarbeit an, zwei Wochen nach dem Brand in Wolgast.", "de", []string{"Brand", "Wolgast"}, []string{"Werft", "Kurzarbeit"}},
		{"Le gouvernement démissionne au lendemain de la motion de censure, selon l'Élysée.", "fr", []string{"motion", "censure"}, []string{"démissionne", "Élysée"}},
	} {
		sig := sign("", tt.text, tt.lang, nil)
		has := func(w string) bool {
			wt := sign(w, "", tt.lang, nil).toks
			return len(wt) == 1 && slices.ContainsFunc(sig.toks, func(x token) bool { return x.id() == wt[0].id() })
		}
		for _, w := range tt.gone {
			if has(w) {
				t.Errorf("%q: %q counts, want it dropped (a passing mention)", tt.text, w)
			}
		}
		for _, w := range tt.kept {
			if !has(w) {
				t.Errorf("%q: %q was dropped", tt.text, w)
			}
		}
	}
}

func FuzzSign(f *testing.F) {
	for _, s := range []string{"", "Défense: la France commande 42 Rafale", "中国与巴西签署稀土合作协议", "<p>a &amp; b</p>", "26,000.5 $400m", strings.Repeat("word ", 500), "\xff\xfe", "ｆｕｌｌ１２"} {
		f.Add(s, "en")
	}
	f.Fuzz(func(t *testing.T, s, lang string) {
		sig := sign(s, s, lang, nil)
		if len(sig.toks) > maxTokens {
			t.Fatalf("%d tokens", len(sig.toks))
		}
		for i := 1; i < len(sig.toks); i++ {
			if sig.toks[i].id() <= sig.toks[i-1].id() {
				t.Fatal("tokens not sorted and unique")
			}
		}
		if len(sig.toks) > 0 && similarity(sig.toks, sig.toks) != 1 {
			t.Fatal("a signature is not similar to itself")
		}
	})
}

func TestBandTable(t *testing.T) {
	t.Parallel()
	var tb bandTable
	if tb.get(42) != 0 {
		t.Fatal("empty table has an entry")
	}
	for k := uint64(1); k <= 5000; k++ {
		if old := tb.swap(k*7919, k); old != 0 {
			t.Fatalf("new key %d replaced %d", k, old)
		}
	}
	if old := tb.swap(7919, 9999); old != 1 {
		t.Fatalf("swap returned %d, want 1", old)
	}
	tb.sweep(4001) // keeps keys 4001..5000 and the re-set first key
	for k := uint64(1); k <= 5000; k++ {
		want := k
		switch {
		case k == 1:
			want = 9999
		case k < 4001:
			want = 0
		}
		if got := tb.get(k * 7919); got != want {
			t.Fatalf("key %d: got %d, want %d", k, got, want)
		}
	}
	if tb.n != 1001 {
		t.Errorf("%d entries after the sweep, want 1001", tb.n)
	}
}
