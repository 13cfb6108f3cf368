package loadtest

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrafficAccounting(t *testing.T) {
	tests := []struct {
		name      string
		requests  []int
		responses []int64
		conns     int64
		want      Traffic
	}{
		{name: "nothing"},
		{
			name: "one small round trip on one connection", requests: []int{100}, responses: []int64{300}, conns: 1,
			// 2 data segments + 2 ACKs + 7 connection packets, 52 B each.
			want: Traffic{Requests: 1, Responses: 1, Connections: 1, EstimatedTCPIPBytes: 52 * (2*2 + 7)},
		},
		{
			name: "a response over one segment", requests: []int{100}, responses: []int64{1448 + 1}, conns: 1,
			want: Traffic{Requests: 1, Responses: 1, Connections: 1, EstimatedTCPIPBytes: 52 * (2*3 + 7)},
		},
		{
			name: "exactly one segment", requests: []int{1448}, responses: []int64{1448}, conns: 2,
			want: Traffic{Requests: 1, Responses: 1, Connections: 2, EstimatedTCPIPBytes: 52 * (2*2 + 14)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c trafficCounter
			for _, n := range tt.requests {
				c.request(n)
			}
			for _, n := range tt.responses {
				c.response(n)
			}
			c.conns.Add(tt.conns)
			assert.Equal(t, tt.want, c.snapshot())
		})
	}
}

func TestTrafficSub(t *testing.T) {
	a := Traffic{Sent: 10, Received: 20, Total: 30, Requests: 1, Responses: 1, Connections: 1, EstimatedTCPIPBytes: 52}
	b := Traffic{Sent: 15, Received: 50, Total: 65, Requests: 3, Responses: 2, Connections: 1, EstimatedTCPIPBytes: 104}
	assert.Equal(t, Traffic{Sent: 5, Received: 30, Total: 35, Requests: 2, Responses: 1, EstimatedTCPIPBytes: 52}, b.Sub(a))
}

// TestCountingConn: NT counts what crosses the socket, headers and all.
func TestCountingConn(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	var c trafficCounter
	cc := &countingConn{Conn: client, c: &c}
	go func() {
		buf := make([]byte, 5)
		_, _ = io.ReadFull(server, buf)
		_, _ = server.Write([]byte("0123456789"))
		server.Close()
	}()
	_, err := cc.Write([]byte("hello"))
	require.NoError(t, err)
	got, err := io.ReadAll(cc)
	require.NoError(t, err)
	require.Len(t, got, 10)
	snap := c.snapshot()
	assert.Equal(t, int64(5), snap.Sent)
	assert.Equal(t, int64(10), snap.Received)
	assert.Equal(t, int64(15), snap.Total)
	assert.Equal(t, int64(10), cc.recv)
	cc.Close()
}
