package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// ErrMalformed is returned for bytes that are not a valid encoding.
var ErrMalformed = errors.New("cluster: malformed data")

// Message types: the first byte of every gossip message and stream frame.
const (
	msgEvents   byte = 1 // a batch of events
	msgAnnounce byte = 2 // a node's own position
	msgDigest   byte = 3 // every position a node holds (push/pull state)
)

// wireVersion starts a snapshot, so an incompatible peer is refused
// rather than misread.
const wireVersion = 1

// maxWireList bounds any count read from the wire: a hostile or corrupt
// length must not make the decoder allocate gigabytes.
const maxWireList = 1 << 24

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// kindKeyed marks, in an event's kind byte, a publication that carries its
// idempotency key after its data. Events without a key encode exactly as
// before the key existed, so this node reads older nodes' events; an older
// node refuses a keyed one as an unknown kind instead of misreading it
// (upgrade every node before publishers send Idempotency-Key).
const kindKeyed byte = 0x80

// appendEvent encodes one event.
func appendEvent(b []byte, ev broker.Event) []byte {
	kind := byte(ev.Kind)
	keyed := ev.Kind == broker.EventPublish && ev.IdempotencyKey != ""
	if keyed {
		kind |= kindKeyed
	}
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, ev.Origin)
	b = binary.AppendUvarint(b, ev.Seq)
	b = binary.AppendUvarint(b, uint64(ev.TS))
	switch ev.Kind {
	case broker.EventPublish:
		m := ev.Message
		b = binary.AppendUvarint(b, uint64(len(m.Channels)))
		for _, c := range m.Channels {
			b = appendString(b, c)
		}
		b = binary.AppendUvarint(b, uint64(len(m.Data)))
		b = append(b, m.Data...)
		if keyed {
			b = appendString(b, ev.IdempotencyKey)
		}
	case broker.EventRenew:
		b = appendString(b, ev.Channel)
		b = binary.AppendUvarint(b, uint64(ev.TTL))
	case broker.EventClose:
		b = appendString(b, ev.Channel)
	}
	return b
}

// encodeEvents encodes a batch of events as one message.
func encodeEvents(evs []broker.Event) []byte {
	b := make([]byte, 0, 64*len(evs)+8)
	b = append(b, msgEvents)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, ev := range evs {
		b = appendEvent(b, ev)
	}
	return b
}

// reader decodes what the append functions encode, remembering the first
// error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, bounded by what the remaining bytes can hold
// (each element takes at least min bytes).
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && (n > maxWireList || n*uint64(min) > uint64(len(r.b))) {
		r.fail("list longer than the data")
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count(1)
	if r.err != nil {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

// event decodes one event. Publications get a freshly encoded
// channel.Message, validated like a local publication's.
func (r *reader) event() broker.Event {
	kind := r.byte()
	keyed := kind&kindKeyed != 0
	ev := broker.Event{Kind: broker.EventKind(kind &^ kindKeyed)}
	if keyed && ev.Kind != broker.EventPublish {
		r.fail("an idempotency key on an event that is not a publication")
	}
	ev.Origin = r.u64()
	ev.Seq = r.uvarint()
	ev.TS = channel.Timestamp(r.uvarint())
	if r.err == nil && (ev.Origin == 0 || ev.Seq == 0) {
		r.fail("event without origin or sequence number")
	}
	switch ev.Kind {
	case broker.EventPublish:
		n := r.count(1)
		chs := make([]string, 0, n)
		for range n {
			c := r.string()
			if r.err == nil && !broker.ValidChannelName(c) {
				r.fail("invalid channel name")
			}
			chs = append(chs, c)
		}
		data := r.bytes()
		if r.err == nil && (len(chs) == 0 || !json.Valid(data)) {
			r.fail("publication without channels or with invalid JSON data")
		}
		if keyed {
			ev.IdempotencyKey = r.string()
			if r.err == nil && !broker.ValidIdempotencyKey(ev.IdempotencyKey) {
				r.fail("invalid idempotency key")
			}
		}
		if r.err == nil {
			ev.Message = channel.NewMessage(ev.Origin, ev.Seq, ev.TS, chs, data)
		}
	case broker.EventRenew:
		ev.Channel = r.string()
		ttl := r.uvarint()
		if ttl > math.MaxInt64 {
			r.fail("ttl out of range")
		}
		ev.TTL = time.Duration(ttl)
	case broker.EventClose:
		ev.Channel = r.string()
	default:
		r.fail("unknown event kind")
	}
	if r.err == nil && ev.Kind != broker.EventPublish && !broker.ValidChannelName(ev.Channel) {
		r.fail("invalid channel name")
	}
	return ev
}

// decodeEvents decodes a msgEvents message (its type byte included).
func decodeEvents(b []byte) ([]broker.Event, error) {
	r := &reader{b: b}
	if r.byte() != msgEvents {
		r.fail("not an event batch")
	}
	n := r.count(11)
	evs := make([]broker.Event, 0, n)
	for range n {
		evs = append(evs, r.event())
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return evs, nil
}

// position is one origin's position in announcements and digests.
type position struct {
	Origin uint64
	Seq    uint64
}

// encodePositions encodes a node's positions as an announcement (its own
// origin only) or a digest (all it holds), with the sender's name so the
// receiver knows whom to ask for what it lacks.
func encodePositions(kind byte, node string, ps []position) []byte {
	b := make([]byte, 0, 16+len(node)+16*len(ps))
	b = append(b, kind)
	b = appendString(b, node)
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint64(b, p.Origin)
		b = binary.AppendUvarint(b, p.Seq)
	}
	return b
}

// decodePositions decodes an announcement or a digest.
func decodePositions(b []byte) (kind byte, node string, ps []position, err error) {
	r := &reader{b: b}
	kind = r.byte()
	if kind != msgAnnounce && kind != msgDigest {
		r.fail("not a position message")
	}
	node = r.string()
	n := r.count(9)
	for range n {
		ps = append(ps, position{Origin: r.u64(), Seq: r.uvarint()})
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return kind, node, ps, r.err
}

// encodeSnapshot encodes a broker snapshot for a joining node. Each
// message is encoded once, however many channels hold it.
func encodeSnapshot(s *broker.Snapshot) []byte {
	index := map[*channel.Message]uint64{}
	var msgs []*channel.Message
	for _, c := range s.Channels {
		for _, m := range c.Messages {
			if _, ok := index[m]; !ok {
				index[m] = uint64(len(msgs))
				msgs = append(msgs, m)
			}
		}
	}
	b := []byte{wireVersion}
	b = binary.AppendUvarint(b, uint64(s.Clock))
	b = binary.AppendVarint(b, s.Taken.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(s.Origins)))
	for _, o := range s.Origins {
		b = binary.BigEndian.AppendUint64(b, o.Origin)
		b = binary.AppendUvarint(b, o.Seq)
		b = binary.AppendUvarint(b, uint64(o.TS))
		b = binary.AppendUvarint(b, uint64(o.Lost))
	}
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for _, m := range msgs {
		b = appendEvent(b, broker.Event{Kind: broker.EventPublish, Origin: m.Origin, Seq: m.Seq, TS: m.TS, Message: m})
	}
	b = binary.AppendUvarint(b, uint64(len(s.Channels)))
	for _, c := range s.Channels {
		b = appendString(b, c.Name)
		b = binary.AppendUvarint(b, uint64(c.TTL))
		b = binary.AppendVarint(b, c.LastActive.UnixNano())
		b = binary.AppendUvarint(b, uint64(len(c.Messages)))
		for _, m := range c.Messages {
			b = binary.AppendUvarint(b, index[m])
		}
	}
	return b
}

// decodeSnapshot decodes what encodeSnapshot encodes.
func decodeSnapshot(b []byte) (*broker.Snapshot, error) {
	r := &reader{b: b}
	if v := r.byte(); r.err == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: snapshot version %d, this node reads %d", ErrMalformed, v, wireVersion)
	}
	s := &broker.Snapshot{Clock: channel.Timestamp(r.uvarint()), Taken: time.Unix(0, r.varint())}
	for range r.count(11) {
		s.Origins = append(s.Origins, broker.SnapshotOrigin{
			Origin: r.u64(), Seq: r.uvarint(), TS: channel.Timestamp(r.uvarint()), Lost: channel.Timestamp(r.uvarint()),
		})
	}
	n := r.count(11)
	msgs := make([]*channel.Message, 0, n)
	for range n {
		ev := r.event()
		if r.err == nil && ev.Kind != broker.EventPublish {
			r.fail("snapshot message is not a publication")
		}
		msgs = append(msgs, ev.Message)
	}
	for range r.count(4) {
		c := broker.SnapshotChannel{Name: r.string()}
		ttl := r.uvarint()
		c.TTL = time.Duration(min(ttl, math.MaxInt64))
		c.LastActive = time.Unix(0, r.varint())
		for range r.count(1) {
			i := r.uvarint()
			if r.err == nil && i >= uint64(len(msgs)) {
				r.fail("message index out of range")
			}
			if r.err == nil {
				c.Messages = append(c.Messages, msgs[i])
			}
		}
		s.Channels = append(s.Channels, c)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}
