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
	bad, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, false)
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
	if _, err := RunClassify(context.Background(), c, strings.NewReader(in), &out, true); err != nil {
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
	if _, err := RunClassify(ctx, c, strings.NewReader(`{"id":"a"}`), &out, false); err == nil {
		t.Error("want context error")
	}
}
