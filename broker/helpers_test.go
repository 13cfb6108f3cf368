package broker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/channel"
)

func newTestBroker(t *testing.T, mod func(*Config)) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

func pub(data any, channels ...string) Publication {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return Publication{Channels: channels, Data: raw}
}

func publish(t *testing.T, b *Broker, pubs ...Publication) []*channel.Message {
	t.Helper()
	ms, err := b.Publish(pubs...)
	require.NoError(t, err)
	return ms
}

// poll subscribes with timeout zero.
func poll(t *testing.T, b *Broker, cur Cursor, channels ...string) Result {
	t.Helper()
	res, sub, err := b.Subscribe(SubscribeRequest{Channels: channels, Cursor: cur}, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	return res
}

func dataOf(ms []*channel.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Data)
	}
	return out
}

// waiter collects the answer of a parked subscription.
type waiter struct{ ch chan Result }

func newWaiter() *waiter { return &waiter{ch: make(chan Result, 1)} }

func (w *waiter) deliver(r Result) { w.ch <- r }

func (w *waiter) wait(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-w.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
	}
	return Result{}
}

func (w *waiter) pending() bool { return len(w.ch) == 0 }

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
