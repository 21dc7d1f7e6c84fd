package feedsout

import (
	"slices"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/event"
)

// maxAlso bounds the later reports listed under one entry. Reports of a
// story beyond it are left out of the feed: the entry already says the
// story is widely carried, and a feed entry must stay small.
const maxAlso = 20

// entry is one feed entry: the first report of a story this feed got, and
// the later reports folded into it.
type entry struct {
	first *event.Item
	// published is when the first report was published (when it was
	// fetched if its feed gives no date).
	published time.Time
	// updated advances when a later report is folded in.
	updated time.Time
	also    []*event.Item
}

// topics is the union of the topics of the entry's reports, first report's first.
func (e *entry) topics() []string {
	out := slices.Clone(e.first.Topics)
	for _, it := range e.also {
		for _, t := range it.Topics {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// ring holds the newest entries of one feed, at most max of them: when a
// new story arrives in a full ring its oldest entry goes.
type ring struct {
	buf  []*entry // a circular buffer of len max
	head int      // index of the oldest entry
	n    int
	// byID holds every item id an entry holds (first and later reports),
	// so that an item seen again (on another of its topics' messages) is
	// not added twice; byStory finds the entry of a story.
	byID    map[string]*entry
	byStory map[string]*entry
	// fold: later reports of a story are folded into its entry; false
	// gives every report an entry of its own.
	fold bool
}

func newRing(max int, fold bool) *ring {
	return &ring{buf: make([]*entry, max), byID: map[string]*entry{}, byStory: map[string]*entry{}, fold: fold}
}

// add takes it into the ring: a new entry, or, for a later report of a
// story that has an entry, folded into that entry. seen is when the stream
// got it, for an item that carries no time of its own. It reports whether
// the feed changed.
func (r *ring) add(it *event.Item, seen time.Time) bool {
	if _, ok := r.byID[it.ID]; ok {
		return false
	}
	if e, ok := r.byStory[it.StoryID]; ok && r.fold && it.StoryID != "" {
		if len(e.also) >= maxAlso {
			return false
		}
		e.also = append(e.also, it)
		r.byID[it.ID] = e
		// Updated is when feedmon learned of the later report: its
		// publication date may be older than the first's (outlets' clocks
		// and time zones differ), but to a reader the entry changed now.
		at := it.FetchedTime()
		if at.IsZero() {
			at = itemTime(it, seen)
		}
		if at.After(e.updated) {
			e.updated = at
		}
		return true
	}
	at := itemTime(it, seen)
	e := &entry{first: it, published: at, updated: at}
	if r.n == len(r.buf) {
		r.evict(r.buf[r.head])
		r.buf[r.head] = e
		r.head = (r.head + 1) % len(r.buf)
	} else {
		r.buf[(r.head+r.n)%len(r.buf)] = e
		r.n++
	}
	r.byID[it.ID] = e
	if it.StoryID != "" {
		r.byStory[it.StoryID] = e
	}
	return true
}

func (r *ring) evict(e *entry) {
	delete(r.byID, e.first.ID)
	for _, it := range e.also {
		delete(r.byID, it.ID)
	}
	if r.byStory[e.first.StoryID] == e {
		delete(r.byStory, e.first.StoryID)
	}
}

// entries returns the entries, the most recently updated first (ties by
// id, so that the order, and the rendered bytes, are the same every time).
func (r *ring) entries() []*entry {
	out := make([]*entry, 0, r.n)
	for i := range r.n {
		out = append(out, r.buf[(r.head+i)%len(r.buf)])
	}
	slices.SortFunc(out, func(a, b *entry) int {
		if c := b.updated.Compare(a.updated); c != 0 {
			return c
		}
		return strings.Compare(a.first.ID, b.first.ID)
	})
	return out
}

// itemTime is when an item was published, or when it was fetched when its
// feed gives no usable date, or else seen.
func itemTime(it *event.Item, seen time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, it.Published); err == nil {
		return t
	}
	if t := it.FetchedTime(); !t.IsZero() {
		return t
	}
	return seen
}
