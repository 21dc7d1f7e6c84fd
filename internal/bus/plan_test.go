package bus

import (
	"testing"
	"time"

	"github.com/feedmon/feedmon/internal/config"
	"github.com/feedmon/feedmon/internal/event"
)

func sum(caps map[string]int64) int64 {
	var n int64
	for _, c := range caps {
		n += c
	}
	return n
}

func TestMakePlan(t *testing.T) {
	t.Parallel()
	def := config.DefaultRetention()
	longItems := config.DefaultRetention()
	longItems.Items.MaxAge = config.Duration(4 * 168 * time.Hour)
	explicit := config.DefaultRetention()
	explicit.Items.MaxBytes = 500_000_000
	huge := config.DefaultRetention()
	huge.Items.MaxBytes = 50_000_000_000

	tests := []struct {
		name     string
		r        config.Retention
		b        budget
		existing map[string]int64
		check    func(t *testing.T, caps map[string]int64)
	}{
		{"defaults fit 1 GB", def, budget{bytes: 1_000_000_000}, nil, func(t *testing.T, caps map[string]int64) {
			if s := sum(caps); s > 900_000_000 {
				t.Errorf("sum %d > 90%% of 1 GB", s)
			}
			if caps[event.StreamItems] <= caps[event.StreamClassified] || caps[event.StreamDead] >= caps[event.StreamAlerts] {
				t.Errorf("caps out of proportion: %v", caps)
			}
		}},
		{"a longer max_age gets more room", longItems, budget{bytes: 1_000_000_000}, nil, func(t *testing.T, caps map[string]int64) {
			if caps[event.StreamItems] < 2*caps[event.StreamClassified] {
				t.Errorf("items kept 4 weeks gets %d, classified (1 week) %d", caps[event.StreamItems], caps[event.StreamClassified])
			}
			if s := sum(caps); s > 900_000_000 {
				t.Errorf("sum %d > 90%% of 1 GB", s)
			}
		}},
		{"a set size comes out of a known budget", explicit, budget{bytes: 1 << 30, known: true}, nil, func(t *testing.T, caps map[string]int64) {
			if caps[event.StreamItems] != 500_000_000 {
				t.Errorf("items = %d, want the 500MB set", caps[event.StreamItems])
			}
			if s := sum(caps); s > 9*(1<<30)/10 {
				t.Errorf("sum %d > 90%% of 1 GiB", s)
			}
		}},
		{"a set size beyond an assumed budget leaves the others as they are", huge, budget{bytes: 1_000_000_000}, nil, func(t *testing.T, caps map[string]int64) {
			if caps[event.StreamItems] != 50_000_000_000 {
				t.Errorf("items = %d", caps[event.StreamItems])
			}
			if caps[event.StreamClassified] < 100_000_000 {
				t.Errorf("classified shrank to %d", caps[event.StreamClassified])
			}
			def := makePlan(config.DefaultRetention(), budget{bytes: 1_000_000_000}, nil)
			for n, c := range caps {
				if n != event.StreamItems && c != def.caps[n] {
					t.Errorf("%s = %d, want the %d it has without a size set", n, c, def.caps[n])
				}
			}
		}},
		{"the account's cap on one stream", def, budget{bytes: 10 << 30, known: true, maxStream: 256 << 20}, nil, func(t *testing.T, caps map[string]int64) {
			for n, c := range caps {
				if c > 256<<20 {
					t.Errorf("%s = %d beyond the account's 256MiB a stream", n, c)
				}
			}
		}},
		{"an assumed budget never shrinks a granted cap", def, budget{bytes: 1_000_000_000}, map[string]int64{event.StreamItems: 4 << 30}, func(t *testing.T, caps map[string]int64) {
			if caps[event.StreamItems] != 4<<30 {
				t.Errorf("items = %d, want the 4GiB it has", caps[event.StreamItems])
			}
		}},
		{"a known budget does", def, budget{bytes: 1 << 30, known: true}, map[string]int64{event.StreamItems: 4 << 30}, func(t *testing.T, caps map[string]int64) {
			if caps[event.StreamItems] >= 1<<30 {
				t.Errorf("items = %d, beyond the account's 1GiB", caps[event.StreamItems])
			}
		}},
		{"no room left still asks for something", explicit, budget{bytes: 100_000_000, known: true}, nil, func(t *testing.T, caps map[string]int64) {
			for n, c := range caps {
				if c < minCap {
					t.Errorf("%s = %d", n, c)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := makePlan(tt.r, tt.b, tt.existing)
			if len(p.caps) != len(weights) {
				t.Fatalf("planned %d streams, want %d", len(p.caps), len(weights))
			}
			tt.check(t, p.caps)
		})
	}
}
