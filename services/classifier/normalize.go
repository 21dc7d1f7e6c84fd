package classifier

import (
	"slices"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// asciiFold maps each ASCII byte to its normalised form: letters lower
// case, digits as they are, everything else a word separator (' '). A
// constant string rather than a table variable keeps the package free of
// globals while indexing stays a single load.
const asciiFold = "" +
	"                " + // 0x00-0x0f
	"                " + // 0x10-0x1f
	"                " + // 0x20-0x2f: space and punctuation
	"0123456789      " + // 0x30-0x3f
	" abcdefghijklmno" + // 0x40-0x4f
	"pqrstuvwxyz     " + // 0x50-0x5f
	" abcdefghijklmno" + // 0x60-0x6f
	"pqrstuvwxyz     " //   0x70-0x7f

// normText is an item's text in the form the matcher reads, with a map back
// to the source so matches can be reported as they appear.
//
// Normal form: Unicode NFKC, then lower case, then Latin accents removed
// (the item's combining marks are dropped after decomposition), "ß" as
// "ss", and every run of characters that are neither letters nor digits
// (spaces, punctuation, hyphens, apostrophes, CJK punctuation) one ASCII
// space. Title and summary are joined by one space.
type normText struct {
	b []byte
	// src[i] is the offset, in title (i < titleEnd) or summary, of the
	// source rune that produced b[i].
	src      []int32
	titleEnd int
}

func (n *normText) reset() {
	n.b = n.b[:0]
	n.src = n.src[:0]
	n.titleEnd = 0
}

// set normalises title and summary into n, reusing its buffers.
func (n *normText) set(title, summary string) {
	n.reset()
	n.add(title)
	n.sep(0)
	n.titleEnd = len(n.b)
	n.add(summary)
}

func (n *normText) sep(at int) {
	if len(n.b) > 0 && n.b[len(n.b)-1] != ' ' {
		n.b = append(n.b, ' ')
		n.src = append(n.src, int32(at))
	}
}

// add appends the normal form of s. ASCII, Han, kana and Hangul, which are
// nearly all of real item text, take branch-light fast paths; every other
// rune is decomposed through the NFKD tables.
func (n *normText) add(s string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			// A run of ASCII, folded without branching on the text: every
			// byte is written, and the write position advances unless it
			// is a separator after a separator (or at the start).
			// Room for the rest of s (ASCII never expands), so the loop
			// writes by index.
			n.b = slices.Grow(n.b, len(s)-i)
			n.src = slices.Grow(n.src, len(s)-i)
			nb := len(n.b)
			b, src := n.b[:cap(n.b)], n.src[:cap(n.src)]
			last := byte(' ')
			if nb > 0 {
				last = b[nb-1]
			}
			for ; i < len(s) && s[i] < utf8.RuneSelf; i++ {
				m := asciiFold[s[i]]
				b[nb] = m
				src[nb] = int32(i)
				// x is 0 only when both are separators; then x+0xffff
				// stays below 1<<16.
				x := (uint32(m)<<8 | uint32(last)) ^ (' '<<8 | ' ')
				nb += int((x + 0xffff) >> 16) // 1 unless both are separators
				last = m
			}
			n.b, n.src = b[:nb], src[:nb]
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n.sep(i)
		case r >= 0x4E00 && r <= 0x9FFF, r >= 0x3400 && r <= 0x4DBF, // Han
			r >= 0x3041 && r <= 0x3096, r >= 0x30A1 && r <= 0x30FA, r == 0x30FC, // kana, ー
			r >= 0xAC00 && r <= 0xD7A3: // Hangul syllables (NFKD would split them)
			n.b = append(n.b, s[i:i+size]...)
			for range size {
				n.src = append(n.src, int32(i))
			}
		default:
			n.slow(s[i:i+size], r, i)
		}
		i += size
	}
}

// slow handles one rune outside the fast paths.
func (n *normText) slow(raw string, r rune, at int) {
	p := norm.NFKD.PropertiesString(raw)
	d := p.Decomposition()
	if d == nil {
		n.emit(r, at)
		return
	}
	for len(d) > 0 {
		dr, sz := utf8.DecodeRune(d)
		d = d[sz:]
		n.emit(dr, at)
	}
}

// emit appends one decomposed rune.
func (n *normText) emit(r rune, at int) {
	switch {
	case r == 0x3099 || r == 0x309A:
		// Voiced sound marks: NFKC composes them with the kana before
		// (ｶﾞ, か+゙ → が). Dropping them like accents would change words.
		n.composeKana(r)
		return
	case unicode.Is(unicode.Mn, r):
		// Accent folding: a non-spacing mark after decomposition is an
		// accent on the letter just written ("é" → "e").
		return
	case r == 'ß' || r == 'ẞ':
		n.b = append(n.b, 's', 's')
		n.src = append(n.src, int32(at), int32(at))
		return
	case r < utf8.RuneSelf:
		if m := asciiFold[r]; m != ' ' {
			n.b = append(n.b, m)
			n.src = append(n.src, int32(at))
		} else {
			n.sep(at)
		}
		return
	}
	if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mc, r) {
		n.sep(at)
		return
	}
	r = unicode.ToLower(r)
	var buf [utf8.UTFMax]byte
	w := utf8.EncodeRune(buf[:], r)
	n.b = append(n.b, buf[:w]...)
	for range w {
		n.src = append(n.src, int32(at))
	}
}

// composeKana combines a voiced sound mark with the kana just written, as
// NFC would; a mark with nothing to combine with is dropped.
func (n *normText) composeKana(mark rune) {
	prev, sz := utf8.DecodeLastRune(n.b)
	if sz < 3 || prev == utf8.RuneError {
		return
	}
	var buf [2 * utf8.UTFMax]byte
	k := utf8.EncodeRune(buf[:], prev)
	k += utf8.EncodeRune(buf[k:], mark)
	c := norm.NFC.Bytes(buf[:k])
	if r, w := utf8.DecodeRune(c); w == len(c) {
		start := n.src[len(n.src)-sz]
		n.b = n.b[:len(n.b)-sz]
		n.src = n.src[:len(n.src)-sz]
		n.b = utf8.AppendRune(n.b, r)
		for range w {
			n.src = append(n.src, start)
		}
	}
}

// normalize returns the normal form of s as a string (for terms).
func normalize(s string) string {
	var n normText
	n.add(s)
	b := n.b
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// wideLead reports whether c leads a 3- or 4-byte UTF-8 sequence: CJK and
// other scripts matched without word boundaries.
func wideLead(c byte) bool { return c >= 0xE0 }
