package broker

import (
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// Clock is a hybrid logical clock. Its readings follow wall-clock
// milliseconds, never go backwards even when the wall clock does, and are
// strictly increasing: when the wall clock stands still or steps back, the
// logical counter advances instead (and carries into the millisecond when it
// overflows). Observe folds in timestamps from other nodes so causally later
// messages get later stamps. Clock is safe for concurrent use.
type Clock struct {
	wall func() time.Time
	last atomic.Uint64
}

// NewClock returns a clock reading wall; nil means time.Now.
func NewClock(wall func() time.Time) *Clock {
	if wall == nil {
		wall = time.Now
	}
	return &Clock{wall: wall}
}

// Now returns a timestamp later than every one returned or observed before.
func (c *Clock) Now() channel.Timestamp {
	phys := channel.NewTimestamp(c.wall().UnixMilli(), 0)
	for {
		last := c.last.Load()
		// last+1 bumps the logical counter; the packed layout makes an
		// overflowing counter carry into the millisecond.
		next := max(uint64(phys), last+1)
		if c.last.CompareAndSwap(last, next) {
			return channel.Timestamp(next)
		}
	}
}

// Observe makes later readings exceed ts.
func (c *Clock) Observe(ts channel.Timestamp) {
	for {
		last := c.last.Load()
		if uint64(ts) <= last || c.last.CompareAndSwap(last, uint64(ts)) {
			return
		}
	}
}

// Last returns the latest timestamp issued or observed, without advancing.
func (c *Clock) Last() channel.Timestamp { return channel.Timestamp(c.last.Load()) }
