package httpx_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/httpx"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	const week = 7 * 24 * time.Hour
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		in     string
		limit  time.Duration
		want   time.Duration
		wantOK bool
	}{
		{"missing", "", time.Hour, 0, false},
		{"blank", "  ", time.Hour, 0, false},
		{"zero seconds", "0", time.Hour, 0, true},
		{"seconds", "5", time.Hour, 5 * time.Second, true},
		{"seconds with spaces", " 120 ", time.Hour, 2 * time.Minute, true},
		{"seconds at the cap", "3600", time.Hour, time.Hour, true},
		{"seconds over the cap", "3601", time.Hour, time.Hour, true},
		{"seconds over a week", "604801", week, week, true},
		{"seconds beyond a Duration", "99999999999999999", week, week, true},
		{"seconds beyond int64", "99999999999999999999", week, 0, false},
		{"negative seconds", "-3", time.Hour, 0, false},
		{"fraction", "1.5", time.Hour, 0, false},
		{"garbage", "soon", time.Hour, 0, false},
		{"date", date(30 * time.Second), time.Hour, 30 * time.Second, true},
		{"date now", date(0), time.Hour, 0, true},
		{"past date", date(-time.Hour), time.Hour, 0, true},
		{"far future date, hour cap", date(48 * time.Hour), time.Hour, time.Hour, true},
		{"far future date, week cap", date(365 * 24 * time.Hour), week, week, true},
		{"RFC 850 date", now.Add(time.Minute).Format(time.RFC850), time.Hour, time.Minute, true},
		{"ANSI C date", now.Add(time.Minute).Format(time.ANSIC), time.Hour, time.Minute, true},
		{"ISO date", now.Add(time.Minute).Format(time.RFC3339), time.Hour, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := httpx.ParseRetryAfter(tc.in, now, tc.limit)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseRetryAfter(%q, %v) = %v, %v; want %v, %v", tc.in, tc.limit, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	none := httpx.Jitter{Low: 1, High: 1}
	pm10 := httpx.Jitter{Low: 0.9, High: 1.1}
	equal := httpx.Jitter{Low: 0.5, High: 1}
	lo := func() float64 { return 0 }
	mid := func() float64 { return 0.5 }
	hi := func() float64 { return 0.999999 }
	tests := []struct {
		name        string
		base, limit time.Duration
		failures    int
		j           httpx.Jitter
		rnd         func() float64
		want        time.Duration
	}{
		{"first failure", time.Minute, time.Hour, 1, none, mid, time.Minute},
		{"zero failures is the first", time.Minute, time.Hour, 0, none, mid, time.Minute},
		{"doubles", time.Minute, time.Hour, 3, none, mid, 4 * time.Minute},
		{"capped", time.Minute, time.Hour, 7, none, mid, time.Hour},
		{"capped long after", time.Minute, time.Hour, 10000, none, mid, time.Hour},
		{"base longer than limit", 2 * time.Hour, time.Hour, 5, none, mid, 2 * time.Hour},
		{"jitter low", 5 * time.Minute, time.Hour, 1, pm10, lo, 270 * time.Second},
		{"jitter mid", 5 * time.Minute, time.Hour, 1, pm10, mid, 5 * time.Minute},
		{"jitter high", 5 * time.Minute, time.Hour, 1, pm10, hi, 330 * time.Second},
		{"jitter high at the cap stays at the cap", time.Minute, time.Hour, 30, pm10, hi, time.Hour},
		// Feeds that failed together and reached the cap are spread, not
		// brought back in lockstep.
		{"jitter low at the cap spreads", time.Minute, time.Hour, 30, pm10, lo, 54 * time.Minute},
		{"equal jitter low", time.Second, 5 * time.Minute, 3, equal, lo, 2 * time.Second},
		{"equal jitter high", time.Second, 5 * time.Minute, 3, equal, hi, 4 * time.Second},
		// 1s doubles past 5m to 512s: the cap, then the jitter.
		{"equal jitter capped first", time.Second, 5 * time.Minute, 10, equal, lo, 150 * time.Second},
	}
	for _, tc := range tests {
		got := httpx.Backoff(tc.base, tc.limit, tc.failures, tc.j, tc.rnd)
		if (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("%s: Backoff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBackoffRange: with the real random source every delay lies in the
// jitter's range of the capped exponential.
func TestBackoffRange(t *testing.T) {
	t.Parallel()
	j := httpx.Jitter{Low: 0.5, High: 1}
	for failures := 1; failures < 20; failures++ {
		d := min(time.Second<<(failures-1), 5*time.Minute)
		for range 100 {
			got := httpx.Backoff(time.Second, 5*time.Minute, failures, j, nil)
			if got < d/2 || got >= d {
				t.Fatalf("failures %d: %v outside [%v, %v)", failures, got, d/2, d)
			}
		}
	}
}

func TestScrubURLError(t *testing.T) {
	t.Parallel()
	cause := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	secret := "https://user:hunter2@example.com/hook?token=hunter2"
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"url error", &url.Error{Op: "Post", URL: secret, Err: cause}, cause},
		{"wrapped url error", fmt.Errorf("send: %w", &url.Error{Op: "Get", URL: secret, Err: cause}), cause},
		{"other error", cause, cause},
		{"nil", nil, nil},
	}
	for _, tc := range tests {
		got := httpx.ScrubURLError(tc.err)
		if got != tc.want {
			t.Errorf("%s: ScrubURLError = %v, want %v", tc.name, got, tc.want)
		}
		if got != nil && strings.Contains(got.Error(), "hunter2") {
			t.Errorf("%s: %v leaks a secret", tc.name, got)
		}
	}
}
