// Package htmltext turns feed HTML into plain text and shortens text for
// display. It is shared by the poller (summaries) and the classifier.
package htmltext

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// ToText returns the visible text of an HTML fragment: tags, comments and
// attribute values are dropped, the content of script, style and similar
// elements is dropped, entities are decoded once (as a browser does, so
// "&amp;#8217;" stays "&#8217;"), block-level elements separate words, and
// runs of whitespace collapse to one space. Invalid UTF-8 becomes U+FFFD.
//
// Plain text without '<' or '&' skips the tokenizer: most titles and many
// summaries are plain, and the classifier calls this on every item.
func ToText(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return collapse(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	z := html.NewTokenizer(strings.NewReader(s))
	// skip counts open elements whose content is not text. The tokenizer
	// already treats script/style bodies as raw text; tracking depth keeps
	// us correct for unbalanced markup such as a stray </script>.
	skip := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			// io.EOF or a tokenizer error: either way the text so far is all
			// we can use.
			return collapse(b.String())
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if hidden(a) {
				// A self-closing <script/> has no body to skip.
				if tt == html.StartTagToken {
					skip++
				}
				continue
			}
			if block(a) {
				b.WriteByte(' ')
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if hidden(a) {
				if skip > 0 {
					skip--
				}
				continue
			}
			if block(a) {
				b.WriteByte(' ')
			}
		}
	}
}

// hidden reports elements whose content a reader never sees as text.
func hidden(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Iframe,
		atom.Object, atom.Svg, atom.Math, atom.Head, atom.Title, atom.Textarea, atom.Select:
		return true
	}
	return false
}

// block reports elements that a browser lays out on their own line, so the
// words on either side must not run together ("<p>a</p><p>b</p>" is "a b").
func block(a atom.Atom) bool {
	switch a {
	case atom.Address, atom.Article, atom.Aside, atom.Blockquote, atom.Br, atom.Caption,
		atom.Dd, atom.Details, atom.Dialog, atom.Div, atom.Dl, atom.Dt, atom.Fieldset,
		atom.Figcaption, atom.Figure, atom.Footer, atom.Form, atom.H1, atom.H2, atom.H3,
		atom.H4, atom.H5, atom.H6, atom.Header, atom.Hr, atom.Img, atom.Li, atom.Main,
		atom.Nav, atom.Ol, atom.P, atom.Pre, atom.Section, atom.Summary, atom.Table,
		atom.Tbody, atom.Td, atom.Tfoot, atom.Th, atom.Thead, atom.Tr, atom.Ul, atom.Html, atom.Body:
		return true
	}
	return false
}

// collapse makes s valid UTF-8, turns every run of Unicode whitespace
// (including no-break spaces) into one ASCII space and trims both ends.
func collapse(s string) string {
	clean := true
	prevSpace := true // so leading space counts as a run to drop
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			sp := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
			if sp && (c != ' ' || prevSpace) {
				clean = false
				break
			}
			prevSpace = sp
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unicode.IsSpace(r) {
			clean = false
			break
		}
		prevSpace = false
		i += n
	}
	if clean && !prevSpace {
		return s
	}
	// ASCII, most of any feed's text, is copied byte by byte without
	// decoding; other runes are decoded only to find spaces and invalid
	// bytes (ranging over the string and writing rune by rune cost more
	// than the HTML tokenizer itself).
	var b strings.Builder
	b.Grow(len(s))
	pending := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
				pending = b.Len() > 0
				continue
			}
			if pending {
				b.WriteByte(' ')
				pending = false
			}
			b.WriteByte(c)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			pending = b.Len() > 0
			i += n
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Truncate shortens s to at most maxRunes runes, the ellipsis "…" included.
// It prefers to cut at a word boundary when one lies in the last third of
// the allowed length, so summaries do not end mid-word; CJK text, which has
// no spaces, is cut at a rune. Text that fits is returned unchanged.
func Truncate(s string, maxRunes int) string {
	if maxRunes <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= maxRunes {
		return s
	}
	if maxRunes == 1 {
		return "…"
	}
	// cut is the byte offset after maxRunes-1 runes: room for the ellipsis.
	cut, n := 0, 0
	for i := range s {
		if n == maxRunes-1 {
			cut = i
			break
		}
		n++
	}
	head := s[:cut]
	if sp := strings.LastIndexFunc(head, unicode.IsSpace); sp > 0 &&
		utf8.RuneCountInString(head[:sp]) >= (maxRunes-1)*2/3 {
		head = head[:sp]
	}
	head = strings.TrimRightFunc(head, func(r rune) bool {
		return unicode.IsSpace(r) || r == ',' || r == ';' || r == ':' || r == '-' || r == '–' || r == '—'
	})
	return strings.ToValidUTF8(head, "\uFFFD") + "…"
}
