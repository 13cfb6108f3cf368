package channel

import (
	"encoding/json"
	"strconv"
)

// Message is one publication. A message published to several channels is a
// single Message shared by all of them: one id, one encoding, and readers of
// several channels can recognise it by identity. A Message is immutable once
// built.
type Message struct {
	// Origin identifies the node and boot that published the message.
	Origin uint64
	// Seq numbers the origin's publications 1, 2, 3, ... without gaps, so
	// a replica can tell whether it holds a contiguous prefix.
	Seq uint64
	// TS is the message's hybrid logical clock time; strictly increasing
	// per origin, so within an origin TS order is Seq order.
	TS Timestamp
	// ID is the message's unique id, derived from Origin and Seq.
	ID string
	// Channels lists every channel the message was published to.
	Channels []string
	// Data is the payload as JSON. It aliases JSON, so it costs no memory.
	Data json.RawMessage
	// JSON is the message encoded once, as sent to subscribers:
	// {"id":..,"time":..,"channels":[..],"data":..}.
	JSON []byte
}

// MessageID formats the id of an origin's seq-th message.
func MessageID(origin, seq uint64) string {
	b := make([]byte, 0, 16+1+20)
	b = appendHex16(b, origin)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	return string(b)
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}

// NewMessage builds a Message and encodes it. data must be valid JSON; the
// caller validates outside input before it gets here. channels is kept, not
// copied.
func NewMessage(origin, seq uint64, ts Timestamp, channels []string, data json.RawMessage) *Message {
	id := MessageID(origin, seq)
	b := make([]byte, 0, 64+len(id)+len(data)+16*len(channels))
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","time":`...)
	b = strconv.AppendInt(b, ts.Millis(), 10)
	b = append(b, `,"channels":[`...)
	for i, c := range channels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c)
	}
	b = append(b, `],"data":`...)
	start := len(b)
	b = append(b, data...)
	end := len(b)
	b = append(b, '}')
	return &Message{
		Origin:   origin,
		Seq:      seq,
		TS:       ts,
		ID:       id,
		Channels: channels,
		Data:     json.RawMessage(b[start:end:end]),
		JSON:     b,
	}
}

// Time returns the message time in Unix milliseconds, as clients see it.
func (m *Message) Time() int64 { return m.TS.Millis() }

// Before orders messages by time, then origin: the order of the cache and of
// every response.
func (m *Message) Before(o *Message) bool {
	if m.TS != o.TS {
		return m.TS < o.TS
	}
	return m.Origin < o.Origin
}

// Same reports whether m and o are the same publication.
func (m *Message) Same(o *Message) bool { return m.TS == o.TS && m.Origin == o.Origin }

// appendJSONString appends s as a JSON string. Channel names are plain
// ASCII in practice, which needs no escaping; anything else goes through
// encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
