package api

import (
	"bytes"
	"strconv"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// sseStream is one open GET /v1/events stream, apart from how its bytes
// reach the socket: it says what to ask the broker next (request), turns
// each answer into server-sent-event bytes and says whether the stream goes
// on (answer). The goroutine and thread models drive it from a handler
// (events.go); an event loop can drive the same type between socket events,
// holding nothing else while the stream is idle.
//
// The stream's position is its cursor, the same as a long poll's: every
// message event's id is the cursor just after that message, so a client
// that reconnects with Last-Event-ID (as EventSource does) or since=<id>
// resumes exactly there, on any node, nothing repeated, nothing skipped.
//
// An sseStream is not safe for concurrent use: one driver at a time.
//
// The event model keeps one per idle stream, so it holds only what differs
// between streams: the settings shared by all (SSEConfig) are passed in.
type sseStream struct {
	channels []string
	cursor   broker.Cursor
	endAt    int64 // Unix ns: when the lifetime ends
}

// sseNext is what the driver does after writing an answer's bytes.
type sseNext uint8

const (
	// sseContinue: subscribe again with request.
	sseContinue sseNext = iota
	// sseEnd: end the stream (the client reconnects and resumes).
	sseEnd
)

// Why a stream ended, for the pushup_sse_ended_total metric.
const (
	sseEndLifetime = "lifetime" // MaxLifetime reached
	sseEndClosed   = "closed"   // every channel closed (or vanished)
	sseEndShutdown = "shutdown" // the node is shutting down
	sseEndClient   = "client"   // the client went away
	sseEndSlow     = "slow"     // the socket stayed full past the write timeout
	sseEndError    = "error"    // anything else; logged
)

// newSSEStream starts a stream on channels from cursor at now. jitter, in
// [0, 1), picks where in the last lifetimeJitter of cfg.MaxLifetime the
// stream ends.
func newSSEStream(cfg SSEConfig, channels []string, cursor broker.Cursor, now time.Time, jitter float64) sseStream {
	life := cfg.MaxLifetime - time.Duration(jitter*lifetimeJitter*float64(cfg.MaxLifetime))
	return sseStream{
		channels: channels,
		cursor:   cursor,
		endAt:    now.Add(life).UnixNano(),
	}
}

// open appends the stream's first bytes to b: the reconnection delay, and a
// "cursor" event whose id is the starting position. EventSource ignores
// event types nobody listens to, but it keeps the id: a stream that ends
// before its first message still resumes from where it began, not from
// "now" again (which would skip what was published in between).
func (st *sseStream) open(b []byte, retry time.Duration) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, retry.Milliseconds(), 10)
	b = append(b, '\n')
	return appendCursorEvent(b, "cursor", st.cursor.String())
}

// request is the next broker request: wait for the stream's channels after
// its cursor until the next heartbeat is due or the lifetime ends. ok is
// false once the lifetime is over.
func (st *sseStream) request(now time.Time, heartbeat time.Duration) (req broker.SubscribeRequest, ok bool) {
	left := time.Duration(st.endAt - now.UnixNano())
	if left <= 0 {
		return req, false
	}
	return broker.SubscribeRequest{
		Channels: st.channels,
		Cursor:   st.cursor,
		Timeout:  min(heartbeat, left),
	}, true
}

// answer appends the events of a broker answer to b and advances the
// cursor. why says why the stream ends when next is sseEnd. heartbeat is
// the one request was given.
func (st *sseStream) answer(b []byte, res broker.Result, now time.Time, heartbeat time.Duration) (out []byte, next sseNext, why string) {
	switch res.Reason {
	case broker.ReasonShutdown:
		// The client reconnects through the load balancer, to another
		// node, from its last id. A draining node's jittered hint
		// becomes the browser's reconnection delay, so its streams do
		// not all land on the other nodes at once.
		if res.RetryAfter > 0 {
			b = append(b, "retry: "...)
			b = strconv.AppendInt(b, max(res.RetryAfter.Milliseconds(), 1), 10)
			b = append(b, "\n\n"...)
		}
		return b, sseEnd, sseEndShutdown
	case broker.ReasonClosed:
		st.cursor = res.Cursor
		return st.closed(b, "every channel of this stream was closed"), sseEnd, sseEndClosed
	}
	if res.Truncated {
		// No id: the position before the gap stays the resume point
		// until a message moves it.
		b = append(b, "event: truncated\ndata: {\"truncated\":true}\n\n"...)
	}
	timedOut := len(res.Messages) == 0 && !res.Truncated
	if timedOut && st.endAt-now.UnixNano() < int64(heartbeat) {
		// Less than a heartbeat of life left: end now. The broker cuts
		// each wait short by up to its TimeoutJitter, so waiting out the
		// rest would cut it into ever shorter waits, each with a
		// heartbeat. At most a heartbeat early, on a lifetime that is
		// random anyway.
		return b, sseEnd, sseEndLifetime
	}
	if len(res.Messages) > 0 {
		b = st.messages(b, res)
	} else if !res.Truncated {
		b = appendComment(b, "hb") // the wait timed out: a heartbeat
	} else if res.Cursor.String() != st.cursor.String() {
		b = appendCursorEvent(b, "cursor", res.Cursor.String())
	}
	st.cursor = res.Cursor
	if now.UnixNano() >= st.endAt {
		return b, sseEnd, sseEndLifetime
	}
	return b, sseContinue, ""
}

// messages appends one event per message of res, each with the cursor just
// after it as its id. The last one's id is the answer's cursor, which may
// be past the message: nothing the stream wants lies between them.
func (st *sseStream) messages(b []byte, res broker.Result) []byte {
	last := len(res.Messages) - 1
	if last == 0 && res.Share != nil && !res.Truncated {
		// The usual fan-out: one publication answers many streams with
		// the same bytes; encode them once.
		return append(b, res.Share.Memo("sse", func() []byte {
			return appendMessageEvent(nil, res.Cursor.String(), res.Messages[0].JSON)
		})...)
	}
	cur := st.cursor
	for i, m := range res.Messages {
		id := res.Cursor
		if i < last {
			cur = cur.Past(res.Messages[i : i+1])
			id = cur
		}
		b = appendMessageEvent(b, id.String(), m.JSON)
	}
	return b
}

// closed appends the "closed" event: the stream's channels are gone. Its
// data is the body a long poll gets with 410, cursor included.
func (st *sseStream) closed(b []byte, msg string) []byte {
	data := append([]byte(`{"error":"channel_closed","message":`), strconv.Quote(msg)...)
	data = append(data, `,"cursor":"`...)
	data = append(data, st.cursor.String()...)
	data = append(data, `"}`...)
	return appendEvent(b, "closed", st.cursor.String(), data)
}

// appendCursorEvent appends an event of type name that carries cursor as
// both its id and its data ({"cursor":...}).
func appendCursorEvent(b []byte, name, cursor string) []byte {
	return appendEvent(b, name, cursor, []byte(`{"cursor":"`+cursor+`"}`))
}

// appendMessageEvent appends a message as an unnamed event, which
// EventSource hands to onmessage.
func appendMessageEvent(b []byte, id string, data []byte) []byte {
	return appendEvent(b, "", id, data)
}

// appendEvent appends one event. Empty name or id leave those fields out.
// data may span lines: each becomes a data field, and the client joins them
// with "\n" again (JSON's whitespace may be newlines; its strings cannot
// hold raw ones, so the split is lossless).
func appendEvent(b []byte, name, id string, data []byte) []byte {
	if name != "" {
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, '\n')
	}
	if id != "" {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	return append(appendLines(b, "data: ", data), '\n')
}

// appendComment appends text as comment lines, one per line of text.
// EventSource ignores comments; proxies see a connection in use.
func appendComment(b []byte, text string) []byte {
	return append(appendLines(b, ": ", []byte(text)), '\n')
}

// appendLines appends each line of data, whatever its line ending, as a
// field line that starts with prefix: a line break inside a field would
// end it.
func appendLines(b []byte, prefix string, data []byte) []byte {
	for {
		line, rest, more := cutLine(data)
		b = append(b, prefix...)
		b = append(b, line...)
		b = append(b, '\n')
		if !more {
			return b
		}
		data = rest
	}
}

// cutLine splits b at its first line ending: CRLF, LF or CR, all of which
// end a line in an event stream.
func cutLine(b []byte) (line, rest []byte, found bool) {
	i := bytes.IndexAny(b, "\r\n")
	if i < 0 {
		return b, nil, false
	}
	if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
		return b[:i], b[i+2:], true
	}
	return b[:i], b[i+1:], true
}
