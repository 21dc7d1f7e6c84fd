package poller

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/mmcdole/gofeed/rss"

	"github.com/feedmon/feedmon/internal/httpx"
)

// Scheduling bounds.
const (
	// maxStretchCap: however quiet a feed is or whatever its ttl or cache
	// headers say, it is polled at least this often unless its own interval
	// is longer. Analysts want news within minutes, not hours.
	maxStretchCap = 30 * time.Minute
	// idleIntervals: a feed unchanged for this many intervals starts being
	// polled less often (adaptive), up to maxStretch.
	idleIntervals = 8
	// jitterFraction spreads polls of feeds with equal intervals so they do
	// not fire in lockstep.
	jitterFraction = 0.1
	// maxRetryAfter caps a feed's Retry-After: a host may ask for a long
	// pause (a week covers a blog on holiday), not for a poller that never
	// comes back. The feed's wait is capped again by poll.max_backoff.
	maxRetryAfter = 7 * 24 * time.Hour
	// DefaultHostGap is the minimum time between two request starts to one
	// host at poll.per_host 1; it shrinks as per_host grows (a user raising
	// per_host says the host can take it).
	DefaultHostGap = 500 * time.Millisecond
	// longFetch: a fetch still running after this long (or half of
	// poll.timeout, if shorter) stops holding its host's poll.per_host
	// slot. Feeds answer in well under a second; one that takes longer
	// hangs or drips, and would otherwise hold its host's other feeds
	// back for the whole timeout.
	longFetch = 5 * time.Second
	// maxStartSpread caps the spread of a new feed's first poll
	// (startSpread). Up to 5 s once, it held the whole first fetch of a
	// thousand feeds back by as much; a second still breaks up the burst
	// of first items, and the first fetch of many feeds takes longer than
	// that anyway.
	maxStartSpread = time.Second
)

// hints are what a fetch learned about when to come back.
type hints struct {
	cacheLifetime time.Duration // Cache-Control max-age / Expires
	feedTTL       time.Duration // <ttl> or sy:updatePeriod/updateFrequency
	retryAfter    time.Duration // Retry-After on 429/503
}

// pollJitter spreads every poll of a feed, and its backoff, by ±jitterFraction.
var pollJitter = httpx.Jitter{Low: 1 - jitterFraction, High: 1 + jitterFraction}

// maxStretch is the longest delay hints and idleness may stretch interval to.
func maxStretch(interval time.Duration) time.Duration {
	return max(interval, min(4*interval, maxStretchCap))
}

// nextDelay decides how long to wait before polling a feed again.
// failures counts consecutive errors including this fetch's (0 on success).
func nextDelay(interval, maxBackoff time.Duration, failures int, h hints, idle time.Duration, rnd func() float64) time.Duration {
	if failures > 0 {
		d := httpx.Backoff(interval, maxBackoff, failures, pollJitter, rnd)
		if h.retryAfter > d {
			d = min(h.retryAfter, max(maxBackoff, interval))
		}
		return d
	}
	d := interval
	if idle > time.Duration(idleIntervals)*interval && interval > 0 {
		// Quiet feed: stretch in proportion to how long it has been quiet.
		d = time.Duration(float64(interval) * float64(idle) / float64(time.Duration(idleIntervals)*interval))
	}
	d = max(d, h.cacheLifetime, h.feedTTL, h.retryAfter)
	d = min(d, max(maxStretch(interval), h.retryAfter))
	return pollJitter.Spread(d, rnd)
}

// spreadDelay is d scaled by a random factor in [0.5, 1.5): on average d,
// but feeds polled together once are spread over a whole d.
func spreadDelay(d time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	return time.Duration(float64(d) * (0.5 + rnd()))
}

// startSpread is the window over which a new feed's first poll falls:
// a tenth of its interval, so that a short interval is not delayed by a
// large part of itself, and at most maxStartSpread.
func startSpread(interval time.Duration) time.Duration {
	return max(min(interval/10, maxStartSpread), 0)
}

// hostGap is the minimum gap between request starts to one host.
func hostGap(perHost int) time.Duration {
	return DefaultHostGap / time.Duration(max(perHost, 1))
}

// feedTTL reads RSS <ttl> (minutes) or sy:updatePeriod/sy:updateFrequency.
func feedTTL(f *gofeed.Feed) time.Duration {
	if orig, ok := f.OriginalFeed().(*rss.Feed); ok && orig != nil {
		if m, err := strconv.Atoi(strings.TrimSpace(orig.TTL)); err == nil && m > 0 {
			return time.Duration(min(m, 7*24*60)) * time.Minute
		}
	}
	sy := f.Extensions["sy"]
	if sy == nil {
		return 0
	}
	var period time.Duration
	if p := sy["updatePeriod"]; len(p) > 0 {
		switch strings.ToLower(strings.TrimSpace(p[0].Value)) {
		case "hourly":
			period = time.Hour
		case "daily":
			period = 24 * time.Hour
		case "weekly":
			period = 7 * 24 * time.Hour
		case "monthly":
			period = 30 * 24 * time.Hour
		case "yearly":
			period = 365 * 24 * time.Hour
		}
	}
	if period == 0 {
		return 0
	}
	freq := 1
	if fr := sy["updateFrequency"]; len(fr) > 0 {
		if n, err := strconv.Atoi(strings.TrimSpace(fr[0].Value)); err == nil && n > 0 {
			freq = n
		}
	}
	return period / time.Duration(freq)
}
