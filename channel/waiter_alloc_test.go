//go:build !race

// The race detector changes what allocates (and sync.Pool drops items
// at random under it): counts are checked without it.

package channel

import (
	"testing"
	"time"
)

// TestFanoutAndReparkAllocateNothing: a publication that takes every
// waiter of a channel, and the re-polls that park them all again, cost
// no allocation once warm: TakeWaiters' lists come from a pool and the
// dropped tree's nodes are rebuilt from the shared free list (before:
// 16 bytes per waiter for the list, and new nodes for the tree).
func TestFanoutAndReparkAllocateNothing(t *testing.T) {
	now := time.Unix(1000, 0)
	c, err := New("a", DefaultConfig(), time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]*testWaiter, 1000)
	for i := range ws {
		ws[i] = &testWaiter{key: WaitKey{Deadline: int64(i), ID: uint64(i)}}
	}
	park := func() {
		for _, w := range ws {
			if err := c.AddWaiter(w, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := func(Waiter) bool { return true }
	park()
	allocs := testing.AllocsPerRun(20, func() {
		if n := c.TakeWaiters(all); n != len(ws) {
			t.Fatalf("took %d of %d", n, len(ws))
		}
		park()
	})
	if allocs != 0 {
		t.Fatalf("a fan-out and its re-parks allocate %v times, want 0", allocs)
	}
}
