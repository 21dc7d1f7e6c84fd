// Package story groups near-duplicate news items into stories: the same
// event reported by several outlets, reworded, gets one story id.
//
// Each item is reduced to a signature: its content words (HTML removed,
// stop words dropped, case and accents folded, cut to a 5-letter prefix;
// numbers by their digits; CJK text as character bigrams), weighted up for
// numbers, names and words of both headline and summary, plus Bands
// MinHash values over that word set (one-permutation hashing). The MinHash
// values, as LSH bands of one row, find candidates among the items of the
// last Window cheaply; a candidate joins the item to its story when the
// weighted Jaccard similarity of the two word sets reaches Threshold, each
// word's weight scaled down by how many items held share it: the index
// learns which words are common in the stream ("exports", "duties") and
// lets what is particular to a story (its goods, country, numbers) decide.
// Words known to be common (see commonWords) start as if the index had
// seen them many times already, so that a small or fresh index weighs one
// outlet's wording less than the names and figures both reports share;
// two items that quote different figures ("up to 62%", "up to 36%") or
// whose headlines name different places need more in common to meet; and
// what a follow-up says of the event it follows ("two days after drones
// shut Copenhagen airport") does not count.
//
// The Index keeps recent signatures in memory, bounded by MaxEntries and
// Window. It persists nothing itself: Remember adds an item whose story was
// decided elsewhere (by another replica, or before a restart), which is how
// the classifier service keeps replicas and restarts in agreement (it
// follows the stream of classified items, which carry their story ids).
package story

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultWindow     = 48 * time.Hour
	DefaultThreshold  = 0.26
	DefaultMaxEntries = 50_000
	// perBand bounds the items looked at under one band value (the
	// latest first): a common word picked by many items costs no more.
	perBand = 8
	// minTokens: a text shorter than this is too thin to be matched with
	// confidence ("Update", "Live:"); it starts its own story.
	minTokens = 4
	// sureSimilarity ends the search for a better candidate: this close
	// is the same text.
	sureSimilarity = 0.8
	// figureConflict scales the similarity of two items whose figures
	// differ (see similarityLocked).
	figureConflict = 0.5
	// nameConflict scales the similarity of two items whose headlines
	// each name what the other item lacks (see similarityLocked).
	nameConflict = 0.5
)

// Options configure an Index. Zero values take the defaults.
type Options struct {
	// Window is how far apart in time two reports of one story may be.
	Window time.Duration
	// Threshold is the weighted Jaccard similarity from which two items
	// are one story (0 to 1).
	Threshold float64
	// MaxEntries caps the items kept in memory; the oldest go first.
	MaxEntries int
}

// Doc is one item to assign.
type Doc struct {
	// ID is the item's stable id. Assigning the same id again returns the
	// same story. The story id of a new story is the id of its first item
	// (or a hash of the text when ID is empty).
	ID string
	// Title and Text (the summary) may hold HTML.
	Title, Text string
	// Lang is the BCP 47 primary subtag, or empty when unknown; it picks
	// the stop words.
	Lang string
	// At is when the item was published (zero when unknown).
	At time.Time
}

// Index assigns story ids. It is safe for concurrent use.
//
// Items live in a ring of at most MaxEntries, in arrival order, each
// numbered by a sequence number. Eviction (past the window or the cap) is
// from the oldest end, so "evicted" is just "seq < head": nothing is
// deleted from the band table when an item goes, and the table holds no
// pointers for the garbage collector to trace. Stale table entries are
// swept out once they outnumber the live ones.
type Index struct {
	opts Options

	mu   sync.Mutex
	ring []member
	head uint64 // oldest live seq; seqs start at 1, 0 is "none"
	next uint64 // seq of the next item
	// ids maps the hash of a member key (keyHash) to its seq: a flat
	// table without strings, swept like bands. byKeyLocked checks the key
	// itself, so a hash collision (one in 2^64) can only make an item
	// assigned twice be matched by similarity instead of by key.
	ids  bandTable
	seed maphash.Seed
	// bands maps a band value to the seq of the latest item with it;
	// older items with the same value follow through member.next.
	bands bandTable
	// stories maps the hash of a story id (keyHash) to the seq of its
	// latest member; older members follow through member.storyPrev. It
	// lets a report be checked against every member of the story it would
	// join (see contradictionLocked) at the cost of that story's size.
	stories bandTable
	newest  time.Time
	// df counts, per token (by the low bits of its id), the items held
	// that have it: the index's own document frequencies (see rarity).
	df [dfSlots]uint8
	// slab and figSlab are where the tokens and figures of new items are
	// copied (keep).
	slab    []token
	figSlab []figure
}

const dfSlots = 1 << 16

// rarityOf maps a document frequency to a token's weight factor,
// 1/(1+ln df): a word in one item held (or none) counts fully, one in ten
// items about a third. Words every tariff story uses ("duties", "imports",
// "exports") then weigh less than what tells one such story from another.
//
// A common word (see commonWords) counts commonDF more items than the
// index holds with it: the second row of the table.
var rarityOf = func() (t [2][256]float32) {
	for d := range t[0] {
		t[0][d] = float32(1 / (1 + math.Log(float64(max(d, 1)))))
		t[1][d] = float32(1 / (1 + math.Log(float64(d+commonDF))))
	}
	return t
}()

func (x *Index) rarity(t token) float32 {
	return rarityOf[t>>4&1][x.df[uint16(t.id())]]
}

// similarityLocked is the weighted Jaccard similarity of two token sets,
// each token's weight scaled by its rarity among the items held:
// Σ min(w) / Σ max(w) over the union of their tokens.
//
// Two items that both quote figures (see token.figure) and share none of
// them are scaled down by figureConflict: reports of one event quote its
// rate, its sum, its death toll; a look-alike has its own ("up to 62%"
// against "up to 36%", "47 projects" against a "500 million fund"; "its
// first frigate" against "a fourth frigate"). So are two whose headlines
// each quote a figure the other item does not hold at all, whatever else
// they share: the figure a headline quotes is the news, and a look-alike
// may repeat a figure of the other story in passing (one country's exports
// "up 7%", another's "up 5%", both recalling the same 19% US tariff).
//
// Likewise two items whose headlines each name something (a place, a
// company, a person: a capitalised word that is not common) that the
// other item does not hold at all, and that share no such name, are
// scaled down by nameConflict: reports of one event name its place in
// their headlines, or at least somewhere; a drone closure at another
// airport, a plant in a neighbouring country names its own ("Lithuania"
// against "Latvia", "Aalborg" against "Copenhagen").
func (x *Index) similarityLocked(a, b []token, aa, ab *anchors) float64 {
	return x.scoreLocked(a, b, aa, ab, false).sim
}

// score is the comparison of two items: sim decides, words is the
// similarity of their words alone, g what their anchors share.
type score struct {
	sim, words float64
	g          agreement
}

// scoreLocked is similarityLocked with the comparison of the two items'
// anchors (see compareAnchors): a contradiction keeps them apart (0), an
// agreement adds its evidence to the similarity of their words, and a
// figure or a name both share lifts the conflicts that words alone would
// see ("$3.5bn" and "2.95 billion euros", "Alphabet" and "Google"). With
// explain, words is computed even for items kept apart, and g says why.
func (x *Index) scoreLocked(a, b []token, aa, ab *anchors, explain bool) score {
	g := compareAnchors(aa, ab, explain)
	if g.kept != keptNone && !explain {
		return score{g: g}
	}
	var inter, union float32
	figA, figB, figBoth := 0, 0, 0
	headFigA, headFigB := 0, 0
	nameA, nameB, nameBoth := 0, 0, 0
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch ia, ib := a[i].id(), b[j].id(); {
		case ia == ib:
			r := x.rarity(a[i])
			inter += r * float32(min(a[i].weight(), b[j].weight()))
			union += r * float32(max(a[i].weight(), b[j].weight()))
			if a[i].figure() {
				figBoth++
			}
			nameBoth += (a[i] | b[j]).headName()
			i++
			j++
		case ia < ib:
			union += x.rarity(a[i]) * float32(a[i].weight())
			if a[i].figure() {
				figA++
				headFigA += a[i].headFigure()
			}
			nameA += a[i].headName()
			i++
		default:
			union += x.rarity(b[j]) * float32(b[j].weight())
			if b[j].figure() {
				figB++
				headFigB += b[j].headFigure()
			}
			nameB += b[j].headName()
			j++
		}
	}
	for ; i < len(a); i++ {
		union += x.rarity(a[i]) * float32(a[i].weight())
		if a[i].figure() {
			figA++
			headFigA += a[i].headFigure()
		}
		nameA += a[i].headName()
	}
	for ; j < len(b); j++ {
		union += x.rarity(b[j]) * float32(b[j].weight())
		if b[j].figure() {
			figB++
			headFigB += b[j].headFigure()
		}
		nameB += b[j].headName()
	}
	if union == 0 {
		return score{g: g}
	}
	sim := float64(inter / union)
	words := sim
	if g.figs == 0 && figA > 0 && figB > 0 && (figBoth == 0 || headFigA > 0 && headFigB > 0) {
		sim *= figureConflict
	}
	if !g.headEnt && nameBoth == 0 && nameA > 0 && nameB > 0 {
		sim *= nameConflict
	}
	if g.kept != keptNone {
		return score{words: words, g: g}
	}
	return score{sim: sim + g.bonus(), words: words, g: g}
}

// similarityDocs is the similarity of two documents in x.
func (x *Index) similarityDocs(a, b Doc) float64 {
	sa, sb := signDoc(a, nil), signDoc(b, nil)
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.similarityLocked(sa.toks, sb.toks, &sa.anc, &sb.anc)
}

// bandKey folds a band number into its MinHash value.
func bandKey(band int, v uint64) uint64 { return v ^ (uint64(band)+1)*0x9e3779b97f4a7c15 }

// member is one assigned item. The index holds up to MaxEntries of them,
// so it is kept small: links to older items are distances back in seqs
// (see link), not seqs.
type member struct {
	key   string // memKey of the item
	story string
	at    time.Time
	toks  []token // the signature's tokens
	anc   anchors // the signature's anchors
	// next links to the next older item of each band.
	next [allBands]link
	// storyPrev links to the next older member of the same story (or of
	// another whose id hashes alike: check story).
	storyPrev link
}

// link is a member's reference to an older item: how many seqs back it
// is, 0 for none. Live items are fewer than maxEntries apart, so a
// distance that does not fit can only lead to an evicted item: it is
// stored as none.
type link uint32

// maxEntries bounds Options.MaxEntries, so that any two live items are
// fewer than 2^32 seqs apart (see link).
const maxEntries = 1 << 31

// linkTo is the link from the item numbered seq to the older one numbered
// older (0: none).
func linkTo(seq, older uint64) link {
	if older == 0 || older >= seq || seq-older > math.MaxUint32 {
		return 0
	}
	return link(seq - older)
}

// from is the seq that l, held by the item numbered seq, leads to (0:
// none).
func (l link) from(seq uint64) uint64 {
	if l == 0 {
		return 0
	}
	return seq - uint64(l)
}

// New returns an empty index.
func New(opts Options) *Index {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Threshold <= 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	opts.MaxEntries = min(opts.MaxEntries, maxEntries)
	x := &Index{
		opts: opts,
		head: 1,
		next: 1,
		seed: maphash.MakeSeed(),
	}
	return x
}

// Options returns the index's options, defaults filled in.
func (x *Index) Options() Options { return x.opts }

// Len is the number of items held in memory.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return int(x.next - x.head)
}

// Assign returns the story of d: the story of the most similar item seen
// within the window when one is similar enough (isNew false), else a new
// story named after d (isNew true). An item assigned (or remembered)
// before keeps its story.
func (x *Index) Assign(d Doc) (storyID string, isNew bool) {
	scratch := scratchPool.Get().(*scratch)
	defer scratchPool.Put(scratch)
	sig := signDoc(d, scratch)
	return x.assignMem(memKey(d), d, &sig)
}

// Remember adds d as a member of the story storyID, decided elsewhere:
// another replica's item, or one assigned before a restart. An item the
// index holds already keeps the story it has.
func (x *Index) Remember(d Doc, storyID string) {
	key := memKey(d)
	if x.Known(key) {
		return // cheaper than signing it again
	}
	scratch := scratchPool.Get().(*scratch)
	defer scratchPool.Put(scratch)
	sig := signDoc(d, scratch)
	x.mu.Lock()
	defer x.mu.Unlock()
	kh := x.keyHash(key)
	if x.byHashLocked(key, kh) != nil {
		return
	}
	x.insertNewLocked(key, kh, storyID, d.At, &sig)
}

// Known reports whether the item with this id (Doc.ID) is held.
func (x *Index) Known(id string) bool {
	if id == "" {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.byKeyLocked(id) != nil
}

// scratchLen is the size of a signature's scratch: room for maxTokens and
// the words of the longest headline (tokenize stops only between texts).
const scratchLen = 256

// scratch is where signDoc puts a signature's tokens and figures.
type scratch struct {
	toks [scratchLen]token
	figs [maxFigs]figure
}

// scratchPool holds the scratch arrays of signDoc: a signature's tokens
// and figures stay in them until insertNewLocked copies them to the
// index's slabs.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// slabLen is the size of the arrays that hold the tokens of the items in
// memory: one allocation per slabLen tokens instead of one per item.
// Items leave in arrival order, so a slab is freed soon after its last
// item is evicted. The figures of items (a few each, most have none)
// share arrays of figSlabLen.
const (
	slabLen    = 8192
	figSlabLen = 1024
)

// keep copies s to *slab (a new one of size when it is full), or to an
// array of its own when s is large.
func keep[T any](slab *[]T, s []T, size int) []T {
	if len(s) == 0 {
		return nil
	}
	if len(s) > size/8 {
		return slices.Clone(s)
	}
	if len(*slab)+len(s) > cap(*slab) {
		*slab = make([]T, 0, size)
	}
	n := len(*slab)
	*slab = append(*slab, s...)
	return (*slab)[n : n+len(s) : n+len(s)]
}

// assignMem is Assign without a store: look up, decide, insert, under one
// lock so that concurrent near-duplicates still meet.
func (x *Index) assignMem(key string, d Doc, sig *signature) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	kh := x.keyHash(key)
	if m := x.byHashLocked(key, kh); m != nil {
		return m.story, false
	}
	story, isNew := newStoryID(d), true
	if best := x.bestLocked(sig, d.At); best != nil {
		story, isNew = best.story, false
	}
	x.insertNewLocked(key, kh, story, d.At, sig)
	return story, isNew
}

// get returns the live item numbered seq, or nil.
func (x *Index) getLocked(seq uint64) *member {
	if seq < x.head || seq >= x.next {
		return nil
	}
	return &x.ring[seq%uint64(len(x.ring))]
}

func (x *Index) byKeyLocked(key string) *member {
	return x.byHashLocked(key, x.keyHash(key))
}

// byHashLocked is byKeyLocked with the key's hash.
func (x *Index) byHashLocked(key string, kh uint64) *member {
	m := x.getLocked(x.ids.get(kh))
	if m == nil || m.key != key {
		return nil
	}
	return m
}

// keyHash is the key of a member key in x.ids (never 0, the empty slot).
func (x *Index) keyHash(key string) uint64 {
	return maphash.String(x.seed, key) | 1
}

// bestLocked finds the most similar remembered item within the window
// whose story no member contradicts sig (see chooseLocked). The result
// points into the ring: use it before unlocking.
func (x *Index) bestLocked(sig *signature, at time.Time) *member {
	// Few candidates reach the threshold: room for them on the stack.
	var buf [16]match
	ms := buf[:0]
	bestSim := 0.0
	x.candidatesLocked(sig, at, func(m *member) bool {
		if sim := x.similarityLocked(sig.toks, m.toks, &sig.anc, &m.anc); sim >= x.opts.Threshold {
			ms = append(ms, match{m: m, sim: sim})
			bestSim = max(bestSim, sim)
		}
		return bestSim < sureSimilarity
	})
	return x.chooseLocked(sig, ms, nil)
}

// match is a candidate similar enough to join.
type match struct {
	m   *member
	sim float64
}

// chooseLocked picks, of the candidates similar enough to join (ms, in
// any order), the most similar one whose story holds no member that
// contradicts sig: the vetoes of compareAnchors hold against the whole
// story, not only the member most like the report (complete link). A
// rounded figure ("about $60 billion") matches the two values it rounds
// (8.8 and 8.7 trillion yen); without this, the second would join the
// first's story through the report that rounds. A story vetoed is passed
// over for the next best; with none left the report starts a story.
//
// With vetoed non-nil, it is called with each story passed over: the
// candidate of that story and the member that contradicts sig.
func (x *Index) chooseLocked(sig *signature, ms []match, vetoed func(c match, by *member, g agreement)) *member {
	slices.SortStableFunc(ms, func(a, b match) int { return cmp.Compare(b.sim, a.sim) })
	for i, c := range ms {
		if slices.ContainsFunc(ms[:i], func(p match) bool { return p.m.story == c.m.story }) {
			continue // its story is decided already
		}
		by, g := x.contradictionLocked(sig, c.m.story, vetoed != nil)
		if by == nil {
			return c.m
		}
		if vetoed != nil {
			vetoed(c, by, g)
		}
	}
	return nil
}

// contradictionLocked returns a member of story whose anchors contradict
// sig's, and what contradicts them, or nil. It walks only that story's
// members, whose anchors are held: a story has few.
func (x *Index) contradictionLocked(sig *signature, story string, explain bool) (*member, agreement) {
	for seq := x.stories.get(x.keyHash(story)); ; {
		m := x.getLocked(seq)
		if m == nil {
			return nil, agreement{}
		}
		seq = m.storyPrev.from(seq)
		if m.story != story {
			continue // another story whose id hashes alike
		}
		if g := compareAnchors(&sig.anc, &m.anc, explain); g.kept != keptNone {
			return m, g
		}
	}
}

// candidatesLocked calls f with each remembered item within the window
// that shares a band value with sig, the latest first, until f returns
// false.
func (x *Index) candidatesLocked(sig *signature, at time.Time, f func(m *member) bool) {
	if len(sig.toks) < minTokens {
		return
	}
	var seen [allBands * perBand]uint64
	nseen := 0
	for i, v := range sig.mins {
		if v == noBand {
			continue
		}
	cands:
		for seq, n := x.bands.get(bandKey(i, v)), 0; n < perBand; n++ {
			m := x.getLocked(seq)
			if m == nil {
				break
			}
			cur := seq
			seq = m.next[i].from(seq)
			for _, s := range seen[:nseen] {
				if s == cur {
					continue cands
				}
			}
			seen[nseen] = cur
			nseen++
			if !x.inWindow(m.at, at) {
				continue
			}
			if !f(m) {
				return
			}
		}
	}
}

func (x *Index) inWindow(a, b time.Time) bool {
	d := a.Sub(b)
	return d <= x.opts.Window && d >= -x.opts.Window
}

// insertNewLocked remembers an item whose key (of hash kh) is not held,
// and evicts what is too old or too many.
func (x *Index) insertNewLocked(key string, kh uint64, story string, at time.Time, sig *signature) {
	if at.After(x.newest) {
		x.newest = at
	}
	for x.head < x.next {
		old := &x.ring[x.head%uint64(len(x.ring))]
		if x.next-x.head < uint64(x.opts.MaxEntries) && x.newest.Sub(old.at) <= x.opts.Window {
			break
		}
		for _, t := range old.toks {
			if d := &x.df[uint16(t.id())]; *d > 0 {
				*d--
			}
		}
		*old = member{} // let go of its strings and tokens
		x.head++
	}
	if x.next-x.head >= uint64(len(x.ring)) {
		x.growLocked()
	}
	seq := x.next
	x.next++
	m := &x.ring[seq%uint64(len(x.ring))]
	*m = member{key: key, story: story, at: at, toks: keep(&x.slab, sig.toks, slabLen), anc: sig.anc}
	m.anc.figs = keep(&x.figSlab, sig.anc.figs, figSlabLen)
	for _, t := range sig.toks {
		if d := &x.df[uint16(t.id())]; *d < ^uint8(0) {
			*d++
		}
	}
	x.ids.swap(kh, seq)
	m.storyPrev = linkTo(seq, x.stories.swap(x.keyHash(story), seq))
	if len(sig.toks) >= minTokens {
		for i, v := range sig.mins {
			if v == noBand {
				continue
			}
			k := bandKey(i, v)
			m.next[i] = linkTo(seq, x.bands.swap(k, seq))
		}
	}
	x.sweepLocked()
}

// growLocked grows the ring (a seq's slot is seq modulo its length): it
// starts small and doubles with the items held, up to MaxEntries, so that
// a full index holds no more slots than items.
func (x *Index) growLocked() {
	n := min(max(64, 2*len(x.ring)), x.opts.MaxEntries)
	n = max(n, int(x.next-x.head)+1)
	ring := make([]member, n)
	for seq := x.head; seq < x.next; seq++ {
		ring[seq%uint64(n)] = x.ring[seq%uint64(len(x.ring))]
	}
	x.ring = ring
}

// sweepSlack is how many stale entries a table may hold beyond twice its
// live ones before a sweep: small enough that the tables of a small index
// stay in cache, large enough that sweeps are rare for a big one.
const sweepSlack = 1024

// sweepLocked drops table entries that only lead to evicted items, once
// they could outnumber the live ones; amortised, it is a small constant
// per item.
func (x *Index) sweepLocked() {
	live := int(x.next - x.head)
	if x.bands.n > 2*allBands*live+sweepSlack {
		x.bands.sweep(x.head)
	}
	if x.ids.n > 2*live+sweepSlack {
		x.ids.sweep(x.head)
	}
	if x.stories.n > 2*live+sweepSlack {
		x.stories.sweep(x.head)
	}
}

// memKey names an item in an index without a store: its id, or its text
// when it has none.
func memKey(d Doc) string {
	if d.ID != "" {
		return d.ID
	}
	return "\x00text\x00" + d.Title + "\x00" + d.Text
}

// newStoryID names a story after its first item.
func newStoryID(d Doc) string {
	if d.ID != "" {
		return d.ID
	}
	h := sha256.New()
	h.Write([]byte(d.Title))
	h.Write([]byte{0})
	h.Write([]byte(d.Text))
	return "s-" + hex.EncodeToString(h.Sum(nil)[:16])
}
