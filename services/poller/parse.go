package poller

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mmcdole/gofeed"
	"golang.org/x/net/html"

	"github.com/feedmon/feedmon/internal/event"
	"github.com/feedmon/feedmon/internal/htmltext"
)

// Bounds on an item's fields. The summary's is the contract's; the others
// keep a hostile feed from producing a message over NATS's payload limit
// (which would fail its publish on every poll).
const (
	maxSummaryRunes   = 2000
	maxTitleRunes     = 1000
	maxFeedTitleRunes = 500
	maxLinkBytes      = 4096
)

// Dates outside [minPublished, now+maxFuture] are not believed: feeds emit
// the Unix epoch for "unknown" and far-future dates from broken clocks or
// typos. Such an item is still published, with an empty published field,
// which the contract defines as "no usable date". The raw date string still
// feeds the content hash, so the id stays stable.
var minPublished = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)

const maxFuture = 48 * time.Hour

// normalizer turns a parsed feed into the contract's items.
type normalizer struct {
	feedURL   string // as configured: ids and subjects derive from it
	feedTitle string // configured title, overriding the feed's own
	base      *url.URL
	now       time.Time
	maxItems  int
}

// entry is one normalised item plus what the seen-set needs.
type entry struct {
	item event.Item
	// alt identifies the item by link and title, so that a GUID that churns
	// while the article stays the same is not a new item. Empty when the
	// link is missing (title alone is too weak).
	alt string
}

func (n *normalizer) items(f *gofeed.Feed) []entry {
	feedTitle := n.feedTitle
	if feedTitle == "" {
		feedTitle = htmltext.ToText(f.Title)
	}
	feedTitle = htmltext.Truncate(feedTitle, maxFeedTitleRunes)
	base := n.base
	if f.Link != "" {
		if l, err := base.Parse(strings.TrimSpace(f.Link)); err == nil && (l.Scheme == "http" || l.Scheme == "https") {
			base = l
		}
	}
	lang := primaryLang(f.Language)
	src := f.Items
	if len(src) > n.maxItems {
		src = newestFirst(src)
		src = src[:min(len(src), n.maxItems)]
	}
	out := make([]entry, 0, len(src))
	for _, it := range src {
		if it == nil {
			continue
		}
		out = append(out, n.item(it, feedTitle, base, lang))
	}
	return out
}

func (n *normalizer) item(it *gofeed.Item, feedTitle string, base *url.URL, lang string) entry {
	title := htmltext.Truncate(htmltext.ToText(it.Title), maxTitleRunes)
	link := resolveLink(base, it.Link)
	if link == "" && len(it.Links) > 0 {
		link = resolveLink(base, it.Links[0])
	}
	summary := it.Description
	if strings.TrimSpace(summary) == "" {
		summary = it.Content
	}
	summary = htmltext.Truncate(htmltext.ToText(summary), maxSummaryRunes)

	var published string
	if t := it.PublishedParsed; t != nil && plausible(*t, n.now) {
		published = event.FormatTime(*t)
	} else if t := it.UpdatedParsed; t != nil && plausible(*t, n.now) {
		published = event.FormatTime(*t)
	}

	key := strings.TrimSpace(it.GUID)
	if key == "" {
		key = link
	}
	if key == "" {
		// Nothing identifies the item but its content: hash what the
		// publisher wrote (raw date string, not our parse of it).
		h := sha256.New()
		io.WriteString(h, it.Title)
		h.Write([]byte{0})
		io.WriteString(h, it.Published+"|"+it.Updated)
		h.Write([]byte{0})
		io.WriteString(h, it.Description)
		h.Write([]byte{0})
		io.WriteString(h, it.Content)
		key = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	e := entry{item: event.Item{
		ID:        event.ItemID(n.feedURL, key),
		FeedURL:   n.feedURL,
		FeedTitle: feedTitle,
		Title:     title,
		Link:      link,
		Summary:   summary,
		Published: published,
		FetchedAt: event.FormatTime(n.now),
		Lang:      lang,
	}}
	if link != "" {
		e.alt = altKey(link, title)
	}
	return e
}

// altKey is a short hash of link and title, per feed seen-set.
func altKey(link, title string) string {
	sum := sha256.Sum256([]byte(link + "\x00" + title))
	return hex.EncodeToString(sum[:10])
}

func plausible(t, now time.Time) bool {
	return !t.Before(minPublished) && !t.After(now.Add(maxFuture))
}

func resolveLink(base *url.URL, raw string) string {
	raw = strings.TrimSpace(html.UnescapeString(raw))
	if raw == "" {
		return ""
	}
	u, err := base.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		// Not a web link (javascript:, mailto:, garbage): keep nothing
		// rather than hand a reader something dangerous to click.
		return ""
	}
	if s := u.String(); len(s) <= maxLinkBytes {
		return s
	}
	return "" // a cut URL is a broken one

}

// primaryLang returns the lower-cased primary subtag of a BCP 47 tag.
func primaryLang(tag string) string {
	tag = strings.TrimSpace(tag)
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	tag = strings.ToLower(tag)
	if len(tag) < 2 || len(tag) > 3 {
		return ""
	}
	for _, c := range tag {
		if c < 'a' || c > 'z' {
			return ""
		}
	}
	return tag
}

// newestFirst orders items by date, newest first, for capping: a feed that
// lists oldest first must not lose its new items to poll.max_items. Items
// without a date keep their place relative to each other, after dated ones.
func newestFirst(items []*gofeed.Item) []*gofeed.Item {
	out := make([]*gofeed.Item, 0, len(items))
	for _, it := range items {
		if it != nil {
			out = append(out, it)
		}
	}
	when := func(it *gofeed.Item) time.Time {
		if it.PublishedParsed != nil {
			return *it.PublishedParsed
		}
		if it.UpdatedParsed != nil {
			return *it.UpdatedParsed
		}
		return time.Time{}
	}
	sort.SliceStable(out, func(i, j int) bool { return when(out[i]).After(when(out[j])) })
	return out
}
