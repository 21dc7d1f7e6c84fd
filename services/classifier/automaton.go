package classifier

import (
	"slices"
)

// automaton is an Aho–Corasick matcher over the bytes of normalised text.
//
// Why this design: every term of every topic must be found in one pass,
// linear in the text, whatever the number of terms (built-ins have about a
// thousand phrases, users may add ten thousand). Aho–Corasick gives that.
// It runs over UTF-8 bytes rather than runes because normalised text is
// mostly ASCII and bytes need no decoding; UTF-8 is self-synchronising, so
// a byte match that starts and ends on rune boundaries is a rune match, and
// matches that do not are dropped by the boundary checks.
//
// Memory and speed: a full DFA (state × byte) is fastest but for 10,000
// user terms would take tens of megabytes. Bytes are first mapped to
// classes (only bytes that occur in some pattern are distinguished), and
// the shallowest states — where the scan spends nearly all its time,
// because almost every text position fails back near the root — get a
// dense row of the complete transition function, within a memory budget. Deeper states keep a sorted edge list
// and a failure link; following failure links costs amortised O(1) per byte.
type automaton struct {
	class  [256]uint16
	nclass int
	states []acState
	edges  []acEdge
	delta  []int32 // dense rows, nclass entries each
	// delta16 is delta in 16 bits when every state id fits, halving the
	// table so more of it stays in cache (the built-ins fit).
	delta16 []uint16
	// outs holds each state's own pattern ids; acState.outLink chains to
	// the next state (along failure links) that has output.
	outs []int32
	// patLen is each pattern's length in bytes.
	patLen []int32
	// nDense: states 0..nDense-1 have dense rows (delta[s*nclass:]).
	nDense int
	// hasOut[s]: some pattern ends in state s.
	hasOut []bool
}

type acState struct {
	fail    int32
	dense   int32 // row in delta, or -1
	eFirst  int32 // edges[eFirst : eFirst+eN], sorted by class
	eN      int32
	oFirst  int32 // outs[oFirst : oFirst+oN]
	oN      int32
	outLink int32 // next state with output along failure links, or -1
}

type acEdge struct {
	class uint16
	to    int32
}

// maxDenseEntries bounds the dense rows (memory: 4 B per entry). States
// get rows in breadth-first order, shallowest first, until the budget is
// spent: the built-in topics fit entirely (a full DFA); ten thousand user
// terms get rows for their first few levels.
const maxDenseEntries = 1 << 20

// buildAutomaton compiles the patterns; pattern i is reported as id i.
// Empty patterns are never reported.
func buildAutomaton(patterns []string) *automaton {
	a := &automaton{}
	// Byte classes.
	var used [256]bool
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			used[p[i]] = true
		}
	}
	a.nclass = 1 // class 0: bytes in no pattern
	for b := range 256 {
		if used[b] {
			a.class[b] = uint16(a.nclass)
			a.nclass++
		}
	}

	// Trie, with children in a map during construction only.
	type node struct {
		next  map[uint16]int32
		out   []int32
		depth int
	}
	nodes := []node{{next: map[uint16]int32{}}}
	a.patLen = make([]int32, len(patterns))
	for id, p := range patterns {
		a.patLen[id] = int32(len(p))
		if p == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := a.class[p[i]]
			nx, ok := nodes[s].next[c]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{next: map[uint16]int32{}, depth: nodes[s].depth + 1})
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, int32(id))
	}

	// Number states breadth-first, so shallow states have small ids: the
	// dense rows then belong exactly to the states below a.nDense and the
	// scan needs no per-state lookup to find them.
	newID := make([]int32, len(nodes))
	bfs := make([]int32, 0, len(nodes))
	bfs = append(bfs, 0)
	for qi := 0; qi < len(bfs); qi++ {
		old := bfs[qi]
		newID[old] = int32(qi)
		keys := make([]uint16, 0, len(nodes[old].next))
		for c := range nodes[old].next {
			keys = append(keys, c)
		}
		slices.Sort(keys)
		for _, c := range keys {
			bfs = append(bfs, nodes[old].next[c])
		}
	}
	a.states = make([]acState, len(nodes))
	a.hasOut = make([]bool, len(nodes))
	for id, old := range bfs {
		st := &a.states[id]
		st.dense, st.outLink = -1, -1
		keys := make([]uint16, 0, len(nodes[old].next))
		for c := range nodes[old].next {
			keys = append(keys, c)
		}
		slices.Sort(keys)
		st.eFirst, st.eN = int32(len(a.edges)), int32(len(keys))
		for _, c := range keys {
			a.edges = append(a.edges, acEdge{class: c, to: newID[nodes[old].next[c]]})
		}
		st.oFirst, st.oN = int32(len(a.outs)), int32(len(nodes[old].out))
		a.outs = append(a.outs, nodes[old].out...)
	}

	// In id (= breadth-first) order: failure links, output links and dense
	// rows. A state's failure target is shallower, so it is complete when
	// we need it.
	for s := int32(0); s < int32(len(a.states)); s++ {
		st := &a.states[s]
		if s != 0 {
			f := st.fail
			if a.states[f].oN > 0 {
				st.outLink = f
			} else {
				st.outLink = a.states[f].outLink
			}
		}
		a.hasOut[s] = st.oN > 0 || st.outLink >= 0
		if (a.nDense+1)*a.nclass <= maxDenseEntries {
			st.dense = int32(a.nDense)
			a.nDense++
			row := make([]int32, a.nclass)
			if s != 0 {
				for c := range a.nclass {
					row[c] = a.step(st.fail, uint16(c))
				}
			}
			for _, e := range a.edges[st.eFirst : st.eFirst+st.eN] {
				row[e.class] = e.to
			}
			a.delta = append(a.delta, row...)
		}
		for _, e := range a.edges[st.eFirst : st.eFirst+st.eN] {
			if s == 0 {
				a.states[e.to].fail = 0
			} else {
				a.states[e.to].fail = a.step(st.fail, e.class)
			}
		}
	}
	if len(a.states) <= 1<<16 {
		a.delta16 = make([]uint16, len(a.delta))
		for i, v := range a.delta {
			a.delta16[i] = uint16(v)
		}
		a.delta = nil
	}
	return a
}

// step returns the state after reading a byte of class c in state s.
func (a *automaton) step(s int32, c uint16) int32 {
	for {
		st := &a.states[s]
		if st.dense >= 0 {
			if a.delta16 != nil {
				return int32(a.delta16[int(st.dense)*a.nclass+int(c)])
			}
			return a.delta[int(st.dense)*a.nclass+int(c)]
		}
		for _, e := range a.edges[st.eFirst : st.eFirst+st.eN] {
			if e.class == c {
				return e.to
			} else if e.class > c {
				break
			}
		}
		s = st.fail
	}
}

// rawHit is one occurrence of a pattern: its id, end offset, and the token
// count at the end (the number of word starts up to end, for NEAR
// distances: spaces plus CJK characters, i.e. lead bytes of 3- and 4-byte
// runes).
type rawHit struct {
	id, end, tok int32
}

// scan appends every occurrence of every pattern in text to hits, in order
// of end position.
func (a *automaton) scan(text []byte, hits []rawHit) []rawHit {
	if a.delta16 != nil {
		return scanRows(a, a.delta16, text, hits)
	}
	return scanRows(a, a.delta, text, hits)
}

// scanRows is the scan loop for either width of dense table. Token
// positions are counted only when a pattern ends, over the bytes since the
// previous one, so the per-byte loop is a table lookup and a flag test.
func scanRows[T uint16 | int32](a *automaton, delta []T, text []byte, hits []rawHit) []rawHit {
	s := int32(0)
	tok, counted := int32(0), 0
	nclass, nDense, hasOut, class := a.nclass, int32(a.nDense), a.hasOut, &a.class
	for i := 0; i < len(text); i++ {
		c := class[text[i]]
		if s < nDense {
			s = int32(delta[int(s)*nclass+int(c)])
		} else {
			s = a.step(s, c)
		}
		if !hasOut[s] {
			continue
		}
		for ; counted <= i; counted++ {
			if b := text[counted]; b == ' ' || b >= 0xE0 {
				tok++
			}
		}
		for o := s; o >= 0; o = a.states[o].outLink {
			os := &a.states[o]
			for _, id := range a.outs[os.oFirst : os.oFirst+os.oN] {
				hits = append(hits, rawHit{id: id, end: int32(i + 1), tok: tok})
			}
		}
	}
	return hits
}
