package testbed

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreeLoopbackAddr returns a 127.0.0.1 address with a port nobody is
// bound to, for a server that must be told its port before it starts (a
// cluster node's memberlist address, named in the others' -join, or a
// port that must stay the same across a restart). With udp the port is
// free for UDP too, as memberlist binds both.
//
// The port is picked at random below the kernel's ephemeral range: a
// port from Listen("127.0.0.1:0") lies inside it, where any outgoing
// connection on the machine may take it as its local port between the
// check and the server's bind (seen: "address already in use" while the
// previous cluster's connections were closing). Another process binding
// the same port in between is still possible, and unlikely.
func FreeLoopbackAddr(udp bool) (string, error) {
	lo, hi := 20000, ephemeralStart()
	for range 200 {
		port := 0 // fall back to the kernel's choice if there is no room below
		if hi-lo >= 1000 {
			port = lo + rand.IntN(hi-lo)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		addr = l.Addr().String()
		if udp {
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				l.Close()
				continue
			}
			u.Close()
		}
		l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("%w: no free loopback port", ErrDaemon)
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
