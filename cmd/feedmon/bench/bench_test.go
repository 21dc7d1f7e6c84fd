package bench

import (
	"context"
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
