package poller

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mmcdole/gofeed"
)

// TestParseFeedNeverLosesToGofeed parses every file of gofeed's own test
// data (from the module cache: it is a dependency, nothing is fetched) both
// ways: gofeed alone on the bytes, and parseFeed. Whatever gofeed reads,
// parseFeed must read with at least as many items, and a well-formed UTF-8
// feed — or any feed parseFeed took no recovery on — must come out with
// the very same titles. FEEDMON_FEED_CORPUS adds directories of other feed
// collections (a list, as PATH).
func TestParseFeedNeverLosesToGofeed(t *testing.T) {
	t.Parallel()
	dirs := filepath.SplitList(os.Getenv("FEEDMON_FEED_CORPUS"))
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/mmcdole/gofeed").Output()
	if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
		dirs = append(dirs, filepath.Join(dir, "testdata"))
	}
	var files []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
	}
	if len(files) == 0 {
		t.Skip("gofeed's test data not found in the module cache (go list -m failed)")
	}
	var c corpusCount
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if msg := c.compare(data); msg != "" {
			t.Errorf("%s: %s", path, msg)
		}
	}
	t.Logf("%d files: gofeed parsed %d with %d items; parseFeed parsed %d with %d items (%d only by parseFeed); titles equal to gofeed's on %d; recoveries %v",
		len(files), c.gofeedFeeds, c.gofeedItems, c.oursFeeds, c.oursItems, c.oursOnly, c.sameTitles, c.recoveries)
}

type corpusCount struct {
	gofeedFeeds, gofeedItems int
	oursFeeds, oursItems     int
	oursOnly, sameTitles     int
	recoveries               map[recovery]int
}

// compare parses data both ways and says what parseFeed got wrong, if
// anything.
func (c *corpusCount) compare(data []byte) string {
	theirs, terr := gofeed.NewParser().Parse(bytes.NewReader(data))
	ours, recs, oerr := parseFeed(data, "")
	if terr == nil {
		c.gofeedFeeds++
		c.gofeedItems += len(theirs.Items)
	}
	if oerr == nil {
		c.oursFeeds++
		c.oursItems += len(ours.Items)
		if c.recoveries == nil {
			c.recoveries = map[recovery]int{}
		}
		for _, r := range recs {
			c.recoveries[r]++
		}
	}
	switch {
	case terr != nil && oerr == nil:
		c.oursOnly++
		return ""
	case terr != nil:
		return ""
	case oerr != nil:
		return fmt.Sprintf("gofeed reads %d items, parseFeed fails: %v", len(theirs.Items), oerr)
	case len(ours.Items) < len(theirs.Items):
		return fmt.Sprintf("%d items, gofeed reads %d", len(ours.Items), len(theirs.Items))
	}
	if len(recs) > 0 && !wellFormedUTF8(data) {
		return ""
	}
	if a, b := titles(ours), titles(theirs); a != b {
		return fmt.Sprintf("titles changed (recoveries %v)\n got %s\nwant %s", recs, a, b)
	}
	c.sameTitles++
	return ""
}

// wellFormedUTF8 reports whether data is valid UTF-8 that declares no
// other charset.
func wellFormedUTF8(data []byte) bool {
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return false
	}
	if m := xmlDeclRe.FindSubmatch(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))); m != nil {
		return isUTF8Label(strings.ToLower(string(m[1])))
	}
	return true
}

func titles(f *gofeed.Feed) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", f.Title)
	for _, it := range f.Items {
		fmt.Fprintf(&b, " %q", it.Title)
	}
	return b.String()
}
