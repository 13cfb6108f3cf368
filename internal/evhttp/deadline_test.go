//go:build linux

package evhttp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWheelSweepsWhatIsDue: deadlines are handed out once their tick has
// ended, not before; a removed one never; one past the wheel's span waits
// its turn; one set in a tick already swept goes to the next sweep.
func TestWheelSweepsWhatIsDue(t *testing.T) {
	tick := int64(deadlineTick)
	base := int64(1_000_000) * tick
	var w wheel[int]
	w.swept = tickOf(base) - 1
	conns := map[string]*Conn[int]{}
	at := func(name string, d int64) {
		c := &Conn[int]{deadline: d}
		conns[name] = c
		w.add(c)
	}
	at("soon", base+tick/2)
	at("same-slot", base+tick/3)
	at("later", base+5*tick)
	at("gone", base+2*tick)
	at("next-turn", base+wheelSlots*tick+tick/2) // same slot as soon, one turn on
	w.remove(conns["gone"])
	w.remove(conns["gone"]) // twice is fine
	assert.Equal(t, 4, w.n)

	names := func(due []*Conn[int]) []string {
		var out []string
		for _, c := range due {
			for n, x := range conns {
				if x == c {
					out = append(out, n)
				}
			}
		}
		return out
	}
	assert.Empty(t, w.sweep(base+tick-1, nil), "the tick has not ended")
	assert.ElementsMatch(t, []string{"soon", "same-slot"}, names(w.sweep(base+tick, nil)))
	assert.Empty(t, w.sweep(base+5*tick, nil))
	assert.False(t, w.linked(conns["soon"]))
	assert.True(t, w.linked(conns["next-turn"]))

	at("late", base) // in a tick swept already: due at the next sweep
	assert.ElementsMatch(t, []string{"later", "late"}, names(w.sweep(base+6*tick, nil)))
	assert.Empty(t, w.sweep(base+wheelSlots*tick, nil), "a turn later, not yet")
	// A long pause: every slot looked at once, the rest found.
	assert.ElementsMatch(t, []string{"next-turn"}, names(w.sweep(base+10*wheelSlots*tick, nil)))
	assert.Zero(t, w.n)
}

// TestParkedConnectionHasNoDeadline: a parked request waits for its
// answer with no deadline of the engine's: the idle deadline that bounded
// the wait for the request ends when it arrives, so a request held longer
// than IdleTimeout is neither dropped nor swept every tick.
func TestParkedConnectionHasNoDeadline(t *testing.T) {
	conns := make(chan *Conn[int], 1)
	e, addr := startEngine[int](t, scriptHandler{serve: func(c *Conn[int], h Head) {
		c.Park(neverCancel{})
		conns <- c
	}}, nil)
	cl := dial(t, addr)
	cl.send(get("park"))
	c := <-conns
	require.Eventually(t, func() bool { return e.Stats().Parked == 1 }, 5*time.Second, time.Millisecond)
	c.mu.Lock()
	assert.Zero(t, c.deadline, "parked with a deadline")
	c.mu.Unlock()
	e.deadlineMu.Lock()
	assert.Zero(t, e.deadlines.n, "parked connections in the schedule")
	e.deadlineMu.Unlock()

	c.Deliver(1)
	assert.Equal(t, "1", cl.body())
	require.Eventually(t, locked(c, func(c *Conn[int]) bool { return c.state == csIdle }), 5*time.Second, time.Millisecond)
	e.deadlineMu.Lock()
	assert.Equal(t, 1, e.deadlines.n, "idle again: under the idle deadline")
	e.deadlineMu.Unlock()
}

// TestIdleConnectionIsClosedByTheWheel: a kept-alive connection with no
// next request is closed once IdleTimeout passes (the wheel's sweep), and
// one that is served meanwhile is not.
func TestIdleConnectionIsClosedByTheWheel(t *testing.T) {
	e, addr := startEngine[int](t, scriptHandler{serve: echo}, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	cl := dial(t, addr)
	cl.send(get("one"))
	assert.Equal(t, "one", cl.body())
	_, err := cl.r.ReadByte() // blocks until the server closes
	require.Error(t, err, "closed by the server")
	require.Eventually(t, func() bool { return e.Stats().Connections == 0 }, 5*time.Second, time.Millisecond)
	e.deadlineMu.Lock()
	assert.Zero(t, e.deadlines.n)
	e.deadlineMu.Unlock()
}
