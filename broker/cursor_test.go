package broker

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{},
		SinceMillis(1_700_000_000_000),
		{Pos: channel.Vector{{Origin: 1, TS: 5}}},
		{Default: 9, Pos: channel.Vector{{Origin: 1, TS: 5}, {Origin: ^uint64(0), TS: ^channel.Timestamp(0)}}},
	} {
		s := c.String()
		assert.True(t, IsCursor(s))
		got, err := ParseCursor(s)
		require.NoError(t, err, s)
		assert.Equal(t, c.Default, got.Default)
		assert.Equal(t, len(c.Pos), len(got.Pos))
		assert.Equal(t, s, got.String())
	}
}

func TestParseCursorRejects(t *testing.T) {
	good := Cursor{Pos: channel.Vector{{Origin: 1, TS: 5}, {Origin: 2, TS: 6}}}.String()
	for _, bad := range []string{
		"", "123", "c", "c!!", "c" + "AA", // wrong version
		good[:len(good)-3], // truncated
		good + "AA",        // trailing bytes
		Cursor{Pos: channel.Vector{{Origin: 2, TS: 6}, {Origin: 1, TS: 5}}}.String(), // origins out of order
		Cursor{Pos: channel.Vector{{Origin: 1, TS: 6}, {Origin: 1, TS: 7}}}.String(), // origin twice
		"c" + "AQD_____DwA", // absurd origin count
	} {
		_, err := ParseCursor(bad)
		assert.ErrorIs(t, err, ErrInvalidCursor, "%q", bad)
	}
}

// FuzzParseCursor: no input panics, and whatever parses re-encodes to the
// same string (the encoding is canonical, so cursors compare as strings).
func FuzzParseCursor(f *testing.F) {
	f.Add(Cursor{}.String())
	f.Add(SinceMillis(1_700_000_000_000).String())
	f.Add(Cursor{Default: 3, Pos: channel.Vector{{Origin: 1, TS: 5}, {Origin: 7, TS: 1 << 40}}}.String())
	f.Add("cAQ")
	f.Add("c")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if !c.Pos.Valid() {
			t.Fatalf("parsed an invalid vector from %q", s)
		}
		if got := c.String(); got != s {
			t.Fatalf("%q re-encodes as %q", s, got)
		}
	})
}
