package channel

import "math"

// LogicalBits is the number of low bits of a Timestamp that hold the logical
// counter. 20 bits allow a million messages per millisecond per origin and
// leave 44 bits of milliseconds, enough until the year 2527.
const LogicalBits = 20

// MaxLogical is the largest logical counter a Timestamp can carry.
const MaxLogical = 1<<LogicalBits - 1

// MaxMillis is the largest millisecond value a Timestamp can carry.
const MaxMillis = math.MaxUint64 >> LogicalBits

// Timestamp is a hybrid logical clock reading: Unix milliseconds in the high
// 44 bits and a logical counter in the low 20. Ordering Timestamps as
// integers orders them by time, then by counter. Only the millisecond part
// is shown to clients, as an integer a JavaScript number holds exactly.
type Timestamp uint64

// NewTimestamp packs milliseconds and a logical counter. Values out of range
// are clamped, so the result is always a valid Timestamp.
func NewTimestamp(ms int64, logical uint32) Timestamp {
	if ms < 0 {
		ms = 0
	}
	if uint64(ms) > MaxMillis {
		ms = int64(MaxMillis)
	}
	if logical > MaxLogical {
		logical = MaxLogical
	}
	return Timestamp(uint64(ms)<<LogicalBits | uint64(logical))
}

// EndOfMillis returns the largest Timestamp within millisecond ms: every
// message stamped in that millisecond is at or before it. It turns a
// client's "since=<ms>" into a position.
func EndOfMillis(ms int64) Timestamp { return NewTimestamp(ms, MaxLogical) }

// Millis returns the Unix milliseconds part.
func (t Timestamp) Millis() int64 { return int64(uint64(t) >> LogicalBits) }

// Logical returns the logical counter part.
func (t Timestamp) Logical() uint32 { return uint32(uint64(t) & MaxLogical) }
