package testbed

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFreeLoopbackAddr(t *testing.T) {
	for _, udp := range []bool{false, true} {
		addr, err := FreeLoopbackAddr(udp)
		require.NoError(t, err)
		host, p, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", host)
		port, _ := strconv.Atoi(p)
		assert.Less(t, port, ephemeralStart(), "outside the ephemeral range")
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err, "the port is free")
		l.Close()
		if udp {
			u, err := net.ListenPacket("udp", addr)
			require.NoError(t, err, "free for UDP too")
			u.Close()
		}
	}
}
