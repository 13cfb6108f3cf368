package store

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// recordVersion starts every record, so a later format can tell old
// records apart.
const recordVersion = 1

// encodeEvent appends ev's record to b: version, kind, commit order,
// origin, seq, time, then the kind's fields (a publication's channels,
// payload and, if it has one, idempotency key; a renewal's channel and
// ttl; a close's channel). Integers are
// varints except the origin and time, which are random-looking or large.
func encodeEvent(b []byte, ev broker.Event, order uint64) []byte {
	b = append(b, recordVersion, byte(ev.Kind))
	b = binary.AppendUvarint(b, order)
	b = binary.BigEndian.AppendUint64(b, ev.Origin)
	b = binary.AppendUvarint(b, ev.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.TS))
	switch ev.Kind {
	case broker.EventPublish:
		m := ev.Message
		b = binary.AppendUvarint(b, uint64(len(m.Channels)))
		for _, c := range m.Channels {
			b = appendBytes(b, []byte(c))
		}
		b = appendBytes(b, m.Data)
		if ev.IdempotencyKey != "" {
			// Last and optional, so records written without it still
			// read: a replayed publication keeps answering its retries.
			b = appendBytes(b, []byte(ev.IdempotencyKey))
		}
	case broker.EventRenew:
		b = appendBytes(b, []byte(ev.Channel))
		b = binary.AppendUvarint(b, uint64(ev.TTL))
	default:
		b = appendBytes(b, []byte(ev.Channel))
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errShort = errors.New("record too short")

// decoder reads a record; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeEvent decodes a record written by encodeEvent, returning the
// event and its commit order. The event does not alias rec (bbolt's
// values are valid only inside their transaction).
func decodeEvent(rec []byte) (broker.Event, uint64, error) {
	if len(rec) < 2 || rec[0] != recordVersion {
		return broker.Event{}, 0, errors.New("unknown record version")
	}
	d := decoder{b: rec[2:]}
	ev := broker.Event{Kind: broker.EventKind(rec[1])}
	order := d.uvarint()
	ev.Origin = d.u64()
	ev.Seq = d.uvarint()
	ev.TS = channel.Timestamp(d.u64())
	switch ev.Kind {
	case broker.EventPublish:
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return broker.Event{}, 0, errShort
		}
		chans := make([]string, 0, n)
		for range n {
			chans = append(chans, string(d.bytes()))
		}
		data := d.bytes()
		if d.err == nil && len(d.b) > 0 {
			ev.IdempotencyKey = string(d.bytes())
		}
		if d.err != nil {
			return broker.Event{}, 0, d.err
		}
		// NewMessage copies data into the message's own encoding.
		ev.Message = channel.NewMessage(ev.Origin, ev.Seq, ev.TS, chans, data)
	case broker.EventRenew:
		ev.Channel = string(d.bytes())
		ev.TTL = time.Duration(d.uvarint())
	default:
		ev.Channel = string(d.bytes())
	}
	if d.err != nil {
		return broker.Event{}, 0, d.err
	}
	return ev, order, nil
}
