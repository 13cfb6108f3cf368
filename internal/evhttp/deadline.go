//go:build linux

package evhttp

import "time"

// deadlineTick is how often connection deadlines are swept. Idle and
// header timeouts are seconds long and a write stall is dropped within two
// ticks of its timeout, so a tenth of a second is fine-grained enough.
const deadlineTick = 100 * time.Millisecond

// wheelSlots is the number of slots in the deadline wheel: 1024 ticks,
// about 100 s, more than the usual timeouts, so most deadlines are looked
// at once, when due. A longer one sits in its slot and is looked at once
// per turn of the wheel until then.
const wheelSlots = 1024

// wheel is the schedule of connection deadlines (idle, head, write stall):
// a hashed timing wheel of intrusive lists, one slot per deadlineTick, so
// setting or clearing a deadline is a constant-time link or unlink (Nchan
// and PushUp's former btree re-inserted in a tree per request) and a
// sweep looks only at the slots whose tick has passed. Many waiters, one
// clock: no runtime timer per connection.
//
// Guarded by Engine.deadlineMu, as are Conn.wnext and Conn.wprev;
// Conn.deadline is written holding both Conn.mu and deadlineMu, so either
// lock is enough to read it.
type wheel[A any] struct {
	slots [wheelSlots]*Conn[A]
	swept int64 // the last tick (Unix ns / deadlineTick) swept whole
	n     int   // connections linked
}

func tickOf(ns int64) int64 { return ns / int64(deadlineTick) }

func (w *wheel[A]) slot(c *Conn[A]) **Conn[A] {
	return &w.slots[uint64(tickOf(c.deadline))%wheelSlots]
}

func (w *wheel[A]) linked(c *Conn[A]) bool { return c.wprev != nil || *w.slot(c) == c }

// add links c under c.deadline (not 0). A deadline in a tick already swept
// moves to the next one: it is due, and the next sweep finds it.
func (w *wheel[A]) add(c *Conn[A]) {
	if tickOf(c.deadline) <= w.swept {
		c.deadline = (w.swept + 1) * int64(deadlineTick)
	}
	head := w.slot(c)
	c.wprev, c.wnext = nil, *head
	if *head != nil {
		(*head).wprev = c
	}
	*head = c
	w.n++
}

// remove unlinks c if it is linked.
func (w *wheel[A]) remove(c *Conn[A]) {
	if c.deadline == 0 || !w.linked(c) {
		return
	}
	if c.wprev != nil {
		c.wprev.wnext = c.wnext
	} else {
		*w.slot(c) = c.wnext
	}
	if c.wnext != nil {
		c.wnext.wprev = c.wprev
	}
	c.wprev, c.wnext = nil, nil
	w.n--
}

// sweep unlinks the connections whose deadline lies in a tick that ended
// by now and appends them to due. Each tick's slot is looked at once, after
// the tick: a deadline is acted on within two ticks of it.
func (w *wheel[A]) sweep(now int64, due []*Conn[A]) []*Conn[A] {
	last := tickOf(now) - 1
	from := max(w.swept+1, last-wheelSlots+1) // a long pause: every slot once
	for t := from; t <= last; t++ {
		for c := w.slots[uint64(t)%wheelSlots]; c != nil; {
			next := c.wnext
			if tickOf(c.deadline) <= last {
				w.remove(c)
				due = append(due, c)
			}
			c = next
		}
	}
	w.swept = max(w.swept, last)
	return due
}
