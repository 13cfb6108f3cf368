// Package sse reads text/event-stream bodies (server-sent events) by the
// HTML standard's parsing rules, as a browser's EventSource does: fields,
// comments, any of CRLF, LF or CR as a line end, an event dispatched at a
// blank line, and the last event id carried over events that set none. It
// is for clients the project writes itself: tests, the load tester.
//
// A Reader is not safe for concurrent use.
package sse

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one dispatched event.
type Event struct {
	// Type is the event field; "" for the default, "message".
	Type string
	// ID is the last event id after this event: its own id field, or the
	// one an earlier event (or an event without data) set.
	ID string
	// Data is the data fields joined with "\n".
	Data string
	// Comments are the comment lines read since the previous event,
	// without the ':' and one space after it.
	Comments []string
}

// Reader reads events from a stream.
type Reader struct {
	r        *bufio.Reader
	lastID   string
	comments []string
	retry    time.Duration
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// LastID is the last event id seen, as a browser would send it in
// Last-Event-ID when it reconnects.
func (p *Reader) LastID() string { return p.lastID }

// Retry is the last retry field's value; 0 if none came.
func (p *Reader) Retry() time.Duration { return p.retry }

// Comments returns the comment lines read since the last event.
func (p *Reader) Comments() []string { return p.comments }

// line reads one line, whatever its ending.
func (p *Reader) line() (string, error) {
	var sb strings.Builder
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return sb.String(), err
		}
		switch c {
		case '\n':
			return sb.String(), nil
		case '\r':
			if n, err := p.r.Peek(1); err == nil && n[0] == '\n' {
				_, _ = p.r.ReadByte()
			}
			return sb.String(), nil
		}
		sb.WriteByte(c)
	}
}

// Next returns the next dispatched event. Events without data are not
// dispatched, but their id still counts. At the end of the stream it
// returns io.EOF (or the read error); an event cut off by it is dropped,
// as a browser drops it.
func (p *Reader) Next() (Event, error) {
	var ev Event
	var data []string
	hasData := false
	for {
		line, err := p.line()
		if err != nil {
			return Event{}, err
		}
		if line == "" {
			if !hasData {
				ev, data = Event{}, nil
				continue
			}
			ev.ID = p.lastID
			ev.Data = strings.Join(data, "\n")
			ev.Comments, p.comments = p.comments, nil
			return ev, nil
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			p.comments = append(p.comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Type = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.lastID = value
			}
		case "data":
			data = append(data, value)
			hasData = true
		case "retry":
			if ms, err := strconv.ParseUint(value, 10, 32); err == nil {
				p.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}
