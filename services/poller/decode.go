package poller

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gogs/chardet"
	"github.com/mmcdole/gofeed"
	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/ianaindex"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
	"golang.org/x/text/transform"
)

// recovery names one way in which a feed body was not what it said it was
// and was read all the same. The set is fixed: it is the kind label of
// feedmon_poll_recoveries_total.
type recovery string

const (
	// A legacy charset (ISO-8859-1, windows-1252, ...) was declared, in the
	// header or the XML declaration, over non-ASCII bytes that are valid
	// UTF-8: read as UTF-8.
	recoveryMislabeledUTF8 recovery = "mislabeled_utf8"
	// UTF-16 or UTF-32 without a byte-order mark, recognised from the
	// zero bytes around the first characters (XML 1.0 Appendix F).
	recoveryUnmarkedUTF16 recovery = "unmarked_utf16"
	recoveryUnmarkedUTF32 recovery = "unmarked_utf32"
	// The header said UTF-8, the bytes are not, the XML declaration named
	// the charset that was used.
	recoveryHeaderContradicted recovery = "header_contradicted"
	// Nothing usable was declared and the bytes are not UTF-8: the charset
	// was detected from the bytes.
	recoveryDetected recovery = "detected_charset"
	// UTF-8 with a few bytes that are not (text pasted from a Latin-1
	// source): each such byte was read as windows-1252.
	recoveryRepairedUTF8 recovery = "repaired_utf8"
	// Characters XML forbids (C0 controls other than tab, newline and
	// carriage return), which make the parser give up, were dropped.
	recoveryControlChars recovery = "control_chars"
	// The decoded body did not parse but the body as it came did, by the
	// parser's own charset handling.
	recoveryRawBody recovery = "raw_body"
)

// recoveryKinds is every recovery, for the metric's start-up label values.
var recoveryKinds = []recovery{
	recoveryMislabeledUTF8, recoveryUnmarkedUTF16, recoveryUnmarkedUTF32, recoveryHeaderContradicted,
	recoveryDetected, recoveryRepairedUTF8, recoveryControlChars, recoveryRawBody,
}

// parseFeed is the one way a feed body becomes a feed, fetched or pushed:
// decode it to UTF-8 whatever its charset (toUTF8), parse it, and say which
// recoveries it took, for the caller to count. body is never read past its
// length, which the caller has capped at poll.max_body_bytes.
func parseFeed(body []byte, contentType string) (*gofeed.Feed, []recovery, error) {
	text, recs, err := toUTF8(body, contentType)
	if err == nil {
		var f *gofeed.Feed
		if f, err = parseUTF8(text); err == nil {
			return f, recs, nil
		}
	}
	// A safety net: the parser's own charset handling on the body as it
	// came, so that decoding never costs a feed the parser alone reads.
	if text == nil || !bytes.Equal(text, body) {
		if raw, rerr := parseUTF8(body); rerr == nil {
			return raw, []recovery{recoveryRawBody}, nil
		}
	}
	return nil, nil, err
}

// parseUTF8 parses a UTF-8 feed body.
func parseUTF8(body []byte) (*gofeed.Feed, error) {
	p := gofeed.NewParser()
	// The original RSS feed carries <ttl>, which the universal one drops.
	p.KeepOriginalFeed = true
	// Items carry no images downstream; gofeed's fallback that HTML-parses
	// every description to find one was an eighth of a first fetch's CPU.
	p.RSSTranslator = &gofeed.DefaultRSSTranslator{DisableContentImageScan: true}
	f, err := p.Parse(bytes.NewReader(body))
	if err != nil {
		if errors.Is(err, gofeed.ErrFeedTypeNotDetected) {
			return nil, fmt.Errorf("poller: not a feed (RSS, Atom or JSON Feed): %w", err)
		}
		return nil, fmt.Errorf("poller: parse feed: %w", err)
	}
	return f, nil
}

// xmlDeclRe finds the encoding pseudo-attribute of an XML declaration.
var xmlDeclRe = regexp.MustCompile(`^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']`)

// Detection looks at the start of the body only: enough text for the
// statistics, and a bound on the time a 10 MB body can cost.
const detectSample = 256 << 10

// A legacy multi-byte charset (Shift_JIS, EUC-KR, GBK, Big5) declared over
// bytes that are valid UTF-8 is believed when the bytes hold fewer than this
// many multi-byte UTF-8 sequences: a title or two in those charsets can be
// valid UTF-8 by chance (GBK "稀" is the bytes of UTF-8 "ϡ"), a whole feed
// cannot. A single-byte charset yields to UTF-8 at once: Latin-1 text that
// is valid UTF-8 would be mojibake such as "Ã©" to begin with.
const minUTF8Evidence = 4

// toUTF8 decodes body to UTF-8, trusting the bytes over what is declared
// where the two disagree, and rewrites the XML declaration to say UTF-8 so
// the parser does not decode a second time. In order:
//
//   - a byte-order mark (UTF-8, UTF-16, UTF-32) decides, and so does an
//     EBCDIC "<?xml" with the code page its declaration names;
//   - zero bytes among the first four mean UTF-16 or UTF-32 without a mark
//     (a UTF-8 or legacy XML body never holds NUL);
//   - non-ASCII bytes that are valid UTF-8 are UTF-8, whatever the header
//     or declaration says (servers and CMSs that stamp every response
//     ISO-8859-1 are common; see minUTF8Evidence for multi-byte charsets);
//   - otherwise the header's charset, or the declaration's when the header
//     names none or claims a UTF-8 the bytes are not;
//   - with nothing usable declared: UTF-8 with a few stray bytes is
//     repaired, anything else is detected from the bytes.
//
// A body whose declaration is right comes out exactly as the parser alone
// would have read it. The output is at most three times the input.
func toUTF8(body []byte, contentType string) ([]byte, []recovery, error) {
	if enc, rec, n := sniffUnicode(body); enc != nil {
		out, err := decodeWith(enc, body[n:])
		if err != nil {
			return nil, nil, err
		}
		return clean(out, rec)
	}
	var header, decl string
	if _, params, err := mime.ParseMediaType(contentType); err == nil {
		header = strings.ToLower(strings.TrimSpace(params["charset"]))
	}
	if m := xmlDeclRe.FindSubmatch(body[:min(len(body), 512)]); m != nil {
		decl = strings.ToLower(string(m[1]))
	}

	if utf8.Valid(body) {
		label := header
		if label == "" || isUTF8Label(label) {
			label = decl
		}
		if ascii(body) {
			// ASCII is the same in every charset a feed uses, except
			// the 7-bit ISO-2022-JP, whose escapes are ASCII bytes.
			if enc, name := lookup(label); name == "iso-2022-jp" {
				return decodeClean(enc, body, "")
			}
			return clean(body, "")
		}
		mislabeled := func(l string) bool { return l != "" && !isUTF8Label(l) }
		if !mislabeled(header) && !mislabeled(decl) {
			return clean(body, "")
		}
		if enc, name := lookup(label); multiByte[name] && utf8Sequences(body) < minUTF8Evidence {
			return decodeClean(enc, body, "")
		}
		return clean(body, recoveryMislabeledUTF8)
	}

	// The header's charset, else the declaration's: a header that names
	// none, one we cannot use, or a UTF-8 the bytes are not gives way.
	enc, rec := usable(header, body), recovery("")
	if enc == nil {
		if enc = usable(decl, body); enc != nil && isUTF8Label(header) {
			rec = recoveryHeaderContradicted
		}
	}
	if enc != nil {
		return decodeClean(enc, body, rec)
	}
	// Nothing usable declared: no label, UTF-8 (which the bytes are not),
	// a label we do not know, or one that would garble the markup.
	if mostlyUTF8(body) {
		return clean(repairUTF8(body), recoveryRepairedUTF8)
	}
	return decodeClean(detect(body), body, recoveryDetected)
}

// sniffUnicode recognises UTF-16 and UTF-32 by byte-order mark or, without
// one, by where the zero bytes fall in the first four (XML 1.0 Appendix F:
// "<?" is 00 3C 00 3F in UTF-16BE, 3C 00 00 00 starts UTF-32LE). It returns
// the encoding, the recovery it took, and how many bytes of mark to skip.
func sniffUnicode(b []byte) (encoding.Encoding, recovery, int) {
	switch {
	case bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}):
		return encoding.Nop, "", 3
	case bytes.HasPrefix(b, []byte{0x00, 0x00, 0xfe, 0xff}):
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), "", 4
	case bytes.HasPrefix(b, []byte{0xff, 0xfe, 0x00, 0x00}):
		// Checked before UTF-16LE's mark, of which this is a prefix:
		// UTF-16 text cannot go on with U+0000.
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM), "", 4
	case bytes.HasPrefix(b, []byte{0xfe, 0xff}):
		return xunicode.UTF16(xunicode.BigEndian, xunicode.IgnoreBOM), "", 2
	case bytes.HasPrefix(b, []byte{0xff, 0xfe}):
		return xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM), "", 2
	}
	if bytes.HasPrefix(b, []byte{0x4c, 0x6f, 0xa7, 0x94}) {
		// "<?xm" in EBCDIC: its declaration names the code page.
		head, _ := decodeWith(charmap.CodePage037, b[:min(len(b), 256)])
		if m := xmlDeclRe.FindSubmatch(head); m != nil {
			if enc, _ := lookup(strings.ToLower(string(m[1]))); enc != nil {
				return enc, "", 0
			}
		}
		return charmap.CodePage037, "", 0
	}
	if len(b) < 4 || bytes.IndexByte(b[:4], 0) < 0 {
		return nil, "", 0
	}
	// The first character of a feed is '<' or white space, ASCII: its
	// code unit has zero bytes on the side its byte order puts them.
	switch {
	case b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] != 0:
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), recoveryUnmarkedUTF32, 0
	case b[0] != 0 && b[1] == 0 && b[2] == 0 && b[3] == 0:
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM), recoveryUnmarkedUTF32, 0
	case b[0] == 0 && b[1] != 0:
		return xunicode.UTF16(xunicode.BigEndian, xunicode.IgnoreBOM), recoveryUnmarkedUTF16, 0
	case b[0] != 0 && b[1] == 0:
		return xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM), recoveryUnmarkedUTF16, 0
	}
	return nil, "", 0
}

// lookup returns the encoding of a charset label and its canonical name
// (WHATWG labels first, so ISO-8859-1 is windows-1252, as the parser reads
// it; IANA's for the rest), or nil when the label is empty, unknown, or the
// "replacement" encoding that would turn the whole body into one U+FFFD.
func lookup(label string) (encoding.Encoding, string) {
	if label == "" {
		return nil, ""
	}
	enc, name := charset.Lookup(label)
	if enc == nil {
		// Labels the web dropped but XML feeds still declare (IBM437,
		// the EBCDIC code pages, ...) are IANA's.
		if e, err := ianaindex.IANA.Encoding(label); err == nil && e != nil {
			return e, label
		}
	}
	if enc == nil || name == "replacement" {
		return nil, ""
	}
	return enc, name
}

func isUTF8Label(l string) bool { return l == "utf-8" || l == "utf8" || l == "unicode-1-1-utf-8" }

// usable returns the encoding a label names if it can be the body's: known,
// not UTF-8 (which the caller has found the bytes are not), and either
// ASCII-compatible or reading the body's first bytes as markup. A UTF-16
// or UTF-32 label over a body without their zero bytes would turn every
// tag into CJK ideographs.
func usable(label string, body []byte) encoding.Encoding {
	enc, name := lookup(label)
	if enc == nil || name == "utf-8" {
		return nil
	}
	if out, err := decodeWith(enc, []byte("<?xml")); err == nil && string(out) == "<?xml" {
		return enc
	}
	out, err := decodeWith(enc, body[:min(len(body), 64)])
	if err != nil || !bytes.HasPrefix(bytes.TrimLeft(out, " \t\r\n"), []byte("<")) {
		return nil
	}
	return enc
}

// multiByte holds the canonical names of the East Asian multi-byte
// charsets; every other legacy charset is a single-byte code page.
var multiByte = map[string]bool{
	"shift_jis": true, "euc-jp": true, "iso-2022-jp": true, "euc-kr": true,
	"gbk": true, "gb18030": true, "big5": true,
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// utf8Sequences counts the valid multi-byte UTF-8 sequences in b.
func utf8Sequences(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			n++
		}
		i += size
	}
	return n
}

// mostlyUTF8 reports whether b is UTF-8 with a few invalid bytes: valid
// multi-byte sequences outnumber the invalid bytes at least two to one.
// Text in a legacy charset forms a valid sequence only now and then.
func mostlyUTF8(b []byte) bool {
	valid, invalid := 0, 0
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			invalid++
		} else {
			valid++
		}
		i += size
	}
	return valid > 0 && valid >= 2*invalid
}

// repairUTF8 keeps the valid UTF-8 of b and reads each invalid byte as
// windows-1252, the charset such stray bytes almost always come from.
func repairUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	dec := charmap.Windows1252.DecodeByte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			r = dec(b[i])
		}
		out = utf8.AppendRune(out, r)
		i += size
	}
	return out
}

// detect guesses the charset of a body that is not UTF-8 and declares
// nothing usable, with ICU's detector (markup stripped, so the statistics
// are of the text). On a short text every East Asian candidate scores
// alike and a single-byte one can win by chance, so the feed's own language
// tag (<language>, xml:lang) puts the charsets of that language first (the
// detector's own language guesses are too rough for this); without one,
// cjkContenders and cyrillic judge where the detector is unsure. Candidates
// the bytes rule out (UTF-8, UTF-16, any whose decoding has errors) are
// passed over; windows-1252, the web's fallback, is what is left when none
// remains.
func detect(body []byte) encoding.Encoding {
	sample := body[:min(len(body), detectSample)]
	results, err := chardet.NewHtmlDetector().DetectAll(sample)
	if err != nil {
		return charmap.Windows1252
	}
	orderTies(results)
	// The language's charsets in the detector's order, then those it
	// ruled out on too little text, then the detector's order.
	hinted := langCharsets[feedLanguage(sample)]
	var names []string
	for _, r := range results {
		if _, canon := lookup(strings.ToLower(r.Charset)); slices.Contains(hinted, canon) {
			names = append(names, canon)
		}
	}
	names = append(names, hinted...)
	if contenders := cjkContenders(results); contenders != nil {
		if name := guessCJK(sample, contenders); name != "" {
			names = append(names, name)
		}
	}
	if (len(results) == 0 || results[0].Confidence < 30) && cyrillic(sample) {
		names = append(names, "windows-1251")
	}
	for _, r := range results {
		names = append(names, strings.ToLower(r.Charset))
	}
	names = append(names, "windows-1252")
	var candidates []encoding.Encoding
	for _, name := range names {
		if enc := usable(name, body); enc != nil {
			candidates = append(candidates, enc)
		}
	}
	for _, enc := range candidates {
		if out, err := decodeWith(enc, sample); err == nil && !bytes.ContainsRune(out, utf8.RuneError) {
			return enc
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return charmap.Windows1252
}

// tieOrder ranks charsets the detector scores the same: the web's most used
// first, so that a tie resolves to the likelier reading.
var tieOrder = []string{
	"utf-8", "windows-1252", "iso-8859-1", "iso-8859-15", "windows-1254", "iso-8859-9",
	"windows-1250", "iso-8859-2", "windows-1251", "koi8-r", "shift_jis", "euc-jp",
	"gb18030", "big5", "euc-kr",
}

// orderTies sorts results by confidence, ties by tieOrder then by name. The
// detector scores its charsets concurrently and sorts them unstably, so
// without this the same bytes read "naïve" on one poll and "naďve" on the
// next.
func orderTies(results []chardet.Result) {
	rank := func(charset string) int {
		if i := slices.Index(tieOrder, strings.ToLower(charset)); i >= 0 {
			return i
		}
		return len(tieOrder)
	}
	slices.SortStableFunc(results, func(a, b chardet.Result) int {
		if a.Confidence != b.Confidence {
			return b.Confidence - a.Confidence
		}
		if ra, rb := rank(a.Charset), rank(b.Charset); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Charset, b.Charset)
	})
}

// langRe finds the feed's language: RSS <language>, Dublin Core
// <dc:language>, Atom's xml:lang.
var langRe = regexp.MustCompile(`(?i)(?:<(?:dc:)?language>\s*|xml:lang\s*=\s*["'])([a-z]{2,3})(?:[-_]([a-z]{2,4}))?`)

// cjkContenders returns the East Asian charsets the detector cannot tell
// apart: those that share its best score among them, when that score is 10
// of 100 (too few two-byte characters to judge, and a single-byte charset
// then tends to win on noise) or when several share it. Those it scored 0
// it has ruled out.
func cjkContenders(results []chardet.Result) []string {
	var names []string
	best := 0
	for _, r := range results {
		_, canon := lookup(strings.ToLower(r.Charset))
		if !multiByte[canon] || r.Confidence == 0 || len(names) > 0 && r.Confidence != best {
			continue
		}
		best = r.Confidence
		names = append(names, canon)
	}
	if best <= 10 || len(names) > 1 {
		return names
	}
	return nil
}

// cjkFrequent tells, per East Asian charset, whether a two-byte character is
// in its block of frequent letters: the 2,350 Hangul syllables of KS X 1001,
// GB2312's level-1 hanzi, Big5's frequent hanzi, and JIS X 0208's kana and
// level-1 kanji. Text in one of these charsets read as another lands mostly
// outside that block (or fails to decode), so the share of letters inside
// it tells the charsets apart where there are too few characters for
// frequency statistics. Listed in the order that breaks ties: Korean read as
// GBK is frequent hanzi as well, Chinese read as EUC-KR rarely all Hangul.
var cjkFrequent = []struct {
	name     string
	frequent func(lead, trail byte) bool
}{
	{"euc-kr", func(l, t byte) bool { return l >= 0xb0 && l <= 0xc8 && t >= 0xa1 && t <= 0xfe }},
	{"gb18030", func(l, t byte) bool { return l >= 0xb0 && l <= 0xd7 && t >= 0xa1 && t <= 0xfe }},
	{"big5", func(l, t byte) bool {
		return l >= 0xa4 && l <= 0xc5 && (t >= 0x40 && t <= 0x7e || t >= 0xa1 && t <= 0xfe) || l == 0xc6 && t >= 0x40 && t <= 0x7e
	}},
	{"euc-jp", func(l, t byte) bool {
		return (l == 0xa4 || l == 0xa5) && t >= 0xa1 && t <= 0xf6 || l >= 0xb0 && l <= 0xcf && t >= 0xa1 && t <= 0xfe
	}},
	{"shift_jis", func(l, t byte) bool {
		return l == 0x82 && t >= 0x9f && t <= 0xf1 || l == 0x83 && t >= 0x40 && t <= 0x96 || l >= 0x88 && l <= 0x98 && t >= 0x40 && t <= 0xfc
	}},
}

// guessCJK returns the one of the contenders in which most (at least 80%)
// of the sample's letters are frequent ones, or "" when none is. On a tie a
// Japanese charset that reads kana wins: only Japanese text has them.
func guessCJK(sample []byte, contenders []string) string {
	best, bestShare, bestKana := "", 0.8, false
	for _, c := range cjkFrequent {
		if !slices.Contains(contenders, c.name) {
			continue
		}
		enc, _ := lookup(c.name)
		text, err := decodeWith(enc, sample)
		if err != nil {
			continue
		}
		e := enc.NewEncoder()
		letters, frequent, kana := 0, 0, false
		for _, r := range string(text) {
			if r == utf8.RuneError || r >= 0xe000 && r <= 0xf8ff {
				letters = 0 // undecodable, or a private-use code: not this charset
				break
			}
			if r < utf8.RuneSelf || !unicode.IsLetter(r) {
				continue
			}
			letters++
			kana = kana || unicode.In(r, unicode.Hiragana, unicode.Katakana)
			if b, err := e.Bytes([]byte(string(r))); err == nil && len(b) == 2 && c.frequent(b[0], b[1]) {
				frequent++
			}
		}
		if letters < 2 {
			continue
		}
		japanese := kana && (c.name == "euc-jp" || c.name == "shift_jis")
		share := float64(frequent) / float64(letters)
		if share > bestShare || share == bestShare && best != "" && japanese && !bestKana {
			best, bestShare, bestKana = c.name, share, japanese
		}
	}
	return best
}

// langCharsets are the legacy charsets a feed in a language is likely in,
// by the language (and script) of its language tag: the East Asian ones,
// which short texts cannot tell apart, and the Cyrillic ones.
var langCharsets = map[string][]string{
	"ko":      {"euc-kr"},
	"ja":      {"shift_jis", "euc-jp"},
	"zh":      {"gb18030", "gbk"},
	"zh-hant": {"big5"},
	"ru":      cyrillicCharsets,
	"uk":      cyrillicCharsets,
	"be":      cyrillicCharsets,
	"bg":      cyrillicCharsets,
	"sr":      cyrillicCharsets,
	"mk":      cyrillicCharsets,
}

var cyrillicCharsets = []string{"windows-1251", "koi8-r", "koi8-u", "ibm866", "iso-8859-5"}

// cyrillic reports whether the sample reads as Cyrillic text in
// windows-1251, for short texts the detector is unsure of: at least four
// letters beyond ASCII, all of them Cyrillic, at least as many as the ASCII
// letters (Western text has a few accents among many plain letters), one
// of them a capital, and no capital right after a small letter inside a
// word (KOI8-R read as windows-1251 swaps the cases: "пРЕЗИДЕНТ"). Letters
// inside tags are not text and are not counted.
func cyrillic(sample []byte) bool {
	text, err := decodeWith(charmap.Windows1251, sample)
	if err != nil {
		return false
	}
	latin, cyr, capitals := 0, 0, 0
	var prev rune
	inTag := false
	for _, r := range string(text) {
		switch {
		case r == '<' || r == '>':
			inTag = r == '<'
		case inTag:
			continue
		case r < utf8.RuneSelf:
			if unicode.IsLetter(r) {
				latin++
			}
		case unicode.Is(unicode.Cyrillic, r):
			cyr++
			if unicode.IsUpper(r) {
				capitals++
				if unicode.IsLower(prev) {
					return false
				}
			}
		case unicode.IsLetter(r):
			return false
		}
		prev = r
	}
	return cyr >= 4 && cyr >= latin && capitals > 0
}

// feedLanguage returns the feed's first language tag as a key of
// langCharsets: the primary language, or zh-hant for Chinese of Taiwan,
// Hong Kong and Macao, written in traditional characters (Big5).
func feedLanguage(b []byte) string {
	m := langRe.FindSubmatch(b)
	if m == nil {
		return ""
	}
	lang := strings.ToLower(string(m[1]))
	switch strings.ToLower(string(m[2])) {
	case "tw", "hk", "mo", "hant":
		if lang == "zh" {
			return "zh-hant"
		}
	}
	return lang
}

// decodeClean decodes body with enc and cleans the result.
func decodeClean(enc encoding.Encoding, body []byte, rec recovery) ([]byte, []recovery, error) {
	out, err := decodeWith(enc, body)
	if err != nil {
		return nil, nil, err
	}
	return clean(out, rec)
}

func decodeWith(enc encoding.Encoding, body []byte) ([]byte, error) {
	out, _, err := transform.Bytes(enc.NewDecoder(), body)
	if err != nil {
		return nil, fmt.Errorf("poller: decode charset: %w", err)
	}
	return out, nil
}

// clean finishes decoded UTF-8 text for the parser: invalid sequences
// (left by a decoder or a truncated body) become U+FFFD, control characters
// XML forbids are dropped, the declaration says UTF-8. rec, when set, is
// the recovery that produced text.
func clean(text []byte, rec recovery) ([]byte, []recovery, error) {
	var recs []recovery
	if rec != "" {
		recs = append(recs, rec)
	}
	if !utf8.Valid(text) {
		text = bytes.ToValidUTF8(text, []byte("\uFFFD"))
	}
	if i := indexForbiddenControl(text); i >= 0 {
		out := make([]byte, 0, len(text))
		out = append(out, text[:i]...)
		for _, c := range text[i:] {
			if c >= 0x20 || c == '\t' || c == '\n' || c == '\r' {
				out = append(out, c)
			}
		}
		text = out
		recs = append(recs, recoveryControlChars)
	}
	return rewriteDecl(text), recs, nil
}

// indexForbiddenControl returns the index of the first C0 control that
// XML 1.0 does not allow, or -1. In UTF-8 such bytes are only ever those
// characters.
func indexForbiddenControl(b []byte) int {
	for i, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return -1
}

// rewriteDecl makes the XML declaration (if any) say UTF-8.
func rewriteDecl(body []byte) []byte {
	head := body[:min(len(body), 512)]
	loc := xmlDeclRe.FindSubmatchIndex(head)
	if loc == nil {
		return body
	}
	if isUTF8Label(strings.ToLower(string(head[loc[2]:loc[3]]))) {
		return body
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:loc[2]]...)
	out = append(out, "UTF-8"...)
	out = append(out, body[loc[3]:]...)
	return out
}
