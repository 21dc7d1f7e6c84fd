package story

import (
	"slices"
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
	// Bands is the number of MinHash functions; each one is an LSH band of
	// one row. Reworded reports of one story share only a quarter to a half
	// of their content words, so bands must be narrow to find them at all:
	// with 20 one-row bands two texts of unweighted Jaccard 0.2 share at
	// least one band with probability 1-0.8^20 = 0.99. Precision comes from
	// the verification that follows, not from the bands.
	Bands = 20
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
	weightNumber = 3
	weightName   = 3
)

// token is one feature of a text: the FNV-1a hash of its normalised form
// and its weight.
type token struct {
	h uint64
	w uint8
}

// signature is what the index keeps of one item: its weighted token set,
// sorted by hash, and its MinHash values (one per band).
type signature struct {
	toks []token
	mins [Bands]uint64
}

// minhash seeds: odd multipliers and offsets of the Bands hash functions
// h_i(t) = mix(t*a_i + b_i). Fixed, so that every process agrees.
var hashA, hashB = func() (a, b [Bands]uint64) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range Bands {
		x = splitmix(x)
		a[i] = x | 1
		x = splitmix(x)
		b[i] = x
	}
	return a, b
}()

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// sign computes the signature of an item. title and text may hold HTML.
func sign(title, text, lang string, scratch []token) signature {
	var s signature
	toks := scratch[:0]
	toks = tokenize(toks, title, lang, true)
	if len(toks) < maxTokens {
		toks = tokenize(toks, text, lang, false)
	}
	if len(toks) > maxTokens {
		toks = toks[:maxTokens]
	}
	slices.SortFunc(toks, func(a, b token) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(b.w) - int(a.w)
	})
	// Deduplicate, keeping the highest weight (sorted first).
	out := make([]token, 0, len(toks))
	for i, t := range toks {
		if i > 0 && t.h == toks[i-1].h {
			continue
		}
		out = append(out, t)
	}
	s.toks = out
	for i := range Bands {
		s.mins[i] = ^uint64(0)
	}
	for _, t := range out {
		for i := range Bands {
			v := t.h*hashA[i] + hashB[i]
			v ^= v >> 32
			if v < s.mins[i] {
				s.mins[i] = v
			}
		}
	}
	return s
}

// similarity is the weighted Jaccard similarity of two signatures:
// Σ min(w) / Σ max(w) over the union of their tokens.
func similarity(a, b []token) float64 {
	var inter, union int
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].h == b[j].h:
			inter += int(min(a[i].w, b[j].w))
			union += int(max(a[i].w, b[j].w))
			i++
			j++
		case a[i].h < b[j].h:
			union += int(a[i].w)
			i++
		default:
			union += int(b[j].w)
			j++
		}
	}
	for ; i < len(a); i++ {
		union += int(a[i].w)
	}
	for ; j < len(b); j++ {
		union += int(b[j].w)
	}
	if union == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// tokenize appends the tokens of s to toks. Alphabetic words are case- and
// accent-folded, stop words dropped, the rest cut to prefixLen; numbers
// keep their digits ("$400m" and "400 million" meet at "400", "26,000" is
// "26000"); Chinese, Japanese and Korean runs give character bigrams (no
// spaces to split on), except bigrams of kana particles alone.
func tokenize(toks []token, s, lang string, title bool) []token {
	if strings.ContainsAny(s, "<&") {
		s = htmltext.ToText(s)
	}
	if !isASCII(s) {
		// NFKD splits accents off their letters (dropped below) and folds
		// full-width forms.
		s = norm.NFKD.String(s)
	}
	stop := stopWords(lang)
	// Headlines in Title Case capitalise every word: there, capitals say
	// nothing about names. German capitalises every noun.
	useCaps := lang != "de" && !(title && titleCase(s))
	sentenceStart := true
	var buf [64]byte
	var prevCJK rune
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case isCJK(r):
			if prevCJK != 0 && !(isHiragana(prevCJK) && isHiragana(r)) {
				toks = append(toks, token{h: hashRunes(prevCJK, r), w: weightWord})
			}
			prevCJK = r
			i += size
			sentenceStart = false
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			prevCJK = 0
			// One word: letters and digits, with '.', ',' inside numbers and
			// '-' inside words ("F-35", "SAMP/T" is two words).
			n := 0
			digit := unicode.IsDigit(r)
			capital := unicode.IsUpper(r)
			j := i
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if unicode.Is(unicode.Mn, r2) {
					j += sz
					continue
				}
				if isCJK(r2) || !(unicode.IsLetter(r2) || unicode.IsDigit(r2)) {
					if digit && (r2 == '.' || r2 == ',') && j+1 < len(s) && s[j+1] >= '0' && s[j+1] <= '9' {
						j += sz
						continue
					}
					break
				}
				if digit {
					if unicode.IsDigit(r2) && n < len(buf)-utf8.UTFMax {
						n += utf8.EncodeRune(buf[n:], r2)
					}
				} else if n < len(buf)-utf8.UTFMax {
					n += utf8.EncodeRune(buf[n:], unicode.ToLower(r2))
				}
				j += sz
			}
			i = j
			word := buf[:n]
			wasStart := sentenceStart
			sentenceStart = false
			if digit {
				if n > 0 {
					toks = append(toks, token{h: hashBytes(word), w: weightNumber})
				}
				continue
			}
			if n < 2 || stop.has(word) {
				continue
			}
			word = stem(word)
			w := uint8(weightWord)
			if useCaps && capital && !wasStart {
				w = weightName
			}
			toks = append(toks, token{h: hashBytes(word), w: w})
		default:
			prevCJK = 0
			if r == '.' || r == '!' || r == '?' || r == ':' || r == ';' {
				sentenceStart = true
			}
			i += size
		}
	}
	return toks
}

// stem drops a plural "s" and cuts the word to prefixLen runes.
func stem(w []byte) []byte {
	if len(w) > 4 && w[len(w)-1] == 's' && w[len(w)-2] != 's' {
		w = w[:len(w)-1]
	}
	n := 0
	for i := range w {
		if w[i] < utf8.RuneSelf || utf8.RuneStart(w[i]) {
			if n == prefixLen {
				return w[:i]
			}
			n++
		}
	}
	return w
}

// titleCase reports a headline whose words are mostly capitalised.
func titleCase(s string) bool {
	words, caps := 0, 0
	for f := range strings.FieldsSeq(s) {
		r, _ := utf8.DecodeRuneInString(f)
		if !unicode.IsLetter(r) {
			continue
		}
		words++
		if unicode.IsUpper(r) {
			caps++
		}
	}
	return words >= 3 && caps*10 > words*6
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isCJK(r rune) bool {
	return r >= 0x2e80 && (unicode.Is(unicode.Han, r) || isKana(r) || unicode.Is(unicode.Hangul, r))
}

func isKana(r rune) bool {
	return unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
}

func isHiragana(r rune) bool { return unicode.Is(unicode.Hiragana, r) }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return splitmix(h)
}

func hashRunes(a, b rune) uint64 {
	var buf [2 * utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], a)
	n += utf8.EncodeRune(buf[n:], b)
	return hashBytes(buf[:n])
}
