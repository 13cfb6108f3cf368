package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// A publication's idempotency key is kept on disk, so a node that
// replays its data directory still answers a publisher's retry with the
// first message; records written without a key read as before.
func TestRecordKeepsTheIdempotencyKey(t *testing.T) {
	m := channel.NewMessage(7, 3, channel.Timestamp(42), []string{"a", "b"}, []byte(`"x"`))
	for _, key := range []string{"order-17", ""} {
		ev := broker.Event{Kind: broker.EventPublish, Origin: 7, Seq: 3, TS: 42, Message: m, IdempotencyKey: key}
		got, order, err := decodeEvent(encodeEvent(nil, ev, 9))
		require.NoError(t, err, key)
		assert.Equal(t, uint64(9), order)
		assert.Equal(t, key, got.IdempotencyKey)
		assert.Equal(t, m.Channels, got.Message.Channels)
		assert.Equal(t, m.Data, got.Message.Data)
	}
}
