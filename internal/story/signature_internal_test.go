package story

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

func TestSortTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range maxTokens + 2 {
		for range 20 {
			toks := make([]token, n, n+r.IntN(n+8))
			for i := range toks {
				toks[i] = token(r.Uint64())
				if i > 0 && r.IntN(4) == 0 {
					toks[i] = toks[r.IntN(i)] // duplicates
				}
				if r.IntN(8) == 0 {
					toks[i] &= 0x03ff_ffff_ffff_ffff // one crowded bucket
				}
			}
			want := slices.Clone(toks)
			slices.Sort(want)
			sortTokens(toks)
			if !slices.Equal(toks, want) {
				t.Fatalf("sortTokens of %d tokens: not sorted", n)
			}
		}
	}
}

func BenchmarkSortTokens(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]token, 50)
	for i := range src {
		src[i] = token(r.Uint64())
	}
	toks := make([]token, 50, 128)
	b.Run("buckets", func(b *testing.B) {
		for b.Loop() {
			copy(toks, src)
			sortTokens(toks)
		}
	})
	b.Run("pdq", func(b *testing.B) {
		for b.Loop() {
			copy(toks, src)
			slices.Sort(toks)
		}
	})
}

func TestDecode(t *testing.T) {
	for _, s := range []string{"a", "é", "中文", "レア", "\xe0\xa0\x80", "\xe0\x80\xaf", "\xed\xa0\x80", "\xef\xbf\xbd",
		"\xe4\xb8", "\xe4", "\xe4\x41\x41", "\U0001F600", "\xff"} {
		for i := 0; i < len(s); {
			r, n := decode(s, i)
			wr, wn := utf8.DecodeRuneInString(s[i:])
			if r != wr || n != wn {
				t.Fatalf("decode(%q, %d) = %U, %d; want %U, %d", s, i, r, n, wr, wn)
			}
			i += n
		}
	}
	for r := rune(0x800); r <= 0xffff; r++ {
		s := string(r)
		if got, n := decode(s, 0); got != r && utf8.ValidRune(r) || n != len(s) {
			t.Fatalf("decode(%q) = %U, %d", s, got, n)
		}
	}
}
