package broker

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/pushuphq/pushup/channel"
)

// Cursor is a subscriber's position: for each origin (node and boot) the
// timestamp of the last of its messages the subscriber has covered, and a
// Default position for origins it does not list. Positions per origin,
// rather than one time, are what make a cursor gap-free when messages from
// several nodes arrive out of time order: a node can hand out a cursor only
// up to what it holds, origin by origin.
//
// The zero Cursor means "every cached message". A Cursor is a value; its
// vector is never modified after it is built, so cursors can share it.
type Cursor struct {
	// Default is the position of origins Pos does not list: their
	// messages at or before it are not wanted.
	Default channel.Timestamp
	// Pos lists origin positions, sorted by origin.
	Pos channel.Vector
}

// SinceMillis returns the cursor for "messages after Unix millisecond ms".
func SinceMillis(ms int64) Cursor {
	if ms <= 0 {
		return Cursor{}
	}
	return Cursor{Default: channel.EndOfMillis(ms)}
}

// cursorPrefix starts every encoded cursor. A letter, so a cursor can never
// be mistaken for the all-digit Unix time also accepted as since.
const cursorPrefix = "c"

// cursorVersion is the first byte of the binary form; bump it when the
// layout changes so old cursors are rejected rather than misread.
const cursorVersion = 1

// maxCursorOrigins bounds a decoded cursor. Real cursors hold one entry per
// node boot still in the caches; 1024 is far beyond that and keeps a hostile
// cursor from costing more than a few kilobytes.
const maxCursorOrigins = 1024

// String encodes the cursor as an opaque URL-safe token.
func (c Cursor) String() string { return string(c.AppendText(nil)) }

// AppendText appends the cursor's String form to b: answers are encoded
// into one buffer without a string per cursor.
func (c Cursor) AppendText(b []byte) []byte {
	var stack [2 + 3*binary.MaxVarintLen64]byte // one origin, the usual case
	raw := stack[:0]
	if len(c.Pos) > 1 {
		raw = make([]byte, 0, 2+binary.MaxVarintLen64*(1+2*len(c.Pos)))
	}
	raw = append(raw, cursorVersion)
	raw = binary.AppendUvarint(raw, uint64(c.Default))
	raw = binary.AppendUvarint(raw, uint64(len(c.Pos)))
	for _, p := range c.Pos {
		raw = binary.BigEndian.AppendUint64(raw, p.Origin)
		raw = binary.AppendUvarint(raw, uint64(p.TS))
	}
	b = append(b, cursorPrefix...)
	return base64.RawURLEncoding.AppendEncode(b, raw)
}

// IsCursor reports whether s looks like an encoded cursor rather than a
// time: it starts with the cursor prefix.
func IsCursor(s string) bool { return strings.HasPrefix(s, cursorPrefix) }

// ParseCursor decodes a cursor produced by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	if !IsCursor(s) {
		return c, fmt.Errorf("%w: missing %q prefix", ErrInvalidCursor, cursorPrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(cursorPrefix):])
	if err != nil {
		return c, fmt.Errorf("%w: not base64url", ErrInvalidCursor)
	}
	if len(b) == 0 || b[0] != cursorVersion {
		return c, fmt.Errorf("%w: unknown version", ErrInvalidCursor)
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	def, ok := next()
	if !ok {
		return c, fmt.Errorf("%w: truncated", ErrInvalidCursor)
	}
	n, ok := next()
	if !ok || n > maxCursorOrigins {
		return c, fmt.Errorf("%w: bad origin count", ErrInvalidCursor)
	}
	c.Default = channel.Timestamp(def)
	if n > 0 {
		c.Pos = make(channel.Vector, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		if len(b) < 8 {
			return Cursor{}, fmt.Errorf("%w: truncated", ErrInvalidCursor)
		}
		origin := binary.BigEndian.Uint64(b)
		b = b[8:]
		ts, ok := next()
		if !ok {
			return Cursor{}, fmt.Errorf("%w: truncated", ErrInvalidCursor)
		}
		c.Pos = append(c.Pos, channel.Pos{Origin: origin, TS: channel.Timestamp(ts)})
	}
	if len(b) != 0 {
		return Cursor{}, fmt.Errorf("%w: trailing bytes", ErrInvalidCursor)
	}
	if !c.Pos.Valid() {
		return Cursor{}, fmt.Errorf("%w: origins out of order", ErrInvalidCursor)
	}
	return c, nil
}

// after returns the position of origin.
func (c Cursor) after(origin uint64) channel.Timestamp {
	if ts, ok := c.Pos.Get(origin); ok {
		return ts
	}
	return c.Default
}

// advanceTo returns the cursor after a complete read at snapshot v: every
// committed message up to v was either returned or not wanted. Origins c
// does not list join at their snapshot position, but never below Default,
// so a "since=T" reader is not handed older messages of them later.
func (c Cursor) advanceTo(v channel.Vector) Cursor {
	if c.Default != 0 {
		raised := make(channel.Vector, len(v))
		for i, p := range v {
			raised[i] = p
			if _, listed := c.Pos.Get(p.Origin); !listed {
				raised[i].TS = max(p.TS, c.Default)
			}
		}
		v = raised
	} else if v.Covers(c.Pos) {
		// The common case: the snapshot is ahead everywhere. Share it.
		return Cursor{Pos: v}
	}
	return Cursor{Default: c.Default, Pos: channel.Max(c.Pos, v)}
}

// advancePast returns the cursor after a partial read (cut by the response
// limit or by until) that returned msgs: each origin moves only to the last
// of its messages returned, since later ones of it may still be due.
func (c Cursor) advancePast(msgs []*channel.Message) Cursor {
	var latest channel.Vector // few origins: a slice beats a map
next:
	for _, m := range msgs {
		for i := range latest {
			if latest[i].Origin == m.Origin {
				latest[i].TS = max(latest[i].TS, m.TS)
				continue next
			}
		}
		latest = append(latest, channel.Pos{Origin: m.Origin, TS: m.TS})
	}
	if len(latest) == 0 {
		return c
	}
	slices.SortFunc(latest, func(a, b channel.Pos) int { return cmp.Compare(a.Origin, b.Origin) })
	return Cursor{Default: c.Default, Pos: channel.Max(c.Pos, latest)}
}
