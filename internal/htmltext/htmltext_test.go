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

// TestCollapse: whitespace runs, invalid bytes and non-ASCII spaces the
// same whichever path (clean text returned as is, or rebuilt) is taken.
func TestCollapse(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"a", "a"},
		{" a", "a"},
		{"a ", "a"},
		{"a  b", "a b"},
		{"a\tb", "a b"},
		{"a\u0085b\u2003c\u3000d", "a b c d"},
		{"\u00a0a\u00a0", "a"},
		{"a\xff\xfeb", "a\uFFFD\uFFFDb"},
		{"a \xff b", "a \uFFFD b"},
		{"é  ü\n\n稀土", "é ü 稀土"},
		{"valid \uFFFD kept", "valid \uFFFD kept"},
	}
	for _, tt := range tests {
		if got := collapse(tt.in); got != tt.want {
			t.Errorf("collapse(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// BenchmarkToText is one feed summary of about 600 characters of HTML,
// as the poller converts for every item it publishes.
func BenchmarkToText(b *testing.B) {
	const summary = `<p>Trade ministers meeting in <b>Brussels</b> on Monday agreed on a framework for export licences covering lithium, cobalt and rare earth elements, according to a statement seen by reporters.</p>
<p>The <a href="https://news.example/background">background</a> to the talks: supply chains for batteries and defence electronics depend on a handful of refiners, and officials want <em>early warning</em> when shipments slow down &amp; prices jump.</p>
<p>Industry groups welcomed the move but asked for clear timelines and a single application portal.</p>`
	b.ReportAllocs()
	b.SetBytes(int64(len(summary)))
	for b.Loop() {
		ToText(summary)
	}
}
