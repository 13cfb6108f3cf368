//go:build linux

package evhttp

import (
	"sync"
	"sync/atomic"
)

// registry maps epoll keys to connections. Keys are slot index + 1 in the
// low 32 bits and a generation in the high 32, so a late event for a
// closed connection never reaches the one that took its slot.
//
// get runs on the poller for every event, so it takes no lock: the table
// and each slot's connection and generation are atomics. add, remove and
// growing the table hold mu. A slot is reused by storing its generation
// first and its connection second, and get loads them the other way
// round, so a get that sees the new connection sees its generation too: a
// stale key never yields the slot's new tenant. (A get may still yield a
// connection closed meanwhile; its state, csClosed, says so.)
type registry[A any] struct {
	tab atomic.Pointer[regTable[A]]

	mu   sync.Mutex // guards free, n, and every store into tab
	free []uint32
	n    int
}

// regTable is one size of the slot array; a bigger one replaces it whole.
type regTable[A any] struct {
	slots []regSlot[A]
	used  int // slots handed out so far (under registry.mu)
}

type regSlot[A any] struct {
	gen atomic.Uint32
	c   atomic.Pointer[Conn[A]]
}

func (r *registry[A]) add(c *Conn[A]) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tab.Load()
	var i uint32
	if l := len(r.free); l > 0 {
		i = r.free[l-1]
		r.free = r.free[:l-1]
	} else {
		if t == nil || t.used == len(t.slots) {
			t = r.grow(t)
		}
		i = uint32(t.used)
		t.used++
	}
	s := &t.slots[i]
	gen := s.gen.Load() + 1
	s.gen.Store(gen) // before the connection: see registry
	s.c.Store(c)
	r.n++
	return uint64(gen)<<32 | uint64(i+1)
}

// grow replaces t with a bigger table holding the same slots.
// Caller holds r.mu, so no slot changes while they are copied; a get that
// still reads t meanwhile finds what it held.
func (r *registry[A]) grow(t *regTable[A]) *regTable[A] {
	size, used := 256, 0
	if t != nil {
		// append's growth: double while small, then a quarter more,
		// so a big table's headroom stays a few bytes a connection.
		size, used = 2*len(t.slots), t.used
		if size > 8192 {
			size = len(t.slots) + len(t.slots)/4
		}
	}
	g := &regTable[A]{slots: make([]regSlot[A], size), used: used}
	for i := range used {
		g.slots[i].gen.Store(t.slots[i].gen.Load())
		g.slots[i].c.Store(t.slots[i].c.Load())
	}
	r.tab.Store(g)
	return g
}

func (r *registry[A]) get(key uint64) *Conn[A] {
	i, gen := uint32(key)-1, uint32(key>>32)
	t := r.tab.Load()
	if t == nil || int(i) >= len(t.slots) {
		return nil
	}
	s := &t.slots[i]
	c := s.c.Load() // before the generation: see registry
	if c == nil || s.gen.Load() != gen {
		return nil
	}
	return c
}

func (r *registry[A]) remove(key uint64) {
	i, gen := uint32(key)-1, uint32(key>>32)
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tab.Load()
	if t == nil || int(i) >= t.used {
		return
	}
	s := &t.slots[i]
	if s.gen.Load() != gen || s.c.Load() == nil {
		return
	}
	s.c.Store(nil)
	r.free = append(r.free, i)
	r.n--
}

func (r *registry[A]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *registry[A]) all() []*Conn[A] {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Conn[A], 0, r.n)
	if t := r.tab.Load(); t != nil {
		for i := range t.used {
			if c := t.slots[i].c.Load(); c != nil {
				out = append(out, c)
			}
		}
	}
	return out
}
