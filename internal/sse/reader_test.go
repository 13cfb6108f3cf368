package sse

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReaderFollowsTheStandard(t *testing.T) {
	r := NewReader(strings.NewReader("retry: 1500\r\n" +
		": hello\n" +
		"id: 1\rdata: a\r\ndata:b\n\n" + // CR, CRLF and LF; no space after the colon
		"id: 2\n\n" + // no data: not dispatched, but the id counts
		"event: closed\ndata: {}\n\n" +
		"data: cut off"))
	ev, err := r.Next()
	require.NoError(t, err)
	assert.Equal(t, Event{ID: "1", Data: "a\nb", Comments: []string{"hello"}}, ev)
	assert.Equal(t, 1500*time.Millisecond, r.Retry())
	ev, err = r.Next()
	require.NoError(t, err)
	assert.Equal(t, Event{Type: "closed", ID: "2", Data: "{}"}, ev)
	_, err = r.Next()
	assert.ErrorIs(t, err, io.EOF, "an event cut off by the end is dropped")
	assert.Equal(t, "2", r.LastID())
}
