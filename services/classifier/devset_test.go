package classifier

import (
	"context"
	"os"
	"testing"

	"github.com/feedmon/feedmon/internal/topics"
)

// TestDevSetPredictions classifies an external labelled set for scoring
// while tuning the built-in rules. It runs only when FEEDMON_DEVSET names a
// JSON-lines file; predictions go to FEEDMON_DEVSET_OUT (default stdout).
// Tests never read anything outside the repository by default.
func TestDevSetPredictions(t *testing.T) {
	path := os.Getenv("FEEDMON_DEVSET")
	if path == "" {
		t.Skip("FEEDMON_DEVSET not set")
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := os.Stdout
	if p := os.Getenv("FEEDMON_DEVSET_OUT"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out = f
	}
	set, err := topics.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunClassify(context.Background(), c, in, out, RunOptions{Explain: os.Getenv("FEEDMON_DEVSET_EXPLAIN") != ""}); err != nil {
		t.Fatal(err)
	}
}
