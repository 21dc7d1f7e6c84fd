package classifier

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unsafe"
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
// dense row of the complete transition function, within a memory budget.
// Deeper states keep a sorted edge list and a failure link; following
// failure links costs amortised O(1) per byte.
type automaton struct {
	class  [256]uint16
	nclass int
	states []acState
	edges  []acEdge
	// The dense rows: states 0..nDense-1 (the shallowest, in breadth-first
	// order) have a row of stride entries, the complete transition
	// function; stride is a power of two so a row starts at state<<shift.
	// An entry is the target state, with the top bit (slow) set when the
	// target has output or is sparse, so the scan loop's common case is a
	// load, a shift and a test. Entries are 16 bits when every state id fits
	// in 15 (the built-ins do), halving the table so more of it stays in
	// cache; 32 bits otherwise. Exactly one of trans16, trans32 is set.
	trans16 []uint16
	trans32 []uint32
	stride  int
	shift   uint
	// outs holds each state's own pattern ids; acState.outLink chains to
	// the next state (along failure links) that has output.
	outs []int32
	// patLen is each pattern's length in bytes.
	patLen []int32
	// nDense: states 0..nDense-1 have dense rows.
	nDense int
	// hasOut[s]: some pattern ends in state s.
	hasOut []bool
}

type acState struct {
	fail    int32
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

// maxDenseEntries bounds the dense rows (memory: 2 or 4 B per entry).
// States get rows in breadth-first order, shallowest first, until the
// budget is spent: the built-in topics fit entirely (a full DFA, about
// 3 MB); ten thousand user terms get rows for their first few levels,
// where the scan spends nearly all its time.
const maxDenseEntries = 1 << 21

// buildAutomaton compiles the patterns; pattern i is reported as id i.
// Empty patterns are never reported.
func buildAutomaton(patterns []string) *automaton {
	return buildAutomatonBudget(patterns, maxDenseEntries)
}

// buildAutomatonBudget is buildAutomaton with a given dense-row budget
// (tests use a small one to exercise sparse states).
func buildAutomatonBudget(patterns []string, budget int) *automaton {
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
	a.stride, a.shift = 1, 0
	for a.stride < a.nclass {
		a.stride <<= 1
		a.shift++
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
		st.outLink = -1
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
	// rows (of plain state ids at first). A state's failure target is
	// shallower, so it is complete when we need it.
	var rows []int32
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
		if s == 0 || (a.nDense+1)*a.stride <= budget { // the root always has a row
			a.nDense++
			row := make([]int32, a.stride)
			if s != 0 {
				for c := range a.nclass {
					row[c] = a.stepRows(rows, st.fail, uint16(c))
				}
			}
			for _, e := range a.edges[st.eFirst : st.eFirst+st.eN] {
				row[e.class] = e.to
			}
			rows = append(rows, row...)
		}
		for _, e := range a.edges[st.eFirst : st.eFirst+st.eN] {
			if s == 0 {
				a.states[e.to].fail = 0
			} else {
				a.states[e.to].fail = a.stepRows(rows, st.fail, e.class)
			}
		}
	}
	// Now every state's output flag is known: encode the rows.
	if len(a.states) < 1<<15 {
		a.trans16 = encodeRows[uint16](a, rows)
	} else {
		a.trans32 = encodeRows[uint32](a, rows)
	}
	return a
}

// encodeRows sets the slow bit (the top bit of T) on entries whose target
// has output or no dense row.
func encodeRows[T uint16 | uint32](a *automaton, rows []int32) []T {
	slow := T(1) << (8*unsafe.Sizeof(T(0)) - 1)
	out := make([]T, len(rows))
	for i, t := range rows {
		e := T(t)
		if a.hasOut[t] || int(t) >= a.nDense {
			e |= slow
		}
		out[i] = e
	}
	return out
}

// stepRows is step during construction, over rows of plain state ids.
func (a *automaton) stepRows(rows []int32, s int32, c uint16) int32 {
	for {
		st := &a.states[s]
		if int(s) < a.nDense && len(rows) > int(s)*a.stride {
			return rows[int(s)*a.stride+int(c)]
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

// step returns the state after reading a byte of class c in state s.
func (a *automaton) step(s int32, c uint16) int32 {
	for {
		if int(s) < a.nDense {
			i := int(s)<<a.shift + int(c)
			if a.trans16 != nil {
				return int32(a.trans16[i] &^ (1 << 15))
			}
			return int32(a.trans32[i] &^ (1 << 31))
		}
		st := &a.states[s]
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
// of end position. It is scanBuf without a reusable buffer.
func (a *automaton) scan(text []byte, hits []rawHit) []rawHit {
	hits, _ = a.scanBuf(text, hits, nil)
	return hits
}

// Splitting the text: the scan is bound by the latency of one table load
// after another (each byte's state depends on the last), not by
// throughput, so on a fully dense automaton a text of at least splitMin
// bytes is scanned as two halves at once, interleaved in one loop. The
// second half starts splitBack bytes early, from the root, and is right
// from the split on if its state there equals the first half's (the state
// is the longest suffix that is a trie prefix: one at most splitBack deep
// is found either way, and from an equal state on the runs are the same).
// Otherwise (a state deeper than splitBack at the split) its hits are
// dropped and the rest is scanned again from the first half's state.
const (
	splitMin  = 48
	splitBack = 8
)

// scanBuf is scan with tmp, a buffer for the second half's hits, returned
// for reuse.
func (a *automaton) scanBuf(text []byte, hits, tmp []rawHit) ([]rawHit, []rawHit) {
	n0 := len(hits)
	if a.trans16 == nil || a.nDense != len(a.states) || len(text) < splitMin {
		hits = a.scanFrom(text, 0, 0, hits)
		countTokens(text, hits[n0:])
		return hits, tmp
	}
	trans, class, shift := a.trans16, &a.class, a.shift&31
	const slow = 1 << 15
	m := (len(text) + splitBack) / 2 // the split: the first half is text[:m]
	q := m - splitBack               // where the second half starts
	sA, sB := uint32(0), uint32(0)
	// Phase 1: the second half's lead-in, text[q:m]; it reports nothing.
	for i := range splitBack {
		eA := uint32(trans[int(sA<<shift)+int(class[text[i]])])
		sB = uint32(trans[int(sB<<shift)+int(class[text[q+i]])]) &^ slow
		sA = eA &^ slow
		if eA&slow != 0 && a.hasOut[sA] {
			hits = a.emit(int32(sA), i, 0, hits)
		}
	}
	sSplit := sB // the second half's state after text[m-1]
	// Phase 2: text[splitBack:m] and text[m:m+m-splitBack].
	tmp = tmp[:0]
	j := m
	for i := splitBack; i < m; i, j = i+1, j+1 {
		eA := uint32(trans[int(sA<<shift)+int(class[text[i]])])
		eB := uint32(trans[int(sB<<shift)+int(class[text[j]])])
		sA, sB = eA&^slow, eB&^slow
		if (eA|eB)&slow != 0 {
			if eA&slow != 0 && a.hasOut[sA] {
				hits = a.emit(int32(sA), i, 0, hits)
			}
			if eB&slow != 0 && a.hasOut[sB] {
				tmp = a.emit(int32(sB), j, 0, tmp)
			}
		}
	}
	if sA == sSplit {
		hits = append(hits, tmp...)
		hits = a.scanFrom(text, j, sB, hits)
	} else {
		hits = a.scanFrom(text, m, sA, hits)
	}
	countTokens(text, hits[n0:])
	return hits, tmp
}

// countTokens sets the token count of hits, in order of end position: the
// spaces and lead bytes of 3- and 4-byte runes (b >= 0xE0) up to the end,
// counted without branching on the text.
func countTokens(text []byte, hits []rawHit) {
	tok, counted := uint32(0), 0
	for k := range hits {
		end := int(hits[k].end)
		if end > counted {
			tok += tokensIn(text[counted:end])
			counted = end
		}
		hits[k].tok = int32(tok)
	}
}

// tokensIn counts the spaces and bytes >= 0xE0 in b, eight bytes at a time.
func tokensIn(b []byte) uint32 {
	const lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	n := 0
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		// Spaces: the bytes of x that are zero (exact, no carries).
		x := v ^ 0x2020202020202020
		z := ^((x&lo7 + lo7) | x | lo7)
		// Bytes >= 0xE0: bits 7, 6 and 5 set.
		w := v & (v << 1) & (v << 2) & hi
		n += bits.OnesCount64(z) + bits.OnesCount64(w)
		b = b[8:]
	}
	t := uint32(n)
	for _, c := range b {
		t += (uint32(c^' ')-1)>>31 + (uint32(c)+0x20)>>8
	}
	return t
}

// scanFrom appends the occurrences ending in text[i:], from state s (a
// dense one) before text[i], without token counts.
//
// The common case, a dense state whose next state has no output, runs in
// run16 or run32: a load, a shift and a test per byte, in a function small
// enough that the state stays in a register. scanFrom handles the rest:
// output, and sparse states.
func (a *automaton) scanFrom(text []byte, i int, s uint32, hits []rawHit) []rawHit {
	nDense := int32(a.nDense)
	for ; i < len(text); i++ {
		var st int32
		if a.trans16 != nil {
			var e uint32
			if i, e = run16(a.trans16, &a.class, text, i, s, a.shift); i >= len(text) {
				break
			}
			st = int32(e &^ (1 << 15))
		} else {
			var e uint32
			if i, e = run32(a.trans32, &a.class, text, i, s, a.shift); i >= len(text) {
				break
			}
			st = int32(e &^ (1 << 31))
		}
		for {
			if a.hasOut[st] {
				hits = a.emit(st, i, 0, hits)
			}
			if st < nDense || i+1 >= len(text) {
				break
			}
			// A sparse state: follow edges and failure links until the
			// scan is back among the dense states.
			i++
			st = a.step(st, a.class[text[i]])
		}
		if st >= nDense {
			break // the text ended in a sparse state
		}
		s = uint32(st)
	}
	return hits
}

// run16 advances from dense state s over text[i:] while the entries have
// no slow bit. It returns the index of the byte whose entry has it, with
// the entry, or len(text). It is kept out of line so that its loop gets
// the registers to itself.
//
//go:noinline
func run16(trans []uint16, class *[256]uint16, text []byte, i int, s uint32, shift uint) (int, uint32) {
	for ; i < len(text); i++ {
		e := uint32(trans[int(s<<(shift&31))+int(class[text[i]])])
		if e&(1<<15) != 0 {
			return i, e
		}
		s = e
	}
	return i, 0
}

// run32 is run16 for 32-bit entries.
//
//go:noinline
func run32(trans []uint32, class *[256]uint16, text []byte, i int, s uint32, shift uint) (int, uint32) {
	for ; i < len(text); i++ {
		e := trans[int(s<<(shift&31))+int(class[text[i]])]
		if e&(1<<31) != 0 {
			return i, e
		}
		s = e
	}
	return i, 0
}

// emit appends the patterns that end in state s at byte i.
func (a *automaton) emit(s int32, i int, tok int32, hits []rawHit) []rawHit {
	for o := s; o >= 0; o = a.states[o].outLink {
		os := &a.states[o]
		for _, id := range a.outs[os.oFirst : os.oFirst+os.oN] {
			hits = append(hits, rawHit{id: id, end: int32(i + 1), tok: tok})
		}
	}
	return hits
}
