// Package stdout prints one line per alert: topics, title, link. A later
// report of a story already alerted gets the same line behind UpdatePrefix.
package stdout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/feedmon/feedmon/services/notifier/alert"
)

// UpdatePrefix starts the line of an update: a later report of a story
// the subscriber was already alerted to.
const UpdatePrefix = "↳ also: "

// Notifier writes alerts to a writer, one line per item.
type Notifier struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a notifier writing to w. Lines from concurrent deliveries
// never interleave.
func New(w io.Writer) *Notifier { return &Notifier{w: w} }

// Format renders one item as its line (without the newline): item text
// is flattened so that a title cannot start a line of its own.
func Format(topics []string, title, link string) string {
	ts := make([]string, len(topics))
	for i, t := range topics {
		ts[i] = alert.Sanitize(t)
	}
	var b strings.Builder
	b.WriteString("[" + strings.Join(ts, ",") + "]")
	if t := alert.Sanitize(title); t != "" {
		b.WriteString(" " + t)
	}
	if l := alert.Sanitize(link); l != "" {
		b.WriteString(" " + l)
	}
	return b.String()
}

// Notify writes the batch's lines in one write. A failing writer (a closed
// pipe) is worth retrying: it may be a consumer that restarts.
func (n *Notifier) Notify(_ context.Context, b *alert.Batch) (retry bool, err error) {
	var buf bytes.Buffer
	for _, it := range b.Items {
		if b.IsUpdate(it) {
			buf.WriteString(UpdatePrefix)
		}
		buf.WriteString(Format(it.Topics, it.Title, it.Link))
		buf.WriteByte('\n')
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.w.Write(buf.Bytes()); err != nil {
		return true, fmt.Errorf("stdout: write: %w", err)
	}
	return false, nil
}
