package story

// bandTable maps a band key to the seq of the latest item with it: an
// open-addressing table with linear probing, so that inserting an item
// costs one probe per band (read the old head, write the new one) and the
// table holds no pointers. Entries are never deleted one by one: items
// leave by seq order, and sweep rebuilds the table without the entries
// that only lead to evicted items. A slot holds key and seq side by side:
// a probe touches one cache line, not two.
type bandTable struct {
	slots []bandSlot // key 0 = empty slot (bandKey never yields 0 in practice; see slot)
	n     int        // used slots
	spare []bandSlot // the array before the last sweep, reused by the next
}

type bandSlot struct{ key, seq uint64 }

// slot returns the index for key: its slot, or the empty one where it
// would go.
func (t *bandTable) slot(key uint64) int {
	mask := len(t.slots) - 1
	for i := int((key * 0x9e3779b97f4a7c15) >> 32 & uint64(mask)); ; i = (i + 1) & mask {
		if k := t.slots[i].key; k == key || k == 0 {
			return i
		}
	}
}

// get returns the seq stored for key, 0 when none.
func (t *bandTable) get(key uint64) uint64 {
	if len(t.slots) == 0 || key == 0 {
		return 0
	}
	return t.slots[t.slot(key)].seq
}

// swap stores seq for key and returns the seq it replaces (0 when none).
func (t *bandTable) swap(key, seq uint64) uint64 {
	if key == 0 {
		return 0 // one key in 2^64 is not worth a special case
	}
	if 2*(t.n+1) > len(t.slots) {
		t.rebuild(max(1024, 2*len(t.slots)), 0)
	}
	e := &t.slots[t.slot(key)]
	old := e.seq
	if e.key == 0 {
		e.key = key
		t.n++
	}
	e.seq = seq
	return old
}

// sweep drops the entries whose seq is below head, shrinking the table
// when it is mostly stale.
func (t *bandTable) sweep(head uint64) {
	live := 0
	for _, e := range t.slots {
		if e.key != 0 && e.seq >= head {
			live++
		}
	}
	size := 1024
	for 2*live+2 > size {
		size *= 2
	}
	if len(t.slots) <= maxSpare {
		// A small table keeps its size and is rebuilt into the spare:
		// growing it back after every sweep allocated more than the
		// sweeps saved.
		size = max(size, len(t.slots))
	}
	t.rebuild(size, head)
}

// maxSpare bounds the tables that keep a spare array (1 MiB).
const maxSpare = 1 << 16

func (t *bandTable) rebuild(size int, head uint64) {
	old := t.slots
	if cap(t.spare) == size {
		t.slots = t.spare[:size]
		clear(t.slots)
	} else {
		t.slots = make([]bandSlot, size)
	}
	t.spare, t.n = nil, 0
	for _, e := range old {
		if e.key != 0 && e.seq >= head {
			t.slots[t.slot(e.key)] = e
			t.n++
		}
	}
	if len(old) == size && size <= maxSpare {
		t.spare = old // a sweep at the same size: the next one reuses it
	}
}
