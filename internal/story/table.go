package story

// bandTable maps a band key to the seq of the latest item with it: an
// open-addressing table with linear probing, so that inserting an item
// costs one probe per band (read the old head, write the new one) and the
// table holds no pointers. Entries are never deleted one by one: items
// leave by seq order, and sweep rebuilds the table without the entries
// that only lead to evicted items.
type bandTable struct {
	keys []uint64 // 0 = empty slot (bandKey never yields 0 in practice; see slot)
	seqs []uint64
	n    int // used slots
}

// slot returns the index for key: its slot, or the empty one where it
// would go.
func (t *bandTable) slot(key uint64) int {
	mask := len(t.keys) - 1
	for i := int((key * 0x9e3779b97f4a7c15) >> 32 & uint64(mask)); ; i = (i + 1) & mask {
		if k := t.keys[i]; k == key || k == 0 {
			return i
		}
	}
}

// get returns the seq stored for key, 0 when none.
func (t *bandTable) get(key uint64) uint64 {
	if len(t.keys) == 0 || key == 0 {
		return 0
	}
	return t.seqs[t.slot(key)]
}

// swap stores seq for key and returns the seq it replaces (0 when none).
func (t *bandTable) swap(key, seq uint64) uint64 {
	if key == 0 {
		return 0 // one key in 2^64 is not worth a special case
	}
	if 2*(t.n+1) > len(t.keys) {
		t.rebuild(max(1024, 2*len(t.keys)), 0)
	}
	i := t.slot(key)
	old := t.seqs[i]
	if t.keys[i] == 0 {
		t.keys[i] = key
		t.n++
	}
	t.seqs[i] = seq
	return old
}

// sweep drops the entries whose seq is below head, shrinking the table
// when it is mostly stale.
func (t *bandTable) sweep(head uint64) {
	live := 0
	for i, k := range t.keys {
		if k != 0 && t.seqs[i] >= head {
			live++
		}
	}
	size := 1024
	for 2*live+2 > size {
		size *= 2
	}
	t.rebuild(max(size, 1024), head)
}

func (t *bandTable) rebuild(size int, head uint64) {
	keys, seqs := t.keys, t.seqs
	t.keys, t.seqs, t.n = make([]uint64, size), make([]uint64, size), 0
	for i, k := range keys {
		if k != 0 && seqs[i] >= head {
			j := t.slot(k)
			t.keys[j], t.seqs[j] = k, seqs[i]
			t.n++
		}
	}
}
