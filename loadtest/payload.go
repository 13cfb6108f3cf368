package loadtest

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Payload is the data a Publisher publishes and subscribers decode:
//
//	{"p":<publisher>,"seq":<n>,"t":<unix ns>,"pad":"xxxx"}
//
// The pad makes the encoded data exactly the configured payload size, so
// runs with different sizes differ in size only.
type Payload struct {
	// Publisher is the index of the publisher that sent it, so several
	// publishers can number their messages independently.
	Publisher int `json:"p"`
	// Seq numbers the publisher's messages from 0.
	Seq int64 `json:"seq"`
	// SentAt is when the publisher sent the request, Unix nanoseconds.
	SentAt int64 `json:"t"`
}

// Bounds on what a payload may carry. Subscribers track receipts in a
// bitset per publisher indexed by sequence number, so a bound keeps a
// stray message from making them allocate without limit; a run that would
// publish more is rejected when configured, not cut short.
const (
	// MaxPublishers is the number of publisher indexes (0 to 999).
	MaxPublishers = 1000
	// MaxMessages is the most messages one publisher may send in a run.
	MaxMessages = 1 << 24
)

// MinPayloadSize is the smallest payload size that holds any payload
// within those bounds with an empty pad; a 19-digit Unix time in
// nanoseconds lasts until the year 2286.
var MinPayloadSize = len(appendPayload(nil, Payload{Publisher: MaxPublishers - 1, Seq: MaxMessages - 1, SentAt: 1e18}, 0))

// appendPayload appends p padded with pad bytes.
func appendPayload(b []byte, p Payload, pad int) []byte {
	b = append(b, `{"p":`...)
	b = strconv.AppendInt(b, int64(p.Publisher), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, p.Seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, p.SentAt, 10)
	b = append(b, `,"pad":"`...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// AppendPayload appends p encoded as exactly size bytes of JSON. It fails
// if p does not fit in size.
func AppendPayload(b []byte, p Payload, size int) ([]byte, error) {
	need := len(appendPayload(nil, p, 0))
	if size < need {
		return b, fmt.Errorf("%w: payload size %d is below the %d bytes this message needs", ErrInvalidConfig, size, need)
	}
	return appendPayload(b, p, size-need), nil
}

// parsePayload decodes a message's data. ok is false for data that is not
// a load-test payload (a message someone else published).
func parsePayload(data []byte) (p Payload, ok bool) {
	var v struct {
		Publisher *int   `json:"p"`
		Seq       *int64 `json:"seq"`
		SentAt    *int64 `json:"t"`
	}
	if json.Unmarshal(data, &v) != nil || v.Publisher == nil || v.Seq == nil || v.SentAt == nil ||
		*v.Publisher < 0 || *v.Publisher >= MaxPublishers || *v.Seq < 0 || *v.Seq >= MaxMessages {
		return p, false
	}
	return Payload{Publisher: *v.Publisher, Seq: *v.Seq, SentAt: *v.SentAt}, true
}
