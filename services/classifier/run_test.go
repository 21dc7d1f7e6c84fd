package classifier

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestRunClassify(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	long := strings.Repeat("filler words about nothing ", 60000) // ~1.6 MiB
	in := strings.Join([]string{
		`{"id":"a","title":"Washington raises tariffs on steel","summary":"<p>The duties start in May.</p>","lang":"en","topics":["defense"]}`,
		``,
		`not json`,
		`   `,
		`{"id":"b","title":"Rare steak","summary":"How to cook it."}`,
		`{"id":"c","title":"NATO drills","summary":"` + long + `"}`,
		`[1,2]`,
		`{"id":"d","title":"x"} trailing`,
		`{"id":"e","title":"Earth Day"}`,
	}, "\n")
	var out bytes.Buffer
	bad, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bad != 3 {
		t.Errorf("badLines = %d, want 3", bad)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("got %d output lines, want 7:\n%s", len(lines), out.String())
	}
	type rec struct {
		ID      *string             `json:"id"`
		Topics  []string            `json:"topics"`
		Scores  map[string]float64  `json:"scores"`
		Matches map[string][]string `json:"matches"`
		StoryID *string             `json:"story_id"`
		Line    int                 `json:"line"`
		Error   string              `json:"error"`
		Explain json.RawMessage     `json:"explain"`
	}
	var recs []rec
	for _, l := range lines {
		var r rec
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	if *recs[0].ID != "a" || len(recs[0].Topics) != 1 || recs[0].Topics[0] != "trade" || recs[0].StoryID == nil {
		t.Errorf("line a: %+v", recs[0])
	}
	if recs[0].Explain != nil {
		t.Error("explain present without -explain")
	}
	if recs[1].Line != 3 || recs[1].Error == "" {
		t.Errorf("bad line record: %+v", recs[1])
	}
	if *recs[2].ID != "b" || len(recs[2].Topics) != 0 || recs[2].Topics == nil || recs[2].Scores == nil || recs[2].Matches == nil {
		t.Errorf("line b: %s", lines[2])
	}
	if *recs[3].ID != "c" || len(recs[3].Topics) != 1 {
		t.Errorf("long line c: %+v", recs[3].Topics)
	}
	if recs[4].Line != 7 || recs[5].Line != 8 || *recs[6].ID != "e" {
		t.Errorf("tail: %s", strings.Join(lines[4:], "\n"))
	}
}

func TestRunClassifyExplain(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	var out bytes.Buffer
	in := `{"id":"x","title":"Celtics defense holds before the trade deadline","summary":""}` + "\n"
	if _, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, RunOptions{Explain: true}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Explain []TopicExplain `json:"explain"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range r.Explain {
		if e.Topic == "trade" && len(e.Cancelled) > 0 && e.Threshold > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("explain lacks the cancelled trade match: %s", out.String())
	}
}

func TestRunClassifyCancelled(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := RunClassify(ctx, c, strings.NewReader(`{"id":"a"}`), &out, RunOptions{}); err == nil {
		t.Error("want context error")
	}
}

// TestRunClassifyStoryIDs: lines reporting one story share the story id of
// the first of them; other lines, and lines without an id, get their own.
func TestRunClassifyStoryIDs(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	in := strings.Join([]string{
		`{"id": "a1", "title": "Storm closes ports along the Baltic coast", "summary": "Ferries between Germany and Sweden were cancelled as winds reached 120 km/h, port authorities in Rostock said."}`,
		`{"id": "b1", "title": "Germany and Sweden sign ferry emissions pact", "summary": "The two governments agreed to electrify ferry routes across the Baltic by 2035."}`,
		`{"id": "a2", "title": "Baltic ports shut as storm cancels ferries", "summary": "<p>Winds of up to 120&nbsp;km/h forced Rostock and Trelleborg to halt ferry traffic between Germany and Sweden.</p>"}`,
		`{"title": "Rostock port closed by storm", "summary": "Winds of 120 km/h halted ferries between Germany and Sweden, Rostock port authorities said."}`,
		`not json`,
		`{"id": "a1", "title": "Storm closes ports along the Baltic coast", "summary": "Ferries between Germany and Sweden were cancelled."}`,
	}, "\n")
	var out bytes.Buffer
	if _, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var o struct {
			ID      string  `json:"id"`
			StoryID *string `json:"story_id"`
			Error   string  `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatal(err)
		}
		if o.Error != "" {
			got = append(got, "error")
			continue
		}
		if o.StoryID == nil {
			t.Fatalf("line %s has no story_id", line)
		}
		got = append(got, *o.StoryID)
	}
	want := []string{"a1", "b1", "a1", "a1", "error", "a1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("story ids %v, want %v", got, want)
	}
}

// TestRunClassifyExplainStories: with explain, each line says which line
// it joined and what they share, or which line it was kept apart from and
// why.
func TestRunClassifyExplainStories(t *testing.T) {
	t.Parallel()
	c := builtin(t)
	in := strings.Join([]string{
		`{"id":"a","lang":"en","title":"Japan pledges $3 billion in new aid for Ukraine reconstruction","summary":"Tokyo will provide $3 billion in loans and grants for Ukraine's power grid, Prime Minister Shigeru Ishiba told a donor conference in Rome."}`,
		`{"id":"b","lang":"en","title":"Tokyo commits fresh $3bn to rebuild Ukraine's energy network","summary":"Speaking in Rome, the Japanese prime minister said the money would go to power infrastructure."}`,
		`{"id":"c","lang":"en","title":"Germany pledges $3 billion in new aid for Ukraine reconstruction","summary":"Berlin will provide $3 billion in loans and grants for Ukraine's power grid, Chancellor Friedrich Merz told a donor conference in Rome."}`,
	}, "\n")
	var out bytes.Buffer
	if _, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, RunOptions{Explain: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), out.String())
	}
	var recs []struct {
		StoryID string        `json:"story_id"`
		Story   *StoryExplain `json:"story_explain"`
	}
	for _, l := range lines {
		var r struct {
			StoryID string        `json:"story_id"`
			Story   *StoryExplain `json:"story_explain"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	b, c2 := recs[1].Story, recs[2].Story
	if recs[1].StoryID != "a" || b == nil || b.Matched == nil || b.Matched.ID != "a" ||
		!strings.Contains(b.Matched.Shared, "Japan") || len(b.MatchedWords) == 0 {
		t.Errorf("b: %s", lines[1])
	}
	if recs[2].StoryID != "c" || c2 == nil || c2.NearMiss == nil || !strings.Contains(c2.NearMiss.KeptApart, "Germany") {
		t.Errorf("c: %s", lines[2])
	}
}
