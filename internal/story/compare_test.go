package story

import (
	"strings"
	"testing"
)

// TestAnchors: what the scanner reads of a report, per language: names in
// their many forms, figures normalised (magnitudes, currencies, units),
// months and quarters, directions; and what it must not read as a figure
// (dates, years, names with numbers, spans of time).
func TestAnchors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		lang, title, text string
		want              []string // substrings of anchors.String()
	}{
		{"en", "EU fines Google 2.95 billion euros", "", []string{"European Union*", "Google*", "$3.42bn*"}},
		{"en", "Alphabet hit with $3.5bn Brussels penalty", "", []string{"European Union*", "Google*", "$3.5bn*"}},
		{"en", "U.S. and Britain sign deal", "The UK and the United States agreed.", []string{"United States*", "United Kingdom*"}},
		{"en", "Intel slashes 15k roles", "", []string{"figures [15000*]"}},
		{"en", "China's imports hit 13.9 million tonnes in May", "", []string{"13.9m t*", "period May"}},
		{"en", "Soy imports at record", "Buyers brought in 13,920 kilotonnes.", []string{"13.92m t"}},
		{"en", "OPEC+ adds 411,000 bpd", "", []string{"OPEC*", "411000 bbl*"}},
		{"en", "Fed cuts to a range of 3.75% to 4%", "", []string{"figures [3.75%*]", "direction down"}},
		{"en", "Quake of magnitude 6.9 hits Aomori", "USGS put the magnitude at 7.0.", []string{"M6.9*", "M7"}},
		{"en", "Second-quarter output falls", "", []string{"Apr+May+Jun", "headline down"}},
		{"en", "Boeing 787 crashes on August 1, 2025", "", []string{"figures []", "period Aug"}},
		{"en", "Drones spotted over Aalborg airport", "Police said so, two days after sightings shut Copenhagen airport.", []string{"entities []"}},
		{"en", "EU weighs minimum prices", "", []string{"European Union*"}},
		{"de", "Arbeitslosigkeit steigt im August über drei Millionen", "Die Quote lag bei 6,4 Prozent; 46.000 mehr als im Juli.", []string{"3m*", "6.4%", "46000", "Jul+Aug (headline Aug)", "headline up"}},
		{"de", "Volkswagen streicht 35 000 Stellen", "VW und die IG Metall einigten sich.", []string{"Volkswagen*", "35000*", "headline down"}},
		{"de", "Siemens Energy will bis zu 10 Mrd. Euro ausschütten", "", []string{"Siemens Energy*", "$11.6bn*"}},
		{"fr", "Incendie dans l'Aude : plus de 16 000 hectares brûlés", "", []string{"16000*"}},
		{"fr", "Le Smic revalorisé de 2 % au 1er novembre", "", []string{"figures [2%*]", "period Nov"}},
		{"fr", "La BCE abaisse son taux à 2 %", "", []string{"European Central Bank*", "headline down"}},
		{"ja", "トヨタ自動車、アメリカに1兆5000億円投資", "", []string{"Toyota*", "United States*", "$10.05bn*"}},
		{"ja", "4～6月期のGDP、年率1.0%増", "", []string{"1%*", "Apr+May+Jun (headline Apr+May+Jun)", "headline up"}},
		{"ja", "日銀、政策金利を0.5%に引き上げ", "", []string{"Bank of Japan*", "Japan*", "0.5%*", "headline up"}},
		{"zh", "日菲签署《互惠准入协定》", "", []string{"Japan*", "Philippines*"}},
		{"zh", "中俄举行联合演习", "", []string{"China*", "Russia*"}},
		{"zh", "比亚迪上半年销量214.6万辆", "1至6月累计销售2145954辆", []string{"BYD*", "2.15m*", "Jan+Feb+Mar+Apr+May+Jun"}},
		{"zh", "海关数据：八月份出口增速降至半年低点", "", []string{"Aug (headline Aug)", "headline down"}},
		{"zh", "中国承诺向非洲提供3600亿元人民币", "", []string{"China*", "Africa*", "$50.4bn*"}},
		{"zh", "央行宣布降准0.5个百分点", "", []string{"0.5 pp*"}},
	} {
		a := extractAnchors(tt.title, tt.text, tt.lang, nil)
		got := a.String()
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s %q: %s\n\tlacks %q", tt.lang, tt.title, got, w)
			}
		}
	}
}

// TestCompareAnchors: the look-alikes of each kind that words alone merge
// are kept apart by their anchors, and reworded reports of one story are
// not, in every language.
func TestCompareAnchors(t *testing.T) {
	t.Parallel()
	type doc struct{ title, text string }
	for _, tt := range []struct {
		name, lang string
		a, b       doc
		kept       int
	}{
		{"rise and cut of one duty", "zh",
			doc{"中国对美加征关税提高至125%", "对原产于美国的进口商品加征关税税率由84%提高至125%。"},
			doc{"中国对美加征关税降至10%", "对原产于美国的进口商品加征关税税率由125%下调至10%。"}, keptFigure},
		{"one statistic, two months", "en",
			doc{"US inflation picks up to 2.7% in June", "Prices rose 2.7% in June, up from 2.4% in May."},
			doc{"US inflation edges up to 2.4% in May", "Prices rose 2.4% in May, up from 2.3% in April."}, keptFigure},
		{"one statistic, two months, same figure", "de",
			doc{"Ifo-Geschäftsklima hellt sich im Juni auf", "Der Index stieg auf 88,4 Punkte."},
			doc{"Ifo-Geschäftsklima hellt sich im Mai auf", "Der Index stieg auf 88,4 Punkte."}, keptPeriod},
		{"one pledge, two countries", "en",
			doc{"Japan pledges $3 billion for Ukraine", "Tokyo will provide the money."},
			doc{"Germany pledges $3 billion for Ukraine", "Berlin will provide the money."}, keptEntity},
		{"two races", "en",
			doc{"Norris wins Hungarian Grand Prix", "McLaren one-two in Budapest."},
			doc{"Piastri wins Dutch Grand Prix", "McLaren win at Zandvoort."}, keptEntity},
		{"one measure, two values", "ja",
			doc{"日銀、政策金利を0.5%に引き上げ", "短期金利の誘導目標を0.5%に引き上げる。"},
			doc{"日銀、政策金利を0.75%に引き上げ", "短期金利の誘導目標を0.75%に引き上げる。"}, keptFigure},
		{"one budget, two values", "en",
			doc{"Cabinet approves record 8.7 trillion yen defence budget", ""},
			doc{"Ministry seeks record 8.8 trillion yen for defence", ""}, keptFigure},
		{"ban and lift", "en",
			doc{"China resumes imports of Japanese seafood", "Beijing lifted the ban."},
			doc{"China suspends Japanese seafood imports", "Beijing halted imports."}, keptDirection},
		{"two measures weighed and taken", "fr",
			doc{"L'UE envisage des prix minimaux", "La Commission discute avec Pékin."},
			doc{"L'UE impose des droits de 35,3 %", "La Commission confirme les droits."}, keptWeigh},
		{"rounded sum", "en",
			doc{"Fund of about $10bn launched", "It holds about $10 billion."},
			doc{"Fund of $9.8 billion launched", "It holds $9.8 billion."}, keptNone},
		{"two currencies", "en",
			doc{"EU fines Google 2.95 billion euros", ""},
			doc{"Alphabet hit with $3.5bn Brussels penalty", ""}, keptNone},
		{"two agencies' magnitudes", "en",
			doc{"Magnitude 6.9 quake off Aomori", ""},
			doc{"Quake off Aomori", "The USGS put the magnitude at 7.0."}, keptNone},
		{"tonnes and kilotonnes", "en",
			doc{"Imports hit 13.9 million tonnes in May", ""},
			doc{"Imports at record", "Buyers brought in 13,920 kilotonnes in May."}, keptNone},
		{"short and official names", "fr",
			doc{"Le Royaume-Uni et l'Inde signent un accord", ""},
			doc{"Londres et New Delhi concluent leur traité", ""}, keptNone},
		{"company and acronym", "zh",
			doc{"比亚迪上半年销量214.6万辆", ""},
			doc{"BYD前六个月卖出逾214万辆新能源车", ""}, keptNone},
	} {
		a := extractAnchors(tt.a.title, tt.a.text, tt.lang, nil)
		b := extractAnchors(tt.b.title, tt.b.text, tt.lang, nil)
		for _, g := range []agreement{compareAnchors(&a, &b, true), compareAnchors(&b, &a, true)} {
			if g.kept != tt.kept {
				t.Errorf("%s: kept %d (%s), want %d", tt.name, g.kept, g.detail, tt.kept)
			}
		}
	}
	// Two languages are two stories.
	a := extractAnchors("ECB cuts rates to 2%", "", "en", nil)
	b := extractAnchors("EZB senkt Leitzins auf 2 Prozent", "", "de", nil)
	if g := compareAnchors(&a, &b, false); g.kept != keptLanguage {
		t.Errorf("en and de: kept %d", g.kept)
	}
}

// TestAssignExplain: the explanation names the item joined and what both
// state, or the closest item and what kept it apart; and AssignExplain
// decides as Assign does.
func TestAssignExplain(t *testing.T) {
	t.Parallel()
	x, y := New(Options{}), New(Options{})
	docs := []Doc{
		{ID: "a", Lang: "en", Title: "Japan pledges $3 billion in new aid for Ukraine reconstruction", Text: "Tokyo will provide $3 billion in loans and grants for Ukraine's power grid and demining, Prime Minister Shigeru Ishiba told a donor conference in Rome."},
		{ID: "b", Lang: "en", Title: "Tokyo commits fresh $3bn to rebuild Ukraine's energy network", Text: "Speaking in Rome, the Japanese prime minister said the money would go to power infrastructure and clearing mines."},
		{ID: "c", Lang: "en", Title: "Germany pledges $3 billion in new aid for Ukraine reconstruction", Text: "Berlin will provide $3 billion in loans and grants for Ukraine's power grid, Chancellor Friedrich Merz told a donor conference in Rome."},
	}
	var ex []Explanation
	for _, d := range docs {
		id, isNew, e := x.AssignExplain(d)
		id2, isNew2 := y.Assign(d)
		if id != id2 || isNew != isNew2 {
			t.Errorf("%s: AssignExplain %s %v, Assign %s %v", d.ID, id, isNew, id2, isNew2)
		}
		ex = append(ex, e)
	}
	if m := ex[1].Matched; m == nil || m.ID != "a" || !strings.Contains(m.Shared, "$3bn") || !strings.Contains(m.Shared, "Japan") {
		t.Errorf("b: matched %+v, want a with $3bn and Japan", m)
	}
	if n := ex[2].NearMiss; n == nil || n.ID == "" || !strings.Contains(n.KeptApart, "Germany") || n.Words == 0 {
		t.Errorf("c: near miss %+v, want a or b kept apart by Germany", n)
	}
	if ex[2].Matched != nil {
		t.Errorf("c joined %+v", ex[2].Matched)
	}
	if w := SharedWords(docs[0], docs[1]); !strings.Contains(strings.Join(w, " "), "rome") {
		t.Errorf("shared words of a and b: %v", w)
	}
}

// TestJoinNoMemberContradicts: a report joins a story only when no member
// of it contradicts the report. The ministry's 8.8 trillion yen request
// and a report of it as "about $60 billion" are one story; the cabinet's
// 8.7 trillion yen budget matches the rounded dollar figure too, but not
// the 8.8 trillion of the story's first report, so it starts its own
// story instead of joining through the report that rounds. -explain names
// the member that contradicts it.
func TestJoinNoMemberContradicts(t *testing.T) {
	t.Parallel()
	docs := []Doc{
		{ID: "a", Lang: "en", Title: "Japan's defence ministry seeks record 8.8 trillion yen for next fiscal year", Text: "The request for the year starting in April is up 3% and includes funds for long-range standoff missiles and a new satellite constellation, the ministry said on Friday."},
		{ID: "b", Lang: "en", Title: "Tokyo asks for about $60 billion in military spending, its largest ever", Text: "Japan's Ministry of Defense on Friday submitted a budget request of roughly $60 billion for fiscal 2027, with money earmarked for standoff weapons and space-based surveillance."},
		{ID: "c", Lang: "en", Title: "Japan's cabinet approves record 8.7 trillion yen defence budget", Text: "The government signed off on military spending for the fiscal year from April, slightly below the ministry's summer request, with funds for standoff missiles and satellites; parliament votes in March."},
	}
	x, y := New(Options{}), New(Options{})
	var ids []string
	var ex Explanation
	for _, d := range docs {
		id, _ := x.Assign(d)
		id2, _, e := y.AssignExplain(d)
		if id != id2 {
			t.Errorf("%s: Assign %s, AssignExplain %s", d.ID, id, id2)
		}
		ids, ex = append(ids, id), e
	}
	if ids[1] != ids[0] {
		t.Fatalf("b: story %s, want a's (%s): the test needs b to join a", ids[1], ids[0])
	}
	if ids[2] == ids[0] {
		t.Errorf("c joined the story of a and b, whose member a contradicts it")
	}
	if ex.Matched != nil {
		t.Errorf("c: matched %+v", ex.Matched)
	}
	if len(ex.Contradicted) == 0 || ex.Contradicted[0].ContradictedBy != "a" || ex.Contradicted[0].KeptApart == "" {
		t.Errorf("c: contradicted %+v, want a story with member a contradicting", ex.Contradicted)
	}
}
