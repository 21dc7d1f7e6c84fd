package stdout_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/services/notifier/alert"
	"github.com/feedmon/feedmon/services/notifier/stdout"
)

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		topics []string
		title  string
		link   string
		want   string
	}{
		{"plain", []string{"rare_earths", "defense", "trade"}, "EU and Japan agree to mine rare earths", "https://example.org/a",
			"[rare_earths,defense,trade] EU and Japan agree to mine rare earths https://example.org/a"},
		{"newlines", []string{"trade"}, "first\nsecond\r\nthird\u2028fourth", "https://example.org/b",
			"[trade] first second third fourth https://example.org/b"},
		{"control characters", []string{"trade"}, "bell\a and escape \x1b[31m red", "https://e.org/\nX",
			"[trade] bell and escape [31m red https://e.org/ X"},
		{"no title", []string{"defense"}, "", "https://e.org/c", "[defense] https://e.org/c"},
		{"no topics", nil, "t", "", "[] t"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := stdout.Format(tc.topics, tc.title, tc.link); got != tc.want {
				t.Errorf("Format = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNotify(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	n := stdout.New(&buf)
	b := alert.NewBatch("s", "stdout",
		&event.Item{ID: "1", Title: "one\ntwo", Link: "https://e.org/1", Topics: []string{"trade"}},
		&event.Item{ID: "2", Title: "three", Link: "https://e.org/2", Topics: []string{"defense", "trade"}},
	)
	if retry, err := n.Notify(context.Background(), b); err != nil || retry {
		t.Fatal(retry, err)
	}
	want := "[trade] one two https://e.org/1\n[defense,trade] three https://e.org/2\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestNotifyWriteErrorRetries(t *testing.T) {
	t.Parallel()
	retry, err := stdout.New(failing{}).Notify(context.Background(), alert.NewBatch("s", "stdout", &event.Item{ID: "1"}))
	if err == nil || !retry {
		t.Errorf("Notify = %v, %v", retry, err)
	}
}

func TestNotifyUpdate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		updates map[string]string
		want    string
	}{
		{"alerts", nil, "[trade] one https://e.org/1\n[trade] two https://e.org/2\n"},
		{"update", map[string]string{"2": "1"}, "[trade] one https://e.org/1\n↳ also: [trade] two https://e.org/2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			b := alert.NewBatch("s", "stdout",
				&event.Item{ID: "1", Title: "one", Link: "https://e.org/1", Topics: []string{"trade"}},
				&event.Item{ID: "2", Title: "two", Link: "https://e.org/2", Topics: []string{"trade"}},
			)
			b.Updates = tc.updates
			if retry, err := stdout.New(&buf).Notify(context.Background(), b); err != nil || retry {
				t.Fatal(retry, err)
			}
			if buf.String() != tc.want {
				t.Errorf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
}
