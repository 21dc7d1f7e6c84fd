// Package httpx holds what feedmon's HTTP clients (the poller's fetcher,
// its WebSub client, the notifier's receivers) do alike when a request
// fails: read the server's Retry-After, back off with jitter, and keep the
// request URL, which may carry credentials, out of errors.
package httpx

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After header value, delay-seconds or an
// HTTP date relative to now, and caps it at limit. ok is false when the
// value is missing or unusable (garbage, a negative number); a date in
// the past is a delay of 0.
//
// The cap is the caller's: how long a server may hold a client off is a
// decision about that client (a feed may pause its poller for days, a
// delivery is better dead-lettered than held for long). Making it a
// parameter rather than leaving it to each caller means both forms of the
// header are always capped alike.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// Compared in seconds: a huge value must not overflow a Duration.
		if secs >= int64(limit/time.Second) {
			return max(limit, 0), true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), max(limit, 0)), true
	}
	return 0, false
}

// Jitter is the range a delay is spread over, as factors of it: a delay d
// becomes one drawn uniformly from [d·Low, d·High).
type Jitter struct{ Low, High float64 }

// Spread draws d's jittered value; rnd returns a number in [0,1) (nil:
// math/rand).
func (j Jitter) Spread(d time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	return time.Duration(float64(d) * (j.Low + (j.High-j.Low)*rnd()))
}

// Backoff is the delay before the next attempt after failures consecutive
// failures (1 for the first): base, doubled for each further failure up to
// limit (or base, when base is the longer), spread by j, and never more
// than that cap.
//
// The delay is capped before it is spread, so that what failed together
// and reached the cap does not come back together; and after, so that a
// jitter reaching above 1 never exceeds the cap.
func Backoff(base, limit time.Duration, failures int, j Jitter, rnd func() float64) time.Duration {
	ceiling := max(limit, base)
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(j.Spread(min(d, ceiling), rnd), ceiling)
}

// ScrubURLError returns the cause of an error of http.Client, without the
// "Get <url>: " that *url.Error puts before it: the URL may carry
// credentials (user:password@, a token in the query, a Slack webhook's
// path). Callers that want the URL in the message put it there themselves,
// redacted. Other errors are returned as they are.
func ScrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
