package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

func sampleEvents() []broker.Event {
	m := channel.NewMessage(0xabc, 7, channel.NewTimestamp(1_700_000_000_000, 3), []string{"a", "tag:c++"}, []byte(`{"x":[1,2]}`))
	return []broker.Event{
		{Kind: broker.EventPublish, Origin: m.Origin, Seq: m.Seq, TS: m.TS, Message: m},
		{Kind: broker.EventRenew, Origin: 0xabc, Seq: 8, TS: m.TS + 1, Channel: "room", TTL: 10 * time.Minute},
		{Kind: broker.EventClose, Origin: 0xabc, Seq: 9, TS: m.TS + 2, Channel: "room"},
	}
}

func TestEventsRoundTrip(t *testing.T) {
	in := sampleEvents()
	out, err := decodeEvents(encodeEvents(in))
	require.NoError(t, err)
	require.Len(t, out, 3)
	assert.Equal(t, in[0].Message.JSON, out[0].Message.JSON, "the same encoding on every node")
	assert.Equal(t, in[0].Message.ID, out[0].Message.ID)
	for i := range in {
		assert.Equal(t, in[i].Kind, out[i].Kind)
		assert.Equal(t, in[i].Seq, out[i].Seq)
		assert.Equal(t, in[i].TS, out[i].TS)
		assert.Equal(t, in[i].Channel, out[i].Channel)
		assert.Equal(t, in[i].TTL, out[i].TTL)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encodeEvents(sampleEvents())
	for name, b := range map[string][]byte{
		"empty":          {},
		"wrong type":     append([]byte{msgAnnounce}, good[1:]...),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(good, 0),
		"huge count":     {msgEvents, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad data": encodeEvents([]broker.Event{{Kind: broker.EventPublish, Origin: 1, Seq: 1,
			Message: &channel.Message{Channels: []string{"a"}, Data: []byte("{not json")}}}),
		"bad channel": encodeEvents([]broker.Event{{Kind: broker.EventClose, Origin: 1, Seq: 1, Channel: "no spaces"}}),
		"no origin":   encodeEvents([]broker.Event{{Kind: broker.EventClose, Seq: 1, Channel: "a"}}),
	} {
		_, err := decodeEvents(b)
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
}

func TestPositionsRoundTrip(t *testing.T) {
	ps := []position{{Origin: 1, Seq: 5}, {Origin: 1 << 60, Seq: 1 << 40}}
	kind, node, got, err := decodePositions(encodePositions(msgDigest, "n1", ps))
	require.NoError(t, err)
	assert.Equal(t, msgDigest, kind)
	assert.Equal(t, "n1", node)
	assert.Equal(t, ps, got)
}

func TestSnapshotRoundTrip(t *testing.T) {
	evs := sampleEvents()
	m := evs[0].Message
	snap := &broker.Snapshot{
		Taken: time.Unix(1_700_000_000, 5), Clock: m.TS + 9,
		Origins: []broker.SnapshotOrigin{{Origin: 0xabc, Seq: 9, TS: m.TS + 2, Lost: 4}},
		Channels: []broker.SnapshotChannel{
			{Name: "a", TTL: time.Hour, LastActive: time.Unix(1_700_000_000, 0), Messages: []*channel.Message{m}},
			{Name: "tag:c++", TTL: time.Minute, LastActive: time.Unix(1_700_000_001, 0), Messages: []*channel.Message{m}},
			{Name: "empty", TTL: time.Hour},
		},
	}
	got, err := decodeSnapshot(encodeSnapshot(snap))
	require.NoError(t, err)
	assert.Equal(t, snap.Taken.UnixNano(), got.Taken.UnixNano())
	assert.Equal(t, snap.Clock, got.Clock)
	assert.Equal(t, snap.Origins, got.Origins)
	require.Len(t, got.Channels, 3)
	assert.Same(t, got.Channels[0].Messages[0], got.Channels[1].Messages[0], "one message in two channels stays one")
	assert.Equal(t, m.JSON, got.Channels[0].Messages[0].JSON)
	assert.Equal(t, time.Minute, got.Channels[1].TTL)
	_, err = decodeSnapshot(append([]byte{99}, encodeSnapshot(snap)[1:]...))
	assert.ErrorIs(t, err, ErrMalformed, "another version")
}

// FuzzDecodeEvents: no input panics or allocates wildly, and what decodes
// encodes back to the same events.
func FuzzDecodeEvents(f *testing.F) {
	f.Add(encodeEvents(sampleEvents()))
	f.Add(encodePositions(msgAnnounce, "n", []position{{1, 2}}))
	f.Add([]byte{msgEvents, 1, 1})
	keyed := sampleEvents()
	keyed[0].IdempotencyKey = "order-17"
	f.Add(encodeEvents(keyed))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b)
		if err != nil {
			return
		}
		again, err := decodeEvents(encodeEvents(evs))
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-decoding failed: %v", err)
		}
	})
}

// FuzzDecodeSnapshot: no input panics the snapshot decoder.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(&broker.Snapshot{Channels: []broker.SnapshotChannel{{Name: "a", Messages: []*channel.Message{sampleEvents()[0].Message}}}}))
	f.Add([]byte{wireVersion, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSnapshot(b)
	})
}

// FuzzDecodePositions: no input panics the position decoder.
func FuzzDecodePositions(f *testing.F) {
	f.Add(encodePositions(msgDigest, "node", []position{{1, 2}, {3, 4}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _ = decodePositions(b)
	})
}

func TestConfigValidation(t *testing.T) {
	ok := fastConfig("n", ModeUnicast)
	ok.HTTP = "http://127.0.0.1:8080"
	require.NoError(t, ok.Validate())
	for name, mod := range map[string]func(*Config){
		"no name":      func(c *Config) { c.NodeName = "" },
		"bad bind":     func(c *Config) { c.Bind = "nowhere" },
		"no http":      func(c *Config) { c.HTTP = "" },
		"bad mode":     func(c *Config) { c.Mode = "telepathy" },
		"zero queue":   func(c *Config) { c.QueueSize = 0 },
		"huge payload": func(c *Config) { c.GossipPayload = 9000 },
		"no interval":  func(c *Config) { c.GossipInterval = 0 },
	} {
		c := ok
		mod(&c)
		assert.Error(t, c.Validate(), name)
	}
	_, err := New(Config{NodeName: "n", Bind: ":1", HTTP: "ftp://x", Mode: ModeGossip, JoinTimeout: 1, GossipInterval: 1,
		AnnounceInterval: 1, PushPullInterval: 1, RepairAfter: 1, ProbeInterval: 1, ProbeTimeout: 1, LeaveTimeout: 1,
		QueueSize: 1, BatchSize: 1, GossipPayload: 100}, nil)
	assert.Error(t, err, "HTTP must be an http(s) base URL")
	_, err = ParseMode("unicast")
	assert.NoError(t, err)
}

func TestIdempotencyKeyTravelsWithTheEvent(t *testing.T) {
	evs := sampleEvents()
	plain := encodeEvents(evs)
	keyed := slices.Clone(evs)
	keyed[0].IdempotencyKey = "order-17"
	out, err := decodeEvents(encodeEvents(keyed))
	require.NoError(t, err)
	assert.Equal(t, "order-17", out[0].IdempotencyKey)
	assert.Empty(t, out[1].IdempotencyKey)

	// Without a key the bytes are what nodes before the key sent: old
	// and new nodes read each other's unkeyed events.
	assert.Equal(t, byte(broker.EventPublish), plain[2], "kind byte of the first event, unflagged")
	out, err = decodeEvents(plain)
	require.NoError(t, err)
	assert.Empty(t, out[0].IdempotencyKey)

	bad := slices.Clone(evs[:1])
	bad[0].IdempotencyKey = "has space"
	_, err = decodeEvents(encodeEvents(bad))
	assert.ErrorIs(t, err, ErrMalformed)
	renew := []broker.Event{evs[1]}
	b := encodeEvents(renew)
	b[2] |= kindKeyed
	_, err = decodeEvents(b)
	assert.ErrorIs(t, err, ErrMalformed, "a key flag on a renewal")
}
