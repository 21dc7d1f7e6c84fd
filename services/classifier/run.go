package classifier

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/htmltext"
	"github.com/feedmon/feedmon/internal/story"
)

// MaxLineBytes is the longest input line RunClassify reads; a longer line
// is answered with an error line and skipped.
const MaxLineBytes = 16 << 20

type classifyIn struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Summary string `json:"summary"`
	Lang    string `json:"lang"`
	// Published (RFC 3339, optional) places the line in time for story
	// grouping; lines without it are all taken as simultaneous.
	Published string `json:"published"`
}

type classifyOut struct {
	ID      string              `json:"id"`
	Topics  []string            `json:"topics"`
	Scores  map[string]float64  `json:"scores"`
	Matches map[string][]string `json:"matches"`
	StoryID string              `json:"story_id"`
	Explain []TopicExplain      `json:"explain,omitempty"`
	Story   *StoryExplain       `json:"story_explain,omitempty"`
}

// StoryExplain is what -explain says of a line's story: the line it
// joined and what they share, or the closest line it did not join and
// what kept them apart.
type StoryExplain struct {
	story.Explanation
	// MatchedWords and NearMissWords are the content words the line
	// shares with those lines.
	MatchedWords  []string `json:"matched_words,omitempty"`
	NearMissWords []string `json:"near_miss_words,omitempty"`
}

// RunOptions configure RunClassify.
type RunOptions struct {
	// Explain adds, per topic, the rule that fired and why, and what
	// made the line's story.
	Explain bool
	// Stories configures story grouping as the service's (see
	// StoryOptions).
	Stories story.Options
}

// StoryOptions are the story options of a config's stories.* keys, as
// the service and `feedmon classify` both apply them.
func StoryOptions(s config.Stories) story.Options {
	return story.Options{Window: s.Window.D(), Threshold: s.Threshold, MaxEntries: s.MaxEntries}
}

type classifyErr struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// RunClassify is `feedmon classify`: it reads JSON lines (id, title,
// summary which may hold HTML, optional lang; other fields such as a gold
// "topics" are ignored) and writes one JSON line per input line, in order.
// A line that is not a valid JSON object yields {"line": N, "error": ...}
// and is counted in badLines; blank lines are skipped. err is an I/O or
// context error; bad lines alone are not an error (the caller turns them
// into exit status 1).
//
// Every answered line carries a story_id: lines that are near-duplicate
// reports of one story (story.Index, in memory, with opts.Stories) share
// the id of the first of them.
func RunClassify(ctx context.Context, c *Classifier, in io.Reader, out io.Writer, opts RunOptions) (badLines int, err error) {
	explain := opts.Explain
	stories := story.New(opts.Stories)
	// With explain, the lines read so far, to say which words two share.
	docs := map[string]story.Doc{}
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var line []byte
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			_ = w.Flush()
			return badLines, fmt.Errorf("classifier: %w", err)
		}
		var tooLong bool
		line, tooLong, err = readLine(r, line[:0])
		if err != nil && !errors.Is(err, io.EOF) {
			_ = w.Flush()
			return badLines, fmt.Errorf("classifier: read line %d: %w", n, err)
		}
		eof := err != nil
		trimmed := bytes.TrimSpace(line)
		switch {
		case tooLong:
			badLines++
			if e := enc.Encode(classifyErr{Line: n, Error: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}); e != nil {
				return badLines, fmt.Errorf("classifier: write: %w", e)
			}
		case len(trimmed) == 0:
			// Blank lines carry nothing to answer.
		default:
			var item classifyIn
			var rec any
			if e := decodeLine(trimmed, &item); e != nil {
				badLines++
				rec = classifyErr{Line: n, Error: e.Error()}
			} else {
				var res Result
				title, summary := htmltext.ToText(item.Title), htmltext.ToText(item.Summary)
				if explain {
					res = c.ClassifyExplain(title, summary, item.Lang)
				} else {
					res = c.Classify(title, summary, item.Lang)
				}
				o := classifyOut{ID: item.ID, Topics: res.Topics, Scores: res.Scores, Matches: res.Matches, Explain: res.Explain}
				// Without an id, the story is named after the line.
				doc := story.Doc{ID: item.ID, Title: title, Text: summary, Lang: item.Lang}
				if doc.ID == "" {
					doc.ID = fmt.Sprintf("line-%d", n)
				}
				if t, err := time.Parse(time.RFC3339, item.Published); err == nil {
					doc.At = t
				}
				if explain {
					var ex story.Explanation
					o.StoryID, _, ex = stories.AssignExplain(doc)
					se := &StoryExplain{Explanation: ex}
					if ex.Matched != nil {
						se.MatchedWords = story.SharedWords(doc, docs[ex.Matched.ID])
					}
					if ex.NearMiss != nil {
						se.NearMissWords = story.SharedWords(doc, docs[ex.NearMiss.ID])
					}
					docs[doc.ID] = doc
					o.Story = se
				} else {
					o.StoryID, _ = stories.Assign(doc)
				}
				if o.Scores == nil {
					o.Scores = map[string]float64{}
				}
				if o.Matches == nil {
					o.Matches = map[string][]string{}
				}
				if explain && o.Explain == nil {
					o.Explain = []TopicExplain{}
				}
				rec = o
			}
			if e := enc.Encode(rec); e != nil {
				return badLines, fmt.Errorf("classifier: write: %w", e)
			}
		}
		if eof {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return badLines, fmt.Errorf("classifier: write: %w", err)
	}
	return badLines, nil
}

// decodeLine decodes one JSON object; anything else (an array, a string,
// trailing data) is an error.
func decodeLine(b []byte, item *classifyIn) error {
	if b[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(item); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON: data after the object")
	}
	return nil
}

// readLine reads one line (without its newline) into buf. A line longer
// than MaxLineBytes is consumed and reported as tooLong. err is io.EOF
// after the last line.
func readLine(r *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	for {
		chunk, e := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			tooLong = true
			buf = buf[:0]
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		switch {
		case e == nil:
			return bytes.TrimSuffix(buf, []byte{'\n'}), tooLong, nil
		case errors.Is(e, bufio.ErrBufferFull):
			continue
		default:
			return buf, tooLong, e
		}
	}
}
