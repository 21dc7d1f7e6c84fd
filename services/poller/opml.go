package poller

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/feedmon/feedmon/internal/config"
)

// maxOPMLBytes bounds an OPML file; a subscription list is kilobytes.
const maxOPMLBytes = 16 << 20

type opmlOutline struct {
	Type     string        `xml:"type,attr"`
	Text     string        `xml:"text,attr"`
	Title    string        `xml:"title,attr"`
	XMLURL   string        `xml:"xmlUrl,attr"`
	Outlines []opmlOutline `xml:"outline"`
}

// readOPML returns the feeds (outlines with an http(s) xmlUrl, at any
// depth) of the OPML file at path.
func readOPML(path string) ([]config.Feed, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("poller: opml: %w", err)
	}
	defer fh.Close()
	return parseOPML(io.LimitReader(fh, maxOPMLBytes), path)
}

func parseOPML(r io.Reader, name string) ([]config.Feed, error) {
	var doc struct {
		Body struct {
			Outlines []opmlOutline `xml:"outline"`
		} `xml:"body"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("poller: opml %s: %w", name, err)
	}
	var out []config.Feed
	var walk func([]opmlOutline)
	walk = func(os []opmlOutline) {
		for _, o := range os {
			if o.XMLURL != "" {
				if u, err := url.Parse(o.XMLURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
					title := o.Title
					if title == "" {
						title = o.Text
					}
					out = append(out, config.Feed{URL: o.XMLURL, Title: title})
				}
			}
			walk(o.Outlines)
		}
	}
	walk(doc.Body.Outlines)
	return out, nil
}
