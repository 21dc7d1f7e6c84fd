package event

import (
	stdjson "encoding/json"
	"testing"
)

// benchItem is a classified item as the notifier receives it.
var benchItem = Item{
	ID: "4f1c0a9e8b7d6c5e4f1c0a9e8b7d6c5e", FeedURL: "https://feeds.example.com/world/rss", FeedTitle: "World news",
	Title:     "Brussels imposes anti-dumping duties on imports of Chinese steel",
	Link:      "https://news.example.com/2026/11/27/steel-duties",
	Summary:   "The European Commission set provisional anti-dumping duties of up to 30% on steel imports from China after complaints from EU producers.",
	Published: "2026-11-27T08:00:00Z", FetchedAt: "2026-11-27T08:38:44.123456789Z", Lang: "en",
	Topics: []string{"trade"}, Scores: map[string]float64{"trade": 0.83},
	Matches: map[string][]string{"trade": {"anti-dumping duties", "imports"}}, StoryID: "4f1c0a9e8b7d6c5e4f1c0a9e8b7d6c5e",
}

// BenchmarkCodec compares the item codec (Marshal, Unmarshal) with
// encoding/json on the same item: every item is encoded once and decoded
// twice on its way through the pipeline.
func BenchmarkCodec(b *testing.B) {
	data, err := benchItem.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Unmarshal(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var it Item
			if err := stdjson.Unmarshal(data, &it); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := benchItem.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := stdjson.Marshal(&benchItem); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCodecMatchesEncodingJSON: the item codec writes what encoding/json
// writes and reads it back the same, hostile text included, so the
// contract's JSON does not depend on the codec.
func TestCodecMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	hostile := benchItem
	hostile.Title = "<script>alert(1)</script> & \"quotes\" \u2028 \x01 日本語 \U0001F600 \\"
	hostile.Summary = "line\nbreak\ttab \ufffd"
	hostile.Topics = nil
	for _, it := range []Item{benchItem, hostile, {ID: "x"}} {
		got, err := it.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cp := it
		if cp.Topics == nil {
			cp.Topics = []string{}
		}
		want, err := stdjson.Marshal(&cp)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("Marshal:\n got %s\nwant %s", got, want)
		}
		back, err := Unmarshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var std Item
		if err := stdjson.Unmarshal(want, &std); err != nil {
			t.Fatal(err)
		}
		b1, _ := stdjson.Marshal(back)
		b2, _ := stdjson.Marshal(&std)
		if string(b1) != string(b2) {
			t.Errorf("Unmarshal differs from encoding/json:\n got %s\nwant %s", b1, b2)
		}
	}
}
