package story

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode/utf8"
)

// gazetteerText is the table of places and organisations (see the file's
// header). It ships with the package: nothing is loaded at run time.
//
//go:embed gazetteer.txt
var gazetteerText string

// Entity kinds. Two reports that each name, in their headline, an entity
// of one kind that the other does not name at all are about two events
// (see anchors.conflict): Japan's pledge and Germany's, the ECB's cut and
// the Bank of England's, Google's fine and Apple's.
const (
	kindPlace   = 1 // a country, region or city
	kindOrg     = 2 // a public body: central bank, agency, union
	kindCompany = 3
	kindEvent   = 4 // a tournament, a race, a games
)

// entity is one line of the gazetteer.
type entity struct {
	name   string // its id in the table ("us", "ecb")
	alias  string // its first alias ("United States"), for -explain
	kind   uint8
	parent uint16 // the country of a city or a national body, or 0
}

// entityIDs is what one alias names: one or two entities (0 = none).
type entityIDs [2]uint16

// gazetteer holds the entities (index 0 unused) and their aliases: in
// alphabetic scripts by the hash of their folded words (wordSeqHash),
// short ones in capitals by their exact form; in Chinese and Japanese by
// their text.
type gazetteer struct {
	ents    []entity
	words   map[uint64]entityIDs // folded word sequence -> entities
	caps    map[string]entityIDs // "US", "EU", "Fed": exact case only
	cjk     map[string]entityIDs
	maxCJK  int // longest CJK alias, in runes
	maxSeq  int // longest alphabetic alias, in words
	byName  map[string]uint16
	aliases []string // for tests: every alias, in table order
	// inAlias holds the words of alphabetic aliases: a word not in it
	// starts or continues no alias.
	inAlias hashSet
}

// aliasWord reports whether a folded word's hash may be part of an alias.
func (g *gazetteer) aliasWord(h uint64) bool { return g.inAlias.maybe(h) }

var gaz = mustGazetteer(gazetteerText)

func mustGazetteer(text string) *gazetteer {
	g, err := parseGazetteer(text)
	if err != nil {
		panic(err)
	}
	return g
}

func parseGazetteer(text string) (*gazetteer, error) {
	g := &gazetteer{
		ents:   []entity{{}},
		words:  map[uint64]entityIDs{},
		caps:   map[string]entityIDs{},
		cjk:    map[string]entityIDs{},
		byName: map[string]uint16{},
	}
	type pending struct {
		id     uint16
		parent string
		line   int
	}
	var parents []pending
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		head, list, ok := strings.Cut(line, "=")
		f := strings.Fields(head)
		if !ok || len(f) != 2 {
			return nil, fmt.Errorf("story: gazetteer line %d: want \"id kind = aliases\"", n+1)
		}
		kindName, parent, _ := strings.Cut(f[1], "/")
		var kind uint8
		switch kindName {
		case "country", "place", "continent":
			kind = kindPlace
		case "org":
			kind = kindOrg
		case "company":
			kind = kindCompany
		case "event":
			kind = kindEvent
		default:
			return nil, fmt.Errorf("story: gazetteer line %d: unknown kind %q", n+1, kindName)
		}
		if _, dup := g.byName[f[0]]; dup {
			return nil, fmt.Errorf("story: gazetteer line %d: %q twice", n+1, f[0])
		}
		id := uint16(len(g.ents))
		g.ents = append(g.ents, entity{name: f[0], kind: kind})
		g.byName[f[0]] = id
		if parent != "" {
			parents = append(parents, pending{id, parent, n + 1})
		}
		for _, a := range strings.Split(list, ",") {
			if a = strings.TrimSpace(a); a != "" {
				if g.ents[id].alias == "" {
					g.ents[id].alias = a
				}
				g.add(a, id)
			}
		}
	}
	for _, p := range parents {
		pid, ok := g.byName[p.parent]
		if !ok {
			return nil, fmt.Errorf("story: gazetteer line %d: unknown parent %q", p.line, p.parent)
		}
		g.ents[p.id].parent = pid
	}
	g.addPairs()
	return g, nil
}

// countryChars are the one-character names Chinese and Japanese
// headlines give countries when they join two of them: "日菲" (Japan and
// the Philippines), "中美", "米中", "日韩". Only characters that rarely
// start or end another word are listed: not 法 (law), 德 (virtue), 英
// (hero), 印 (print), 加 (add), 比 (ratio: 前日比), 豪 (集中豪雨), 越
// (越来越), whose pairs would name countries in text that does not.
var countryChars = [...]struct{ char, id string }{
	{"中", "cn"}, {"美", "us"}, {"米", "us"}, {"日", "jp"}, {"韩", "kr"}, {"韓", "kr"},
	{"菲", "ph"}, {"俄", "ru"}, {"露", "ru"}, {"欧", "eu"},
}

// addPairs files every pair of two countryChars of two entities as an
// alias of both, in either order, unless the table has it already.
func (g *gazetteer) addPairs() {
	for _, a := range countryChars {
		for _, b := range countryChars {
			ia, ib := g.byName[a.id], g.byName[b.id]
			pair := a.char + b.char
			if ia == 0 || ib == 0 || ia == ib {
				continue
			}
			if _, ok := g.cjk[pair]; ok {
				continue
			}
			g.cjk[pair] = entityIDs{ia, ib}
			g.maxCJK = max(g.maxCJK, 2)
		}
	}
}

func addID(m entityIDs, id uint16) entityIDs {
	switch {
	case m[0] == 0 || m[0] == id:
		m[0] = id
	case m[1] == 0:
		m[1] = id
	}
	return m
}

// add files one alias of entity id.
func (g *gazetteer) add(alias string, id uint16) {
	g.aliases = append(g.aliases, alias)
	if r, _ := utf8.DecodeRuneInString(alias); r >= 0x2e80 && isCJK(r) {
		g.cjk[alias] = addID(g.cjk[alias], id)
		g.maxCJK = max(g.maxCJK, utf8.RuneCountInString(alias))
		return
	}
	// "U.S." is the word "US", as the scanner reads it.
	if strings.Count(alias, ".") >= 1 && len(alias) <= 5 && !strings.Contains(alias, " ") {
		alias = strings.ReplaceAll(alias, ".", "")
	}
	if len(alias) <= 3 && strings.ToLower(alias) != alias {
		g.caps[alias] = addID(g.caps[alias], id)
		return
	}
	var h uint64
	n := 0
	forWords(alias, func(w []byte) {
		wh := hashBytes(w)
		g.inAlias.add(wh)
		h = seqHash(h, n, wh)
		n++
	})
	g.words[h] = addID(g.words[h], id)
	g.maxSeq = max(g.maxSeq, n)
}

// seqHash extends the hash h of a sequence of n words by a word's hash.
func seqHash(h uint64, n int, w uint64) uint64 {
	if n == 0 {
		return w
	}
	return splitmix(h*0x100000001b3 ^ w)
}

// forWords calls f with each folded alphabetic word of s (as the anchor
// scanner splits them: at anything not a letter or digit).
func forWords(s string, f func(w []byte)) {
	var buf [64]byte
	n := 0
	flush := func() {
		if n > 0 {
			f(buf[:n])
			n = 0
		}
	}
	for _, r := range s {
		if !isWordRune(r) || r >= 0x2e80 && isCJK(r) {
			flush()
			continue
		}
		if n+utf8.UTFMax <= len(buf) {
			n += utf8.EncodeRune(buf[n:], fold(r))
		}
	}
	flush()
}

// name is how -explain names an entity: its first alias.
func (g *gazetteer) name(id uint16) string { return g.ents[id].alias }
