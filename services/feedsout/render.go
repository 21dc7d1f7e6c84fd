package feedsout

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/version"
)

// Media types of the two formats.
const (
	TypeAtom = "application/atom+xml"
	TypeJSON = "application/feed+json"
)

// Formats, as they appear in paths (the extension) and metric labels.
const (
	FormatAtom = "atom"
	FormatJSON = "json"
)

const (
	atomNS        = "http://www.w3.org/2005/Atom"
	jsonFeedV11   = "https://jsonfeed.org/version/1.1"
	generatorURI  = "https://github.com/feedmon/feedmon"
	authorName    = "feedmon"
	untitledTitle = "(untitled)"
)

// idNamespace is the UUID namespace of feedmon's Atom ids (RFC 9562 name
// based, version 5). It is fixed for ever: changing it changes every id,
// and readers would show every entry again.
var idNamespace = [16]byte{0x6d, 0x2e, 0x1f, 0x4c, 0x95, 0x0b, 0x4e, 0x3a, 0x8c, 0x61, 0x1d, 0x7e, 0x52, 0xa0, 0x33, 0x9f}

// AtomID is the Atom id of the entry whose first report has itemID: a
// urn:uuid IRI (RFC 4287 wants an IRI; the item id is a bare hash) derived
// from the item id alone, so it is the same in every feed, every replica
// and after every restart.
func AtomID(itemID string) string { return uuidURN("item:" + itemID) }

// FeedAtomID is the Atom id of a feed: kind is "topics" or "subscribers".
func FeedAtomID(kind, name string) string { return uuidURN("feed:" + kind + "/" + name) }

func uuidURN(name string) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	x := hex.EncodeToString(u[:])
	return "urn:uuid:" + x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// view is what one rendering of a feed needs.
type view struct {
	kind, name string
	title      string
	self, home string
	// updated is when the feed last changed; zero for an empty feed.
	updated time.Time
	entries []*entry
}

// emptyUpdated stands for the updated time of a feed that has no entry
// yet: RFC 4287 requires one, and a fixed value keeps the bytes (and so
// the ETag) of an empty feed the same across restarts.
var emptyUpdated = time.Unix(0, 0).UTC()

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// contentText is an entry's text: the first report's summary, then the
// later reports of the story.
func contentText(e *entry) string {
	var b strings.Builder
	b.WriteString(e.first.Summary)
	if len(e.also) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString("Also reported by:")
		for _, it := range e.also {
			b.WriteString("\n- ")
			b.WriteString(source(it))
			if it.Title != "" {
				b.WriteString(": ")
				b.WriteString(it.Title)
			}
			if it.Link != "" {
				b.WriteString(" ")
				b.WriteString(it.Link)
			}
		}
	}
	return b.String()
}

// source names where an item came from: its feed's title, else its URL.
func source(it *event.Item) string {
	if it.FeedTitle != "" {
		return it.FeedTitle
	}
	return it.FeedURL
}

func title(it *event.Item) string {
	if strings.TrimSpace(it.Title) == "" {
		return untitledTitle
	}
	return it.Title
}

// Atom 1.0 (RFC 4287).

type atomFeed struct {
	XMLName   xml.Name      `xml:"feed"`
	NS        string        `xml:"xmlns,attr"`
	ID        string        `xml:"id"`
	Title     atomText      `xml:"title"`
	Subtitle  *atomText     `xml:"subtitle,omitempty"`
	Updated   string        `xml:"updated"`
	Author    atomPerson    `xml:"author"`
	Generator atomGenerator `xml:"generator"`
	Links     []atomLink    `xml:"link"`
	Entries   []atomEntry   `xml:"entry"`
}

type atomText struct {
	Type string `xml:"type,attr,omitempty"`
	Body string `xml:",chardata"`
}

type atomPerson struct {
	Name string `xml:"name"`
	URI  string `xml:"uri,omitempty"`
}

type atomGenerator struct {
	URI     string `xml:"uri,attr,omitempty"`
	Version string `xml:"version,attr,omitempty"`
	Name    string `xml:",chardata"`
}

type atomLink struct {
	Rel   string `xml:"rel,attr,omitempty"`
	Type  string `xml:"type,attr,omitempty"`
	Href  string `xml:"href,attr"`
	Title string `xml:"title,attr,omitempty"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

type atomEntry struct {
	ID         string         `xml:"id"`
	Title      atomText       `xml:"title"`
	Updated    string         `xml:"updated"`
	Published  string         `xml:"published,omitempty"`
	Links      []atomLink     `xml:"link"`
	Categories []atomCategory `xml:"category"`
	Content    atomText       `xml:"content"`
	Source     *atomSource    `xml:"source,omitempty"`
}

// atomSource keeps the metadata of the feed an entry was copied from
// (RFC 4287 section 4.2.11).
type atomSource struct {
	Title string     `xml:"title,omitempty"`
	Links []atomLink `xml:"link"`
}

func renderAtom(v *view) ([]byte, error) {
	updated := v.updated
	if updated.IsZero() {
		updated = emptyUpdated
	}
	f := atomFeed{
		NS:        atomNS,
		ID:        FeedAtomID(v.kind, v.name),
		Title:     atomText{Type: "text", Body: v.title},
		Updated:   formatTime(updated),
		Author:    atomPerson{Name: authorName, URI: generatorURI},
		Generator: atomGenerator{URI: generatorURI, Version: version.Version, Name: "feedmon"},
		Links: []atomLink{
			{Rel: "self", Type: TypeAtom, Href: v.self},
			{Rel: "alternate", Type: "text/html", Href: v.home},
		},
	}
	for _, e := range v.entries {
		it := e.first
		ae := atomEntry{
			ID:        AtomID(it.ID),
			Title:     atomText{Type: "text", Body: title(it)},
			Updated:   formatTime(e.updated),
			Published: formatTime(e.published),
			Content:   atomText{Type: "text", Body: contentText(e)},
		}
		if e.published.IsZero() {
			ae.Published = ""
		}
		if it.Link != "" {
			ae.Links = append(ae.Links, atomLink{Rel: "alternate", Type: "text/html", Href: it.Link})
		}
		for _, later := range e.also {
			if later.Link != "" {
				ae.Links = append(ae.Links, atomLink{Rel: "related", Type: "text/html", Href: later.Link, Title: source(later) + ": " + title(later)})
			}
		}
		for _, t := range e.topics() {
			ae.Categories = append(ae.Categories, atomCategory{Term: t})
		}
		if it.FeedTitle != "" || it.FeedURL != "" {
			src := &atomSource{Title: it.FeedTitle}
			if it.FeedURL != "" {
				src.Links = []atomLink{{Rel: "self", Href: it.FeedURL}}
			}
			ae.Source = src
		}
		f.Entries = append(f.Entries, ae)
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("feedsout: encode atom: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// JSON Feed 1.1 (jsonfeed.org/version/1.1).

type jsonFeed struct {
	Version     string       `json:"version"`
	Title       string       `json:"title"`
	HomePageURL string       `json:"home_page_url"`
	FeedURL     string       `json:"feed_url"`
	Description string       `json:"description,omitempty"`
	Authors     []jsonAuthor `json:"authors"`
	Items       []jsonItem   `json:"items"`
}

type jsonAuthor struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

type jsonItem struct {
	ID            string   `json:"id"`
	URL           string   `json:"url,omitempty"`
	Title         string   `json:"title"`
	ContentText   string   `json:"content_text"`
	DatePublished string   `json:"date_published,omitempty"`
	DateModified  string   `json:"date_modified,omitempty"`
	Tags          []string `json:"tags"`
	// Feedmon is the JSON Feed extension (keys starting with "_") with
	// what the standard fields cannot say.
	Feedmon jsonExt `json:"_feedmon"`
}

type jsonExt struct {
	FeedTitle string     `json:"feed_title,omitempty"`
	FeedURL   string     `json:"feed_url,omitempty"`
	StoryID   string     `json:"story_id,omitempty"`
	Also      []jsonAlso `json:"also_reported_by,omitempty"`
}

type jsonAlso struct {
	ID        string `json:"id"`
	Title     string `json:"title,omitempty"`
	URL       string `json:"url,omitempty"`
	FeedTitle string `json:"feed_title,omitempty"`
	FeedURL   string `json:"feed_url,omitempty"`
}

func renderJSON(v *view) ([]byte, error) {
	f := jsonFeed{
		Version:     jsonFeedV11,
		Title:       v.title,
		HomePageURL: v.home,
		FeedURL:     v.self,
		Authors:     []jsonAuthor{{Name: authorName, URL: generatorURI}},
		Items:       []jsonItem{},
	}
	for _, e := range v.entries {
		it := e.first
		ji := jsonItem{
			ID:           it.ID,
			URL:          it.Link,
			Title:        title(it),
			ContentText:  contentText(e),
			DateModified: formatTime(e.updated),
			Tags:         e.topics(),
			Feedmon:      jsonExt{FeedTitle: it.FeedTitle, FeedURL: it.FeedURL, StoryID: it.StoryID},
		}
		if !e.published.IsZero() {
			ji.DatePublished = formatTime(e.published)
		}
		if ji.Tags == nil {
			ji.Tags = []string{}
		}
		for _, later := range e.also {
			ji.Feedmon.Also = append(ji.Feedmon.Also, jsonAlso{ID: later.ID, Title: later.Title, URL: later.Link, FeedTitle: later.FeedTitle, FeedURL: later.FeedURL})
		}
		f.Items = append(f.Items, ji)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("feedsout: encode json feed: %w", err)
	}
	return buf.Bytes(), nil
}
