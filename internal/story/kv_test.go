package story

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/event"
)

func storiesKV(t *testing.T) *Options {
	t.Helper()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, event.BucketStories)
	if err != nil {
		t.Fatal(err)
	}
	return &Options{Store: kv}
}

var (
	reportA = Doc{ID: "feed1-item9", Title: "Storm closes ports along the Baltic coast", Text: "Ferries between Germany and Sweden were cancelled as winds reached 120 km/h, port authorities in Rostock said.", Lang: "en", At: t0}
	reportB = Doc{ID: "feed2-item4", Title: "Baltic ports shut as storm cancels ferries", Text: "Winds of up to 120 km/h forced Rostock and Trelleborg to halt ferry traffic between Germany and Sweden.", Lang: "en", At: t0.Add(time.Hour)}
	otherC  = Doc{ID: "feed3-item1", Title: "Germany and Sweden sign ferry emissions pact", Text: "The two governments agreed to electrify ferry routes across the Baltic by 2035.", Lang: "en", At: t0.Add(time.Hour)}
)

// TestKVPersistence: a restarted classifier (a fresh index over the same
// bucket) finds the stories of the one before it.
func TestKVPersistence(t *testing.T) {
	t.Parallel()
	opts := storiesKV(t)
	ctx := context.Background()
	a := New(*opts)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	idA, isNew, err := a.Assign(ctx, reportA)
	if err != nil || !isNew || idA != reportA.ID {
		t.Fatalf("A: story %q new %v err %v", idA, isNew, err)
	}
	b := New(*opts)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  Doc
		want string
	}{
		{reportB, idA},      // another outlet's report: A's story
		{reportA, idA},      // A's own item redelivered to B: same story
		{otherC, otherC.ID}, // same subject, another story
	} {
		got, _, err := b.Assign(ctx, tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("B assigned %s to story %q, want %q", tc.doc.ID, got, tc.want)
		}
	}
}

// TestKVReplicasAgree: two running replicas see each other's items, so
// reports of one story reaching different replicas share one story id;
// an item redelivered to the other replica keeps its story; and a replica
// started later agrees too.
func TestKVReplicasAgree(t *testing.T) {
	t.Parallel()
	opts := storiesKV(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func() *Index {
		x := New(*opts)
		if err := x.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return x
	}
	a, b := start(), start()
	for r := range 10 {
		da, db := reportA, reportB
		da.ID, db.ID = fmt.Sprintf("a-%d", r), fmt.Sprintf("b-%d", r)
		da.Title = fmt.Sprintf("%s (%d)", da.Title, r*1000) // a new story each round
		db.Title = fmt.Sprintf("%s (%d)", db.Title, r*1000)
		idA, _, err := a.Assign(ctx, da)
		if err != nil {
			t.Fatal(err)
		}
		// b learns of A's item through the bucket.
		bustest.Eventually(t, 5*time.Second, func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.byKeyLocked(memberKey(da)) != nil
		}, "replica b never saw a's item")
		idB, _, err := b.Assign(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if idB != idA {
			t.Fatalf("round %d: replicas assigned %q and %q", r, idA, idB)
		}
		// A redelivery of b's item to a keeps its story.
		if got, _, err := a.Assign(ctx, db); err != nil || got != idA {
			t.Fatalf("round %d: redelivered item got %q (%v)", r, got, err)
		}
		late := start()
		probe := db
		probe.ID = fmt.Sprintf("late-%d", r)
		if got, _, err := late.Assign(ctx, probe); err != nil || got != idA {
			t.Fatalf("round %d: late replica got %q (%v), want %q", r, got, err, idA)
		}
	}
}

// TestKVFirstRecordWins: an item recorded by one replica keeps that story
// when another, which has not seen the record yet, assigns it again.
func TestKVFirstRecordWins(t *testing.T) {
	t.Parallel()
	opts := storiesKV(t)
	ctx := context.Background()
	a := New(*opts)
	id, _, err := a.Assign(ctx, reportA)
	if err != nil {
		t.Fatal(err)
	}
	b := New(*opts) // not started: knows nothing of a's record
	// b first sees another outlet's report: a story of b's own...
	if got, _, err := b.Assign(ctx, reportB); err != nil || got != reportB.ID {
		t.Fatalf("b: %q %v", got, err)
	}
	// ...so in b's memory reportA belongs to reportB's story, but a's
	// record of reportA came first and decides.
	got, _, err := b.Assign(ctx, reportA)
	if err != nil || got != id {
		t.Fatalf("got story %q err %v, want %q", got, err, id)
	}
}
