package htmltext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestToText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "Hello world", "Hello world"},
		{"collapse whitespace", "  a \t\n b  ", "a b"},
		{"no-break space", "a\u00a0\u00a0b", "a b"},
		{"paragraphs separate words", "<p>one</p><p>two</p>", "one two"},
		{"br separates", "one<br>two<br/>three", "one two three"},
		{"inline joins", "rare<b>earth</b>", "rareearth"},
		{"entities", "S&amp;P 500 &#8217; caf&#233; &eacute;", "S&P 500 \u2019 café é"},
		{"decode once", "&amp;#8217;", "&#8217;"},
		{"link text kept, href dropped", `More: <a href="https://x.example/nba/trade-deadline">our tracker</a>`, "More: our tracker"},
		{"attributes are not text", `<img alt="tariffs" src="a.png">caption`, "caption"},
		{"script dropped", "a<script>var trade = 1;</script>b", "ab"},
		{"style dropped", "<style>p{color:red}</style>text", "text"},
		{"comment dropped", "a<!-- tariff -->b", "ab"},
		{"unclosed tag", "a <b", "a"},
		{"lt in text", "3 < 4 and 5 > 2", "3 < 4 and 5 > 2"},
		{"invalid utf8", "a\xffb", "a\uFFFDb"},
		{"empty", "", ""},
		{"cjk", "<p>稀土出口管制</p>", "稀土出口管制"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ToText(tt.in); got != tt.want {
				t.Errorf("ToText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "short text", 20, "short text"},
		{"exact", "abcde", 5, "abcde"},
		{"word boundary", "the quick brown fox jumps", 17, "the quick brown…"},
		{"no boundary cuts runes", "abcdefghij", 5, "abcd…"},
		{"cjk", "稀土出口管制措施", 5, "稀土出口…"},
		{"zero", "abc", 0, ""},
		{"one", "abc", 1, "…"},
		{"trailing punctuation trimmed", "alpha beta, gamma delta", 13, "alpha beta…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Truncate(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > tt.max && tt.max >= 0 {
				t.Errorf("Truncate(%q, %d) has %d runes", tt.in, tt.max, n)
			}
		})
	}
}

func FuzzToText(f *testing.F) {
	for _, s := range []string{"", "<p>a</p>", "&amp;#8217;", "<script>x", "a\xffb", "<a href='x'>y</a>", "&#xD800;", "<<>>&&;;", "稀土<br>レアアース"} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		out := ToText(s)
		if !utf8.ValidString(out) {
			t.Fatalf("ToText(%q) = %q: invalid UTF-8", s, out)
		}
		if strings.Contains(out, "  ") || strings.TrimSpace(out) != out {
			t.Fatalf("ToText(%q) = %q: whitespace not collapsed", s, out)
		}
		n %= 3000
		tr := Truncate(out, n)
		if !utf8.ValidString(tr) {
			t.Fatalf("Truncate invalid UTF-8: %q", tr)
		}
		if n >= 0 && utf8.RuneCountInString(tr) > n {
			t.Fatalf("Truncate(%q, %d) = %q: too long", out, n, tr)
		}
	})
}
