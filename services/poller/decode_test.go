package poller

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// Titles of the feeds in testdata/charset, by the language they are in.
var charsetTitles = map[string][]string{
	"ko":    {"한국 경제 뉴스", "희토류 공동 채굴에 합의", "반도체 수출 규제 강화", "국방 협력 대화 시작"},
	"ja":    {"日本経済ニュース", "レアアースの共同採掘で合意", "半導体の輸出規制を強化", "防衛産業の対話を開始"},
	"zh":    {"中国经济新闻", "稀土联合开采达成协议", "半导体出口管制加强", "国防工业对话启动"},
	"zh-TW": {"台灣經濟新聞", "稀土聯合開採達成協議", "半導體出口管制加強", "國防工業對話啟動"},
	"ru": {"Экономические новости", "Соглашение о совместной добыче редкоземельных металлов",
		"Ужесточение экспортного контроля на полупроводники", "Начало диалога об оборонной промышленности"},
	"fr": {"Économie et défense", "Accord sur les terres rares entre l’UE et le Japon",
		"Les droits de douane augmentent : « une erreur »", "Zölle steigen – Exporteure besorgt"},
	"de": {"Wirtschaftsnachrichten", "Zölle steigen", "Märkte öffnen früher", "Grüße aus Köln"},
	"en": {"Café Wire", "Café crème à Zürich", "Tariffs & trade: a naïve plan", "Plain ASCII title"},
}

const noRecovery recovery = ""

// TestParseFeedCharsets checks the exact titles of every fixture in
// testdata/charset: the broken kinds are recovered (and counted as such),
// the well-formed ones in the same encodings are read as they always were.
func TestParseFeedCharsets(t *testing.T) {
	t.Parallel()
	const (
		plain   = "application/rss+xml"
		utf8CT  = "text/xml; charset=utf-8"
		latinCT = "text/xml; charset=ISO-8859-1"
	)
	tests := []struct {
		file, ctype, lang string
		want              recovery
	}{
		// Well-formed: declared right, in the prolog or the header.
		{"declared-euc-kr.xml", plain, "ko", noRecovery},
		{"declared-shift_jis.xml", plain, "ja", noRecovery},
		{"declared-shift_jis.xml", "text/xml; charset=Shift_JIS", "ja", noRecovery},
		{"declared-euc-jp.xml", plain, "ja", noRecovery},
		{"declared-gbk.xml", plain, "zh", noRecovery},
		{"declared-gb18030.xml", plain, "zh", noRecovery},
		{"declared-big5.xml", plain, "zh-TW", noRecovery},
		{"declared-windows-1251.xml", plain, "ru", noRecovery},
		{"declared-windows-1251.xml", "text/xml; charset=windows-1251", "ru", noRecovery},
		{"declared-windows-1252.xml", plain, "fr", noRecovery},
		{"declared-iso-8859-1.xml", plain, "en", noRecovery},
		{"declared-iso-8859-1.xml", latinCT, "en", noRecovery},
		{"noprolog-windows-1251.xml", "text/xml; charset=windows-1251", "ru", noRecovery},
		{"noprolog-euc-kr.xml", "application/xml; charset=euc-kr", "ko", noRecovery},
		{"declared-windows-1251.xml", "text/xml; charset=x-no-such-charset", "ru", noRecovery},
		{"utf8-noprolog.xml", plain, "en", noRecovery},
		{"utf8-noprolog.xml", utf8CT, "en", noRecovery},
		{"utf16le-bom.xml", plain, "ja", noRecovery},
		{"utf16be-bom.xml", plain, "ja", noRecovery},
		{"utf32le-bom.xml", plain, "ko", noRecovery},
		{"utf32be-bom.xml", plain, "ko", noRecovery},
		{"utf16be-bom.xml", latinCT, "ja", noRecovery},
		{"utf32le-bom.xml", utf8CT, "ko", noRecovery},
		// Code pages the web dropped (IANA names), EBCDIC by its "<?xm".
		{"declared-ibm437.xml", plain, "de", noRecovery},
		{"declared-ibm037.xml", plain, "de", noRecovery},

		// A legacy charset declared over UTF-8 bytes.
		{"utf8-prolog-iso-8859-1.xml", plain, "en", recoveryMislabeledUTF8},
		{"utf8-prolog-iso-8859-1.xml", latinCT, "en", recoveryMislabeledUTF8},
		{"utf8-prolog-windows-1252.xml", plain, "fr", recoveryMislabeledUTF8},
		{"utf8-prolog-windows-1252.xml", utf8CT, "fr", recoveryMislabeledUTF8},
		{"utf8-prolog-shift_jis.xml", plain, "ja", recoveryMislabeledUTF8},
		{"utf8-prolog-windows-1251.xml", plain, "ru", recoveryMislabeledUTF8},
		{"utf8-noprolog.xml", latinCT, "en", recoveryMislabeledUTF8},
		{"utf8-noprolog.xml", "text/xml; charset=windows-1252", "en", recoveryMislabeledUTF8},

		// UTF-16 and UTF-32 without a byte-order mark (XML 1.0 Appendix F).
		{"utf16le-nobom.xml", plain, "ja", recoveryUnmarkedUTF16},
		{"utf16be-nobom.xml", plain, "ja", recoveryUnmarkedUTF16},
		{"utf16le-nobom-noprolog.xml", plain, "ja", recoveryUnmarkedUTF16},
		{"utf16be-nobom-noprolog.xml", utf8CT, "ja", recoveryUnmarkedUTF16},
		{"utf32le-nobom.xml", plain, "ko", recoveryUnmarkedUTF32},
		{"utf32be-nobom.xml", plain, "ko", recoveryUnmarkedUTF32},

		// Nothing declared (or only a UTF-8 the bytes contradict): detected.
		{"undeclared-euc-kr.xml", plain, "ko", recoveryDetected},
		{"undeclared-shift_jis.xml", plain, "ja", recoveryDetected},
		{"undeclared-euc-jp.xml", plain, "ja", recoveryDetected},
		{"undeclared-gbk.xml", plain, "zh", recoveryDetected},
		{"undeclared-gb18030.xml", plain, "zh", recoveryDetected},
		{"undeclared-big5.xml", plain, "zh-TW", recoveryDetected},
		{"undeclared-windows-1251.xml", plain, "ru", recoveryDetected},
		{"undeclared-windows-1252.xml", plain, "fr", recoveryDetected},
		{"noprolog-euc-kr.xml", utf8CT, "ko", recoveryDetected},
		{"noprolog-shift_jis.xml", utf8CT, "ja", recoveryDetected},
		{"noprolog-big5.xml", "", "zh-TW", recoveryDetected},
		{"noprolog-gbk.xml", "", "zh", recoveryDetected},
		{"noprolog-windows-1251.xml", utf8CT, "ru", recoveryDetected},
		{"noprolog-windows-1252.xml", utf8CT, "fr", recoveryDetected},
		{"undeclared-windows-1251.xml", "text/xml; charset=x-no-such-charset", "ru", recoveryDetected},
		{"undeclared-windows-1252.xml", "text/xml; charset=utf-32", "fr", recoveryDetected},
		{"undeclared-shift_jis.xml", "text/xml; charset=utf-16", "ja", recoveryDetected},

		// UTF-8 with a stray windows-1252 byte: the byte is read as one.
		{"mixed-utf8-cp1252.xml", plain, "fr", recoveryRepairedUTF8},
	}
	for _, tc := range tests {
		t.Run(tc.file+"|"+tc.ctype, func(t *testing.T) {
			t.Parallel()
			f, recs, err := parseFeed(fixture(t, "charset/"+tc.file), tc.ctype)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{f.Title}
			for _, it := range f.Items {
				got = append(got, it.Title)
			}
			if want := charsetTitles[tc.lang]; fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
				t.Errorf("titles\n got %q\nwant %q", got, want)
			}
			want := []recovery{}
			if tc.want != noRecovery {
				want = append(want, tc.want)
			}
			if fmt.Sprint(recs) != fmt.Sprint(want) {
				t.Errorf("recoveries %q, want %q", recs, want)
			}
		})
	}
}

// TestParseFeedKeepsText checks that what the decoder keeps or repairs comes
// through as written: entities, bare ampersands, the repaired byte.
func TestParseFeedKeepsText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, ctype    string
		wantTitle, wantDesc string // as published: plain text
	}{
		{"entities and bare ampersand over a latin-1 prolog",
			`<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>t</title><item><title>Café &eacute;t&eacute; AT&T & co &amp; “x”</title><description>a &nbsp;b</description></item></channel></rss>`,
			"", "Café été AT&T & co & “x”", "a b"},
		{"entities in a detected windows-1252 body",
			"<rss version=\"2.0\"><channel><title>t</title><item><title>Caf\xe9 &eacute;t&eacute; AT&T \x93x\x94</title><description>d</description></item></channel></rss>",
			"", "Café été AT&T “x”", "d"},
		{"declared GBK that is valid UTF-8 by chance",
			string(mustEncode("gbk")(`<?xml version="1.0" encoding="GBK"?><rss version="2.0"><channel><title>t</title><item><title>稀</title><description>d</description></item></channel></rss>`)),
			"", "稀", "d"},
		{"control characters",
			"<rss version=\"2.0\"><channel><title>t</title><item><title>Form\x0cfeed \x1b[0mand\ttab</title><description>bell\x07</description></item></channel></rss>",
			"", "Formfeed [0mand tab", "bell"},
		{"stray byte",
			"<rss version=\"2.0\"><channel><title>t</title><item><title>Zölle – Caf\xe9</title><description>Zölle – ok</description></item></channel></rss>",
			"text/xml; charset=utf-8", "Zölle – Café", "Zölle – ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, err := normalize(t, "https://x.example/feed", []byte(tc.doc), tc.ctype, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].item.Title != tc.wantTitle || entries[0].item.Summary != tc.wantDesc {
				t.Fatalf("entries %+v, want title %q summary %q", entries, tc.wantTitle, tc.wantDesc)
			}
		})
	}
}

// TestDecodeBounded checks that decoding only ever looks at the body it was
// given (the body is already capped at poll.max_body_bytes) and that its
// output stays within a small multiple of it.
func TestDecodeBounded(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"undeclared-euc-kr.xml", "utf16le-nobom.xml", "utf32be-nobom.xml", "mixed-utf8-cp1252.xml"} {
		body := fixture(t, "charset/"+file)
		// Cut mid-way, as a capped read would leave it.
		for _, n := range []int{0, 1, 2, 3, 5, len(body) / 2, len(body) - 1} {
			cut := bytes.Clone(body[:n])
			out, _, err := toUTF8(cut, "")
			if err != nil {
				continue
			}
			if !utf8.Valid(out) {
				t.Errorf("%s[:%d]: output not UTF-8", file, n)
			}
			if len(out) > 3*len(cut)+len("UTF-8") {
				t.Errorf("%s[:%d]: %d bytes out of %d", file, n, len(out), len(cut))
			}
			if !bytes.Equal(cut, body[:n]) {
				t.Errorf("%s[:%d]: input modified", file, n)
			}
		}
	}
	if _, _, err := parseFeed([]byte(strings.Repeat("\x00", 64)), ""); err == nil {
		t.Error("NUL bytes parsed as a feed")
	}
}

// headlines are short bare titles by language, written apart from the
// fixtures.
var headlines = map[string][]string{
	"ko":    {"서울 아파트값 3주 연속 하락", "대통령, 내일 국무회의 주재", "올해 수출 7천억 달러 돌파", "태풍 북상에 항공편 결항", "삼성전자 영업이익 급증", "프로야구 한국시리즈 개막", "금리 인하 기대감 커져", "북한 미사일 발사", "전기차 보조금 축소", "날씨 맑음"},
	"ja":    {"東京株式市場、続落", "首相が記者会見", "円相場、一時１５０円台", "台風接近で新幹線運休", "トヨタ、過去最高益", "大谷選手が本塁打", "日銀が金融政策を維持", "北海道で大雪", "新型車を発表", "今日の天気"},
	"zh":    {"上海股市收盘上涨", "国务院召开常务会议", "人民币汇率保持稳定", "台风登陆广东沿海", "华为发布新款手机", "中国女排夺得冠军", "央行下调存款准备金率", "北京迎来首场降雪", "新能源汽车销量增长", "今天天气晴朗"},
	"zh-TW": {"台股收盤大漲", "行政院召開院會", "新台幣匯率走強", "颱風逼近東部海域", "台積電營收創新高", "中華隊奪得冠軍", "央行維持利率不變", "合歡山降下瑞雪", "電動車銷量成長", "今天天氣晴朗"},
	"ru":    {"Курс рубля снизился", "Президент провёл совещание", "Цены на нефть выросли", "Снегопад в Москве", "Новый закон о налогах", "Спартак выиграл матч", "Банк сохранил ставку", "Выборы в regions", "Погода на завтра", "Итоги недели"},
	"fr":    {"Café: la hausse", "Grève à la SNCF", "Élections régionales", "Météo: neige à Noël", "Économie française", "L’équipe de France gagne", "Hausse des prix à Paris", "Le gouvernement recule", "Ça repart", "Défense: accord signé"},
	"de":    {"Börse schließt höher", "Kanzler trifft Präsidenten", "Zinsen steigen weiter", "Schnee in München", "Neue Regeln für Märkte", "Bayern gewinnt Spiel", "Grüne fordern Änderung", "Straßenbahn fällt aus", "Wetter: kühl", "Über uns"},
}

// TestDetectAccuracy measures charset detection on feeds that declare
// nothing. Per charset: one-item feeds of each fixture title, with a
// description or a language tag, must all come out right; feeds of one bare
// headline of a few characters (too little for the detector's statistics)
// must come out right at least 8 times in 10 (they do 10 in 10, except
// EUC-JP 8 and windows-1251 9).
func TestDetectAccuracy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		label, lang, tag string
	}{
		{"euc-kr", "ko", "ko"},
		{"shift_jis", "ja", "ja"},
		{"euc-jp", "ja", "ja"},
		{"gbk", "zh", "zh-CN"},
		{"gb18030", "zh", "zh-CN"},
		{"big5", "zh-TW", "zh-TW"},
		{"windows-1251", "ru", "ru"},
		{"windows-1252", "fr", "fr"},
		{"windows-1252", "de", "de"},
	}
	feed := func(label, tag, title, desc string) bool {
		doc := `<rss version="2.0"><channel><title>News</title>`
		if tag != "" {
			doc += `<language>` + tag + `</language>`
		}
		doc += `<item><title>` + title + `</title>`
		if desc != "" {
			doc += `<description>` + desc + `</description>`
		}
		doc += `</item></channel></rss>`
		f, _, err := parseFeed(mustEncode(label)(doc), "")
		return err == nil && len(f.Items) == 1 && f.Items[0].Title == title
	}
	for _, tc := range tests {
		right, total := 0, 0
		if titles := charsetTitles[tc.lang]; titles != nil {
			desc := strings.Join(titles, " ")
			for _, title := range titles {
				for _, c := range []struct{ tag, desc string }{{"", desc}, {tc.tag, ""}, {tc.tag, desc}} {
					total++
					if feed(tc.label, c.tag, title, c.desc) {
						right++
					} else {
						t.Errorf("%s, language %q, description %v: %q not read right", tc.label, c.tag, c.desc != "", title)
					}
				}
			}
		}
		bare, bareRight := headlines[tc.lang], 0
		for _, title := range bare {
			if feed(tc.label, "", title, "") {
				bareRight++
			}
		}
		if bareRight*10 < len(bare)*8 {
			t.Errorf("%s: %d of %d bare headlines read right, want 8 in 10", tc.label, bareRight, len(bare))
		}
		t.Logf("%-12s %-2s with description or language tag %d/%d right; bare headline %d/%d", tc.label, tc.lang, right, total, bareRight, len(bare))
	}
}

// TestRecoveriesPublished polls fixtures of the broken kinds through the
// real fetch path: the items published carry the right titles, and each
// recovery is counted by kind (every kind exists from start-up).
func TestRecoveriesPublished(t *testing.T) {
	t.Parallel()
	feeds := []struct {
		file, ctype, lang string
		kind              recovery
	}{
		{"utf8-prolog-iso-8859-1.xml", "application/rss+xml; charset=ISO-8859-1", "en", recoveryMislabeledUTF8},
		{"utf16le-nobom.xml", "text/xml; charset=utf-8", "ja", recoveryUnmarkedUTF16},
		{"undeclared-euc-kr.xml", "text/xml", "ko", recoveryDetected},
	}
	var servers []*feedServer
	var urls []string
	for _, f := range feeds {
		srv := newFeedServer(t, serveXML(fixture(t, "charset/"+f.file), f.ctype, ""))
		servers = append(servers, srv)
		urls = append(urls, srv.URL)
	}
	h := newHarness(t, nil, testConfig(urls...))
	for _, k := range recoveryKinds {
		if v := metricValue(h.svc.met.recoveries.WithLabelValues(string(k))); v != 0 {
			t.Errorf("%s: %v before any poll", k, v)
		}
	}
	for i, f := range feeds {
		if st := h.poll(servers[i].URL); st.State != stateOK {
			t.Fatalf("%s: state %q: %s", f.file, st.State, st.Error)
		}
		if v := metricValue(h.svc.met.recoveries.WithLabelValues(string(f.kind))); v != 1 {
			t.Errorf("%s: %s counted %v times, want 1", f.file, f.kind, v)
		}
	}
	got := map[string]bool{}
	for _, it := range streamItems(t, h.bus) {
		got[it.FeedTitle+" / "+it.Title] = true
	}
	for _, f := range feeds {
		want := charsetTitles[f.lang]
		for _, title := range want[1:] {
			if !got[want[0]+" / "+title] {
				t.Errorf("%s: no item %q / %q published; got %v", f.file, want[0], title, got)
			}
		}
	}
}

// BenchmarkToUTF8 measures decoding a 1 MB feed body: the common case
// (UTF-8, as declared) and the costliest (nothing declared, detected).
func BenchmarkToUTF8(b *testing.B) {
	for _, file := range []string{"utf8-noprolog.xml", "undeclared-euc-kr.xml", "mixed-utf8-cp1252.xml"} {
		one := fixture(b, "charset/"+file)
		body := bytes.Repeat(one, (1<<20)/len(one)+1)[:1<<20]
		b.Run(file, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, _, err := toUTF8(body, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDetectDeterministic: the detector scores its charsets concurrently and
// sorts them unstably, so charsets that tie came out in any order and the
// same feed read "naïve" on one poll and "naďve" on the next. Detection must
// give the same answer every time, and the web's fallback among equals.
func TestDetectDeterministic(t *testing.T) {
	t.Parallel()
	body := fixture(t, "cp1252-noprolog.xml")
	for i := range 200 {
		out, _, err := toUTF8(body, "text/xml; charset=x-bogus")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte("“Quoted” – naïve €5")) {
			t.Fatalf("run %d: %q", i, out)
		}
	}
}
