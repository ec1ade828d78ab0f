//go:build linux

package fastlane

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type recordExpiry struct {
	id  int
	got *[]int
}

func (r recordExpiry) expire() { *r.got = append(*r.got, r.id) }

// TestTheLoopsTimersFireInDeadlineOrder arms, re-arms and disarms timers at random and checks that fire
// expires exactly the armed ones that are due, earliest first, that next is never after the earliest
// left, and that the rest fire in order later.
func TestTheLoopsTimersFireInDeadlineOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1000, 0)
	for round := range 200 {
		var h timerHeap
		var got []int
		ts := make([]timer, 40)
		at := map[int]time.Time{}
		for i := range ts {
			ts[i].owner = recordExpiry{id: i, got: &got}
		}
		for range 200 {
			i := rng.IntN(len(ts))
			if rng.IntN(8) == 0 {
				h.drop(&ts[i]) // its owner leaves the loop
				delete(at, i)
				continue
			}
			if rng.IntN(4) == 0 {
				h.set(&ts[i], time.Time{}) // disarm
				delete(at, i)
				continue
			}
			d := base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			h.set(&ts[i], d)
			at[i] = d
		}
		now := base.Add(500 * time.Millisecond)
		var want []int
		for i, d := range at {
			if !d.After(now) {
				want = append(want, i)
			}
		}
		slices.SortFunc(want, func(a, b int) int { return at[a].Compare(at[b]) })
		h.fire(now)
		if len(got) != len(want) {
			t.Fatalf("round %d: fired %v, want %v", round, got, want)
		}
		for k := range got {
			if !at[got[k]].Equal(at[want[k]]) {
				t.Fatalf("round %d: fired %v, want the order %v", round, got, want)
			}
		}
		var earliest time.Time
		for _, d := range at {
			if d.After(now) && (earliest.IsZero() || d.Before(earliest)) {
				earliest = d
			}
		}
		// The heap is lazy: next may be an entry whose deadline moved later or went (a wait that ends
		// early), never after the earliest deadline (a wait that ends late).
		if next := h.next(); !earliest.IsZero() && (next.IsZero() || next.After(earliest)) {
			t.Fatalf("round %d: next %v, after the earliest deadline %v", round, next, earliest)
		}
		// What is left fires in order too, and nothing disarmed fires at all.
		got, want = got[:0], want[:0]
		for i, d := range at {
			if d.After(now) {
				want = append(want, i)
			}
		}
		slices.SortFunc(want, func(a, b int) int { return at[a].Compare(at[b]) })
		h.fire(base.Add(time.Hour))
		if len(got) != len(want) || len(h) != 0 {
			t.Fatalf("round %d: then fired %v, want %v (%d entries left)", round, got, want, len(h))
		}
		for k := range got {
			if !at[got[k]].Equal(at[want[k]]) {
				t.Fatalf("round %d: then fired %v, want the order %v", round, got, want)
			}
		}
	}
}
