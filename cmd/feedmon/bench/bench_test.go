package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs the whole benchmark on a handful of items: every item
// must arrive and every number must be filled in.
func TestRunSmall(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, 200} {
		res, err := Run(context.Background(), Options{Feeds: 5, Items: 4, Rate: rate, Timeout: 2 * time.Minute, StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 20 || res.Delivered <= 0 || res.Published <= 0 || res.Classified <= 0 {
			t.Fatalf("result %+v", res)
		}
		if res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 || res.CPUSeconds <= 0 || res.PeakRSSMiB <= 0 {
			t.Fatalf("result %+v", res)
		}
		var b strings.Builder
		res.Print(&b)
		if !strings.Contains(b.String(), "delivered") {
			t.Fatalf("print: %q", b.String())
		}
	}
}

// TestRunStages splits fetch → delivery by where each item was stored:
// every delivered item is in each leg, the legs are in order, and they
// add up to no more than the whole.
func TestRunStages(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Options{Feeds: 5, Items: 4, Rate: 200, Stages: true, Timeout: 2 * time.Minute, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fetch→stored", "stored→classified", "classified→delivered"}
	if len(res.Stages) != len(want) {
		t.Fatalf("stages %+v, want %v", res.Stages, want)
	}
	// Each item's three legs add up to its fetch → delivery time, and
	// none is negative: no leg is longer than the longest whole, and the
	// longest whole is no longer than the longest legs together.
	var sumMax time.Duration
	for i, s := range res.Stages {
		if s.Name != want[i] || s.Items != res.Total {
			t.Errorf("stage %d: %+v, want %s over %d items", i, s, want[i], res.Total)
		}
		if s.P50 <= 0 || s.P99 < s.P50 || s.Max < s.P99 || s.Max > res.LatencyMax {
			t.Errorf("stage %s: p50 %s p99 %s max %s; fetch → delivery at most %s", s.Name, s.P50, s.P99, s.Max, res.LatencyMax)
		}
		sumMax += s.Max
	}
	if res.LatencyMax > sumMax {
		t.Errorf("fetch → delivery up to %s, the legs' longest add up to %s", res.LatencyMax, sumMax)
	}
	var b strings.Builder
	res.Print(&b)
	if !strings.Contains(b.String(), "stored→classified") {
		t.Fatalf("print: %q", b.String())
	}
}

// TestSplit: each leg's percentiles come from that leg's times alone, over
// the items whose every moment is known.
func TestSplit(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := map[string]*itemTimes{}
	// Item i: 1+i ms polling, 100+i ms classifying, 1000+i ms delivering.
	for i := range 100 {
		f := t0.Add(ms(10 * i))
		s := f.Add(ms(1 + i))
		c := s.Add(ms(100 + i))
		at[fmt.Sprint(i)] = &itemTimes{fetched: f, stored: s, classified: c, delivered: c.Add(ms(1000 + i))}
	}
	// Not delivered, or never classified: left out.
	at["lost"] = &itemTimes{fetched: t0, stored: t0.Add(ms(5000)), classified: t0.Add(ms(9000))}
	at["stuck"] = &itemTimes{fetched: t0, stored: t0.Add(ms(5000)), delivered: t0.Add(ms(9000))}
	got := split(at)
	want := []Stage{
		{Name: "fetch→stored", P50: ms(51), P99: ms(100), Max: ms(100), Items: 100},
		{Name: "stored→classified", P50: ms(150), P99: ms(199), Max: ms(199), Items: 100},
		{Name: "classified→delivered", P50: ms(1050), P99: ms(1099), Max: ms(1099), Items: 100},
	}
	if !slices.Equal(got, want) {
		t.Errorf("split:\n got %+v\nwant %+v", got, want)
	}
}

// TestRunPush runs the push mode: items reach the sink by WebSub although
// the feeds are polled only every 10 minutes.
func TestRunPush(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Options{Feeds: 3, Items: 4, Rate: 20, Push: true, Interval: 10 * time.Minute, Timeout: 2 * time.Minute, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 12 || res.FreshP50 <= 0 || res.FreshP99 < res.FreshP50 || res.FreshMax > time.Minute {
		t.Fatalf("result %+v", res)
	}
	var b strings.Builder
	res.Print(&b)
	if !strings.Contains(b.String(), "publication→delivery") || !strings.Contains(b.String(), "pushed by a local WebSub hub") {
		t.Fatalf("print: %q", b.String())
	}
}
