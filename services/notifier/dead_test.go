package notifier

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/bus/bustest"
	"github.com/feedmon/feedmon/internal/config"
)

func TestDeadLetterListAndReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		replayWith int // the webhook's answer during the replay
		dropSub    bool
		wantErr    bool
		wantOut    string
		wantDead   int // dead letters left
		wantOK     int // accepted deliveries in the end
	}{
		{name: "receiver fixed", replayWith: http.StatusOK, wantOut: "1 replayed, 0 failed again, 0 kept", wantDead: 0, wantOK: 1},
		{name: "still down", replayWith: http.StatusServiceUnavailable, wantErr: true, wantOut: "0 replayed, 0 failed again, 1 kept", wantDead: 1},
		{name: "still rejected", replayWith: http.StatusBadRequest, wantOut: "0 replayed, 1 failed again, 0 kept", wantDead: 1},
		{name: "subscriber gone", replayWith: http.StatusOK, dropSub: true, wantErr: true, wantOut: "0 replayed, 0 failed again, 1 kept", wantDead: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := bustest.New(t)
			var status atomic.Int32
			status.Store(http.StatusBadRequest)
			sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int { return int(status.Load()) })
			cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
			r := startService(t, b, cfg)
			publishItem(t, b, testItem("dlq-1", "trade"))
			waitHandled(t, b)
			bustest.Eventually(t, waitLong, func() bool { return len(deadLetters(t, b)) == 1 }, "not dead-lettered")
			r.stop()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var list bytes.Buffer
			if err := ListDead(ctx, b, &list); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(list.String(), "subscriber=desk receiver=webhook attempts=1 items=dlq-1:") ||
				!strings.Contains(list.String(), "400") || !strings.HasSuffix(list.String(), "1 dead-lettered deliveries\n") {
				t.Errorf("list:\n%s", list.String())
			}

			status.Store(int32(tc.replayWith))
			rcfg := cfg
			if tc.dropSub {
				rcfg = testConfig(config.Subscriber{Name: "other", Topics: []string{"trade"}, Stdout: &config.Stdout{}})
			}
			var out bytes.Buffer
			err := ReplayDead(ctx, b, *rcfg, &out, WithBackoff(10*time.Millisecond, 10*time.Millisecond))
			if (err != nil) != tc.wantErr {
				t.Errorf("ReplayDead = %v, want error %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("replay output:\n%s\nwant %q", out.String(), tc.wantOut)
			}
			if got := len(deadLetters(t, b)); got != tc.wantDead {
				t.Errorf("dead letters left = %d, want %d", got, tc.wantDead)
			}
			if sk.accepted() != tc.wantOK {
				t.Errorf("accepted = %d, want %d", sk.accepted(), tc.wantOK)
			}
			reqs := sk.requests()
			if len(reqs) > 1 && reqs[len(reqs)-1].header.Get("Idempotency-Key") != reqs[0].header.Get("Idempotency-Key") {
				t.Error("replay used another Idempotency-Key")
			}

			// A second replay changes nothing that is settled.
			out.Reset()
			_ = ReplayDead(ctx, b, *rcfg, &out)
			if tc.wantDead == 0 && !strings.Contains(out.String(), "0 replayed, 0 failed again, 0 kept") {
				t.Errorf("second replay:\n%s", out.String())
			}
			if sk.accepted() != tc.wantOK {
				t.Errorf("after a second replay accepted = %d, want %d", sk.accepted(), tc.wantOK)
			}
		})
	}
}

func TestReplayDigestDeadLetter(t *testing.T) {
	t.Parallel()
	b := bustest.New(t)
	var status atomic.Int32
	status.Store(http.StatusForbidden)
	sk := newSink(t, func(int, *http.Request, http.ResponseWriter) int { return int(status.Load()) })
	clock := newFakeClock(time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC))
	cfg := testConfig(config.Subscriber{Name: "desk", Topics: []string{"trade"}, Webhook: &config.Webhook{URL: sk.srv.URL}})
	r := startService(t, b, cfg, WithClock(clock.Now), WithSchedule("desk", Schedule{Digest: time.Hour}), WithFlushInterval(10*time.Millisecond))
	publishItem(t, b, testItem("d1", "trade"))
	publishItem(t, b, testItem("d2", "trade"))
	waitHandled(t, b)
	clock.Set(time.Date(2026, 11, 27, 11, 0, 1, 0, time.UTC))
	bustest.Eventually(t, waitLong, func() bool { return len(deadLetters(t, b)) == 1 }, "digest not dead-lettered")
	r.stop()
	if got := bodyIDs(t, sk.requests()[0].body); got != "d1,d2" {
		t.Fatalf("digest = %s", got)
	}

	status.Store(http.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := ReplayDead(ctx, b, *cfg, &out); err != nil {
		t.Fatalf("ReplayDead: %v\n%s", err, out.String())
	}
	reqs := sk.requests()
	if len(reqs) != 2 || sk.accepted() != 1 || string(reqs[1].body) != string(reqs[0].body) ||
		reqs[1].header.Get("Idempotency-Key") != reqs[0].header.Get("Idempotency-Key") {
		t.Errorf("replayed digest differs or missing: %d requests", len(reqs))
	}
	if n := len(deadLetters(t, b)); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
}
