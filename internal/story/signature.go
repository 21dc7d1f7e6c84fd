package story

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/feedmon/feedmon/internal/htmltext"
)

// Signature parameters. They are part of the persisted state (band keys in
// KV are MinHash values), so changing one is a migration: stories recorded
// before the change stop being found until they expire.
const (
	// Bands is the number of MinHash values; each one is an LSH band of
	// one row. Reworded reports of one story share only a quarter to a half
	// of their content words, so bands must be narrow to find them at all:
	// two texts of unweighted Jaccard 0.2 share at least one of 16 one-row
	// bands with probability about 1-0.8^16 = 0.97 (every reworded pair of
	// the fixtures shares three or more). Precision comes from the
	// verification that follows, not from the bands.
	Bands = 16
	// anchorBands are more bands, keyed by the rich figures an item
	// quotes (see anchorKeys): reports of one story told in other words
	// share few words and may share no MinHash value, but they quote its
	// sum, its toll, its rate.
	anchorBands = 4
	// allBands is the number of band values an item is indexed under.
	allBands = Bands + anchorBands
	// maxTokens bounds a signature (and the work per item) for long texts;
	// the title and the start of the summary say what the story is.
	maxTokens = 96
	// prefixLen is the crude stemmer for alphabetic words: "defence",
	// "defense" and "defended" all become "defen"; "tariffs" and "tariff"
	// meet at "tarif". It works across English, German and French without a
	// stemmer per language.
	prefixLen = 5
)

// Token weights (in halves, to keep signatures integral): numbers and
// names tell stories apart better than common words. Two duty stories share
// "impose", "duty" and "imports"; two reports of one duty share its rate,
// the country and the goods.
const (
	weightWord   = 2
	weightNumber = 4
	weightName   = 3
	// weightBoth is added to a word of both the headline and the summary.
	weightBoth = 2
	// weightOrdinal is the weight of an ordinal ("fourth", "第四"): a
	// number to the figure rule, weighed as a word.
	weightOrdinal = 2
	// fromTitle marks headline tokens while a signature is built.
	fromTitle = 0x8
)

// token is one feature of a text: the hash of its normalised form in the
// high 56 bits, its weight in the low three, (while a signature is built)
// a headline flag in bit 3, in bit 4 whether it is a common word (see
// commonWords), in bit 5 whether it is a number, in bit 6 whether it was
// read in a passing mention (while a signature is built) or is a number
// of the headline (in a signature) and in bit 7 whether it is a name of
// the headline. Packed into one word, a signature sorts as plain integers
// and takes 8 bytes a token.
type token uint64

// isCommon marks a token of a common word, isNumber one of a number,
// isHeadName a name the headline holds (not a common word); isMention,
// while a signature is built, one read in a passing mention of another
// event (see clause). In a signature, the bit of isMention is
// isHeadFigure: a number the headline holds.
const (
	isCommon     = 0x10
	isNumber     = 0x20
	isMention    = 0x40
	isHeadName   = 0x80
	isHeadFigure = isMention
)

func mkToken(h uint64, w uint8) token { return token(h&^0xff | uint64(w)) }

func (t token) id() uint64    { return uint64(t) >> 8 }
func (t token) weight() uint8 { return uint8(t & 7) }
func (t token) inTitle() bool { return t&fromTitle != 0 }
func (t token) common() bool  { return t&isCommon != 0 }

// headName reports a name of the headline: 1 or 0.
func (t token) headName() int { return int(t >> 7 & 1) }

// figure reports a number that counts something (not a common one: a
// day, a month, a year), which two reports of one event both quote.
func (t token) figure() bool { return t&(isNumber|isCommon) == isNumber }

// headFigure reports a figure of the headline: 1 or 0.
func (t token) headFigure() int { return int(t >> 6 & 1) }

// signature is what the index keeps of one item: its weighted token set,
// sorted, and one MinHash value per band (^0 for a band no token fell in).
type signature struct {
	toks []token
	mins [allBands]uint64
	anc  anchors
}

// signDoc is the signature of d with its anchors. Its tokens and figures
// share the arrays of scratch when it is not nil.
func signDoc(d Doc, scratch *scratch) signature {
	var toks []token
	var figs []figure
	if scratch != nil {
		toks, figs = scratch.toks[:], scratch.figs[:]
	}
	// HTML is read once, for both.
	if strings.ContainsAny(d.Title, "<&") {
		d.Title = htmltext.ToText(d.Title)
	}
	if strings.ContainsAny(d.Text, "<&") {
		d.Text = htmltext.ToText(d.Text)
	}
	s := sign(d.Title, d.Text, d.Lang, toks)
	s.anc = scanAnchors(d.Title, d.Text, d.Lang, figs)
	s.anc.anchorKeys(s.mins[Bands:])
	return s
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// sign computes the signature of an item. title and text may hold HTML.
// The signature's tokens share scratch's array (when it is large enough):
// copy them to keep them past the next use of scratch.
//
// The MinHash is one-permutation hashing: a token's hash picks its band
// and competes for that band's minimum, so a signature costs one pass over
// the tokens instead of one per band. A band no token fell into (a short
// text) has no value and is not indexed.
func sign(title, text, lang string, scratch []token) signature {
	var s signature
	toks := scratch[:0]
	toks = tokenize(toks, title, lang, true, false)
	for i := range toks {
		toks[i] |= fromTitle
	}
	if len(toks) < maxTokens {
		toks = tokenize(toks, text, lang, false, false)
	}
	if len(toks) > maxTokens {
		toks = toks[:maxTokens]
	}
	sortTokens(toks)
	// Deduplicate, keeping the highest weight. A word of both the headline
	// and the summary is what the story is about ("biodiesel" in one duty
	// story, "plywood" in its look-alike): it weighs more. In place: the
	// signature's tokens are the front of scratch (Index.insertNewLocked
	// copies what it keeps).
	k := 0
	for i := 0; i < len(toks); {
		j := i
		var w uint8
		inTitle, inText := false, false
		for ; j < len(toks) && toks[j].id() == toks[i].id(); j++ {
			if toks[j]&isMention != 0 {
				continue // counts only when the word has no other use
			}
			w = max(w, toks[j].weight())
			if toks[j].inTitle() {
				inTitle = true
			} else {
				inText = true
			}
		}
		// A name of the headline (a place, a company, a person) is what
		// tells one story from its look-alikes (see similarityLocked).
		var headName token
		if inTitle && w == weightName {
			headName = isHeadName
		}
		if inTitle && inText {
			w += weightBoth
		}
		if w == 0 {
			// Only in passing mentions of another event: what this item
			// shares with a report of that event says nothing, and
			// their place or figures are not this item's. Weighed at
			// all, "Copenhagen" in "two days after sightings shut
			// Copenhagen airport" would join a report of the Aalborg
			// closure to the Copenhagen story.
			i = j
			continue
		}
		toks[k] = mkToken(uint64(toks[i]), w) | toks[i]&isNumber
		if inTitle && toks[k]&isNumber != 0 {
			// A figure the headline quotes is the news itself (see
			// similarityLocked).
			toks[k] |= isHeadFigure
		}
		if commonWords.has(toks[k].id()) {
			toks[k] |= isCommon
		} else {
			toks[k] |= headName
		}
		k++
		i = j
	}
	out := toks[:k:k]
	s.toks = out
	for i := range s.mins {
		s.mins[i] = noBand
	}
	for _, t := range out {
		v := splitmix(t.id())
		b := int((v >> 32) * Bands >> 32)
		if v < s.mins[b] {
			s.mins[b] = v
		}
	}
	return s
}

// sortTokens sorts at most maxTokens tokens: their hashes are uniform, so
// one counting pass on the top six bits leaves each in a bucket of about
// one, and an insertion sort finishes the job in about one move each. It
// uses toks' spare capacity (sign's scratch) as the buffer when it can.
func sortTokens(toks []token) {
	n := len(toks)
	if n <= 16 || n > maxTokens || cap(toks) < 2*n {
		slices.Sort(toks)
		return
	}
	var count [65]uint8
	for _, t := range toks {
		count[t>>58+1]++
	}
	for b := 1; b < len(count); b++ {
		count[b] += count[b-1]
	}
	tmp := toks[n : 2*n]
	for _, t := range toks {
		b := t >> 58
		tmp[count[b]] = t
		count[b]++
	}
	for i := 1; i < n; i++ {
		t := tmp[i]
		j := i
		for ; j > 0 && tmp[j-1] > t; j-- {
			tmp[j] = tmp[j-1]
		}
		tmp[j] = t
	}
	copy(toks, tmp)
}

// noBand marks a band without a value.
const noBand = ^uint64(0)

// similarity is the weighted Jaccard similarity of two signatures,
// Σ min(w) / Σ max(w) over the union of their tokens, without the index's
// rarity factors (Index.similarityLocked has them).
func similarity(a, b []token) float64 {
	var inter, union int
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch ia, ib := a[i].id(), b[j].id(); {
		case ia == ib:
			inter += int(min(a[i].weight(), b[j].weight()))
			union += int(max(a[i].weight(), b[j].weight()))
			i++
			j++
		case ia < ib:
			union += int(a[i].weight())
			i++
		default:
			union += int(b[j].weight())
			j++
		}
	}
	for ; i < len(a); i++ {
		union += int(a[i].weight())
	}
	for ; j < len(b); j++ {
		union += int(b[j].weight())
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// tokenize appends the tokens of s to toks. Alphabetic words are case- and
// accent-folded, stop words dropped, the rest cut to prefixLen runes after
// a plural "s" is dropped; numbers keep their digits ("$400m" and "400
// million" meet at "400", "26,000" is "26000"); Chinese, Japanese and
// Korean runs give character bigrams (no spaces to split on), except
// bigrams with a particle or function character (see cjkBreak). Ordinals
// are numbers ("fourth", "quatrième", "第四" are "4"); a number that is
// part of a name ("Ariane 6", "F-35") is no figure (see modelNumber).
// Tokens read in a passing mention of another event are marked isMention
// (see clause).
//
// It runs on every classified item, so it hashes words as it reads them
// (FNV-1a over the folded UTF-8) instead of building strings.
//
// s may hold HTML unless plain is set: at its first '<' or '&', tokenize
// starts again on the text of s (htmltext.ToText), which most items, sent
// as plain text, never need.
func tokenize(toks []token, s, lang string, title, plain bool) []token {
	stop := stopWords(lang)
	// German capitalises every noun: capitals say nothing about names.
	useCaps := lang != "de"
	first := len(toks)
	words, capitals := 0, 0
	models := false // a number read as part of a name (see modelNumber)
	sentenceStart := true
	var cl clause
	var prevCJK rune
	// The capitalised word read last (see modelNumber): where it ends,
	// its hash, and whether it is a single letter ("F" of "F-35").
	nameEnd, nameHash, nameLetter := -1, uint64(0), false
	var buf [48]byte
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && !asciiWord[c] {
			// Spaces and punctuation, without rune decoding.
			prevCJK = 0
			switch c {
			case '.', '!', '?', ':', ';':
				sentenceStart = true
				cl.mention = 0
			case ',', '(', ')':
				cl.mention = 0
			case '<', '&':
				if !plain {
					return tokenize(toks[:first], htmltext.ToText(s), lang, title, true)
				}
			}
			i++
			continue
		}
		r, size := decode(s, i)
		if r >= 0x2e80 && isCJK(r) {
			if prevCJK == '第' && cjkNumeral(r) > 0 {
				// 第四 is "fourth": the ordinal, as in other languages.
				toks = append(toks, ordinals[cjkNumeral(r)]|cl.mention)
			} else if prevCJK != 0 && !cjkBreak(prevCJK) && !cjkBreak(r) {
				toks = append(toks, mkToken(hashRunes(prevCJK, r), weightWord)|cl.mention)
			}
			prevCJK = r
			i += size
			sentenceStart = false
			continue
		}
		prevCJK = 0
		if !isWordRune(r) {
			switch r {
			case '。', '，', '；', '：', '！', '？', '—', '–', '（', '）':
				cl.mention = 0
			}
			i += size
			continue
		}
		if c := s[i]; c < utf8.RuneSelf && !isDigit(rune(c)) {
			// Fast path: an ASCII word that ends in ASCII (most words).
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && asciiWord[s[j]] {
				j++
			}
			if j == len(s) || s[j] < utf8.RuneSelf {
				// Folded and hashed straight from s: the word is ASCII
				// letters and digits, so c|0x20 is its lower case, and
				// hashBytes of the word and of its stem need only its
				// first eight (or twelve) bytes, loaded a word at a time.
				start, n := i, j-i
				i = j
				wasUnit := cl.unit
				cl.unit = false
				words++
				capital := c >= 'A' && c <= 'Z'
				if capital {
					capitals++
				}
				wasStart := sentenceStart
				sentenceStart = false
				if n < 2 {
					if capital {
						nameEnd, nameHash, nameLetter = i, 0, true
					}
					continue
				}
				w0 := loadLower(s, start, min(n, 8))
				h := uint64(0)
				var full uint64
				if n <= maxStopLen && stop.maybe(n, w0) {
					if n < 8 {
						full = splitmix(uint64(n)*hashK0 ^ w0)
					} else {
						x := (uint64(n)*hashK0 ^ w0) * hashK1
						x ^= x >> 29
						full = splitmix(x ^ loadLower(s, start+8, n-8))
					}
					var done bool
					h = stop.lookup(full)
					if toks, done = cl.stopWord(h, wasUnit, toks); done {
						continue
					}
				}
				if h == 0 {
					switch {
					case n == prefixLen && byte(w0>>32) == 's' && byte(w0>>24) != 's':
						h = splitmix(hashLen4 ^ w0&0xffffffff)
					case n >= prefixLen:
						h = splitmix(hashLen5 ^ w0&0xffffffffff)
					default: // 2 to 4 bytes: the word is its own stem
						h = splitmix(uint64(n)*hashK0 ^ w0)
					}
				}
				w := uint8(weightWord)
				if useCaps && capital && !wasStart {
					w = weightName
				}
				if capital {
					nameEnd, nameHash, nameLetter = i, h, false
				}
				toks = append(toks, mkToken(h, w)|cl.mention)
				continue
			}
		}
		// One word: letters and digits, with '.' and ',' inside numbers,
		// folded into buf; end4 and end5 are where its fourth and fifth
		// runes end.
		wasUnit := cl.unit
		cl.unit = false
		digit := isDigit(fold(r))
		capital := isUpper(r)
		start, grouped := i, false
		n, end4, end5 := 0, 0, 0
		runes := 0
		var last, prev rune
		for i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				// The common case, without rune decoding or tables.
				if !asciiWord[c] {
					if digit && (c == '.' || c == ',') && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
						grouped = true
						i++
						continue
					}
					break
				}
				i++
				c = asciiLower[c]
				if digit && c > '9' || n == len(buf) {
					continue
				}
				buf[n] = c
				n++
				if !digit {
					runes++
					if runes == 4 {
						end4 = n
					} else if runes == prefixLen {
						end5 = n
					}
					prev, last = last, rune(c)
				}
				continue
			}
			r, size = decode(s, i)
			if r >= 0x300 && unicode.Is(unicode.Mn, r) {
				i += size // a combining accent: folded away
				continue
			}
			if (r >= 0x2e80 && isCJK(r)) || !isWordRune(r) {
				break
			}
			i += size
			f := fold(r)
			if digit && !isDigit(f) || n+utf8.UTFMax > len(buf) {
				continue
			}
			n += utf8.EncodeRune(buf[n:], f)
			if !digit {
				runes++
				if runes == 4 {
					end4 = n
				} else if runes == prefixLen {
					end5 = n
				}
				prev, last = last, f
			}
		}
		wasStart := sentenceStart
		sentenceStart = false
		if !digit {
			words++
			if capital {
				capitals++
			}
		}
		if digit {
			if n == 0 {
				continue
			}
			h := hashBytes(buf[:n])
			if !grouped && modelNumber(s, start, i, nameEnd, nameHash, nameLetter) {
				// Part of a name, weighed as a number; see modelNumber.
				toks = append(toks, mkToken(h^modelSalt, weightNumber)|cl.mention)
				models = true
				continue
			}
			toks = append(toks, mkToken(h, weightNumber)|isNumber|cl.mention)
			continue
		}
		if runes < 2 {
			continue
		}
		h := uint64(0)
		if n <= maxStopLen {
			var done bool
			h = stop.lookup(hashBytes(buf[:n]))
			if toks, done = cl.stopWord(h, wasUnit, toks); done {
				continue
			}
		}
		if h == 0 {
			// The stem: a five-letter plural loses its "s", longer words
			// are cut to their first five letters.
			switch {
			case runes == prefixLen && last == 's' && prev != 's':
				n = end4
			case runes > prefixLen:
				n = end5
			}
			h = hashBytes(buf[:n])
		}
		w := uint8(weightWord)
		if useCaps && capital && !wasStart {
			w = weightName
		}
		if capital {
			nameEnd, nameHash, nameLetter = i, h, false
		}
		toks = append(toks, mkToken(h, w)|cl.mention)
	}
	// Headlines in Title Case capitalise every word: there, capitals say
	// nothing about names either.
	if title && words >= 3 && capitals*10 > words*6 {
		for i := first; i < len(toks); i++ {
			switch t := toks[i]; {
			case t.weight() == weightName:
				toks[i] = mkToken(uint64(t), weightWord)
			case models && t.weight() == weightNumber && t&isNumber == 0:
				// "Tesla Axes 200 Jobs": a count after all.
				toks[i] = t ^ modelSalt | isNumber
			}
		}
	}
	return toks
}

// modelSalt sets the token of a number that is part of a name apart from
// the same number as a count: "Ariane 6" says nothing of "6 satellites".
// (Its low byte is zero: the token's flags stay as they are.)
const modelSalt = 0x5a17_c3e9_2b4d_8f00

// modelNumber reports whether the number s[start:end] is part of a name
// rather than a count: a designation that follows a capitalised word,
// joined to it by a space or a hyphen ("Ariane 6", "Boeing 787", "F-35",
// "PAC-3", "Sentinel-1D"). Reports of one launch, one crash, one order
// share the product's number whatever they count; the next launch of the
// same rocket shares it too, so as a figure it would hide the counts that
// tell the two apart (its fourth flight, its third).
//
// nameEnd is where the last capitalised word read ends (-1 for none),
// nameHash its hash (as tokenize hashes it), nameLetter whether it is a
// single letter, which joins only by a hyphen ("A 10-year deal" is no
// name). A common word before the number does not name anything ("October
// 9", "Category 5", "Nearly 300"); a number grouped with '.' or ',' is a
// measure (the caller tells), as is one followed by '%'; one followed by
// a hyphen and a digit is a score or a range ("Madrid 2-1", "Swiatek 6-3").
func modelNumber(s string, start, end, nameEnd int, nameHash uint64, nameLetter bool) bool {
	if nameEnd < 0 || start != nameEnd+1 {
		return false
	}
	switch s[nameEnd] {
	case '-':
	case ' ':
		if nameLetter {
			return false
		}
	default:
		return false
	}
	if end < len(s) {
		switch c := s[end]; {
		case c == '%':
			return false
		case c == '-' && end+1 < len(s) && isDigit(rune(s[end+1])):
			return false
		case strings.HasPrefix(s[end:], "–") && end+3 < len(s) && isDigit(rune(s[end+3])):
			return false
		}
	}
	return nameLetter || commonWords == nil || !commonWords.has(nameHash>>8)
}

func decode(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	// Three bytes (CJK, most punctuation beyond Latin-1), inline: what
	// utf8.DecodeRuneInString returns, without the call.
	if c&0xf0 == 0xe0 && i+2 < len(s) && s[i+1]&0xc0 == 0x80 && s[i+2]&0xc0 == 0x80 {
		r := rune(c&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
		if r >= 0x800 && (r < 0xd800 || r > 0xdfff) {
			return r, 3
		}
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiWord[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isUpper(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'A' && r <= 'Z'
	}
	return unicode.IsUpper(r)
}

var asciiWord = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	return t
}()

// latinFold folds U+0000–U+024F: lower case, accents removed (the first
// rune of the NFKD decomposition), so that "Défense" meets "defense".
var latinFold = func() (t [0x250]rune) {
	for r := range t {
		d := []rune(norm.NFKD.String(string(rune(r))))
		f := rune(r)
		if len(d) > 0 && d[0] < utf8.RuneSelf {
			f = d[0]
		}
		t[r] = unicode.ToLower(f)
	}
	return t
}()

// fold maps a rune to its case- and accent-free form; full-width ASCII
// becomes ASCII.
func fold(r rune) rune {
	switch {
	case r < 0x250:
		return latinFold[r]
	case r >= 0xff01 && r <= 0xff5e:
		return unicode.ToLower(r - 0xfee0)
	}
	return unicode.ToLower(r)
}

// isCJK reports Han, kana and Hangul: text written without spaces.
func isCJK(r rune) bool {
	switch {
	case r >= 0x3040 && r <= 0x30ff, // hiragana, katakana
		r >= 0x3400 && r <= 0x4dbf, r >= 0x4e00 && r <= 0x9fff, // Han
		r >= 0xac00 && r <= 0xd7af,                               // Hangul syllables
		r >= 0xf900 && r <= 0xfaff, r >= 0x20000 && r <= 0x2fa1f, // Han
		r >= 0xff66 && r <= 0xff9f, // half-width katakana
		r >= 0x2e80 && r <= 0x2fdf, r >= 0x31f0 && r <= 0x31ff, r == 0x3005:
		return true
	}
	return false
}

func isHiragana(r rune) bool { return r >= 0x3040 && r <= 0x309f }

// cjkBreak reports a character that ends a CJK word rather than being
// part of one: hiragana (Japanese particles and inflections: "体の", "の製"
// say nothing) and the most frequent Chinese function characters ("的",
// "对", "于"). A bigram with one of them joins two words by grammar, and
// every notice has dozens of them.
func cjkBreak(r rune) bool {
	if isHiragana(r) {
		return true
	}
	switch r {
	case '的', '了', '和', '与', '及', '对', '将', '在', '于', '是', '为', '等', '并', '其', '已', '也', '从', '向', '把', '被', '之', '或', '而', '这', '该':
		return true
	}
	return false
}

// hashBytes hashes a folded word (or stem, or number) eight bytes at a
// time: words are short, and a byte-serial hash such as FNV was the
// largest cost of a signature.
func hashBytes(b []byte) uint64 {
	h := uint64(len(b)) * hashK0
	for len(b) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(b)) * hashK1
		h ^= h >> 29
		b = b[8:]
	}
	var t uint64
	for i, c := range b {
		t |= uint64(c) << (8 * i)
	}
	return splitmix(h ^ t)
}

const (
	hashK0 = 0x9e3779b97f4a7c15
	hashK1 = 0xbf58476d1ce4e5b9
	// hashLen4 and hashLen5 start hashBytes of a 4- and a 5-byte stem.
	hashLen4 = 4 * hashK0 % (1 << 64)
	hashLen5 = prefixLen * hashK0 % (1 << 64)
)

// loadLower returns bytes s[i:i+n] (n <= 8, ASCII letters and digits)
// lower-cased, little-endian, as hashBytes reads them.
func loadLower(s string, i, n int) uint64 {
	if n == 0 {
		return 0
	}
	mask := ^uint64(0) >> (64 - 8*uint(n))
	if i+8 <= len(s) {
		_ = s[i+7] // one bounds check; the loads below combine into one
		v := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		return (v | 0x2020202020202020) & mask
	}
	var v uint64
	for k := n - 1; k >= 0; k-- {
		v = v<<8 | uint64(s[i+k]|0x20)
	}
	return v
}

// hashRunes hashes a CJK bigram.
func hashRunes(a, b rune) uint64 {
	return splitmix(uint64(a)<<32 | uint64(b) ^ 0x5bd1e9955bd1e995)
}

var asciiLower = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		t[c] = byte(c)
		if c >= 'A' && c <= 'Z' {
			t[c] += 'a' - 'A'
		}
	}
	return t
}()

// clause follows, while tokenize reads a text, whether its words refer
// back to another event in passing: "China barred exports from Nexperia's
// plant, days after the Netherlands took control of the company", "zwei
// Wochen nach dem Anschlag", "au lendemain de la chute du gouvernement".
// A follow-up names the event it follows, in the words of every report of
// that event; a report of the follow-up itself has its own. Such a clause
// starts at a span of time followed by "after" (or at a word that refers
// back by itself) and ends at the next comma or sentence end. A bare
// "after" is not enough: "flights were halted after drones were seen" is
// the event itself.
type clause struct {
	mention token // isMention within such a clause, else 0
	unit    bool  // the last word read was a span of time
}

// stopWord handles a word of stop-table value v (stopSet.lookup): done
// when it is a stop word, which is dropped or, for an ordinal, appended to
// toks as its number; not done for a content word (v is 0 or its stem).
func (c *clause) stopWord(v uint64, wasUnit bool, toks []token) (_ []token, done bool) {
	if v == 0 || v-1 >= stopMax {
		return toks, false
	}
	if t := c.stop(v, wasUnit); t != 0 {
		toks = append(toks, t|c.mention)
	}
	return toks, true
}

// stop notes a stop word of value v (see stopUnit) and returns the token
// it stands for (an ordinal's number), or 0. wasUnit is whether the word
// before it was a span of time.
func (c *clause) stop(v uint64, wasUnit bool) token {
	switch {
	case v == stopUnit:
		c.unit = true
	case v == stopAfter:
		if wasUnit {
			c.mention = isMention
		}
	case v == stopRefer:
		c.mention = isMention
	case v > stopOrdinal:
		return ordinals[v-stopOrdinal]
	}
	return 0
}

// ordinals[n] is the token of the ordinal n: the number n, as tokenize
// reads "4th" or "4.", so that two items that count differently ("a
// fourth frigate", "its first frigate") have a figure each.
var ordinals = func() (t [maxOrdinal + 1]token) {
	for n := 1; n <= maxOrdinal; n++ {
		t[n] = mkToken(hashBytes([]byte(strconv.Itoa(n))), weightOrdinal) | isNumber
	}
	return t
}()

// cjkNumeral is the value of a Chinese numeral from 一 to 十, else 0.
func cjkNumeral(r rune) int {
	switch r {
	case '一':
		return 1
	case '二':
		return 2
	case '三':
		return 3
	case '四':
		return 4
	case '五':
		return 5
	case '六':
		return 6
	case '七':
		return 7
	case '八':
		return 8
	case '九':
		return 9
	case '十':
		return 10
	}
	return 0
}
