package loadtest

import (
	"net"
	"sync/atomic"
)

// TCP/IP overhead model behind Traffic.EstimatedTCPIPBytes. The kernel
// does not tell a user process how many segments it sent, so this is an
// estimate from what the process wrote and read.
const (
	// tcpIPHeaderBytes is an IPv4 header (20 B) plus a TCP header with
	// the timestamp option Linux sets by default (32 B). Link-layer
	// framing is not counted: loopback has none worth counting.
	tcpIPHeaderBytes = 52
	// segmentPayload is the payload of one full segment on a 1500-byte
	// Ethernet MTU with those headers. On loopback (MTU 64 KiB) the real
	// segments are fewer, so the estimate is an upper bound there.
	segmentPayload = 1448
	// packetsPerConnection: a 3-way handshake and a 4-packet close.
	packetsPerConnection = 7
)

// Traffic is network traffic (NT) on the subscribers' side: the bytes
// they wrote to and read from their TCP connections, HTTP request and
// response lines, headers and bodies included. It does not count TCP/IP
// headers, handshakes or ACKs: those are estimated separately in
// EstimatedTCPIPBytes. Publisher and metrics-scrape traffic are not part
// of NT.
type Traffic struct {
	// Sent is bytes written by subscribers (their requests).
	Sent int64 `json:"sent_bytes"`
	// Received is bytes read by subscribers (responses, headers included).
	Received int64 `json:"received_bytes"`
	// Total is Sent + Received: the paper's NT.
	Total int64 `json:"total_bytes"`
	// Requests is subscribe requests written.
	Requests int64 `json:"requests"`
	// Responses is complete responses read, whatever their status.
	Responses int64 `json:"responses"`
	// Connections is TCP connections established.
	Connections int64 `json:"connections"`
	// EstimatedTCPIPBytes estimates the TCP/IP overhead NT leaves out:
	// 52 bytes of IPv4+TCP header per packet, counting one data segment
	// per 1,448 bytes of each request and response, one pure ACK per
	// data segment, and 7 packets to open and close each connection. It
	// is an estimate (delayed ACKs merge some packets, loopback segments
	// are larger), reported next to NT, never added to it.
	EstimatedTCPIPBytes int64 `json:"estimated_tcpip_bytes"`
}

// trafficCounter accumulates Traffic from many goroutines.
type trafficCounter struct {
	sent, recv, requests, responses, conns, segments atomic.Int64
}

// request records one request of n bytes, written in full.
func (c *trafficCounter) request(n int) {
	c.requests.Add(1)
	c.segments.Add(segments(n))
}

// response records one complete response of n bytes on the wire.
func (c *trafficCounter) response(n int64) {
	c.responses.Add(1)
	c.segments.Add(segments(n))
}

// segments is how many segments carry n bytes, by the model above.
func segments[T int | int64](n T) int64 {
	return (int64(n) + segmentPayload - 1) / segmentPayload
}

// snapshot returns the totals so far.
func (c *trafficCounter) snapshot() Traffic {
	t := Traffic{
		Sent:        c.sent.Load(),
		Received:    c.recv.Load(),
		Requests:    c.requests.Load(),
		Responses:   c.responses.Load(),
		Connections: c.conns.Load(),
	}
	t.Total = t.Sent + t.Received
	t.EstimatedTCPIPBytes = tcpIPHeaderBytes * (2*c.segments.Load() + packetsPerConnection*t.Connections)
	return t
}

// Sub returns the traffic between an earlier snapshot and t.
func (t Traffic) Sub(earlier Traffic) Traffic {
	return Traffic{
		Sent:                t.Sent - earlier.Sent,
		Received:            t.Received - earlier.Received,
		Total:               t.Total - earlier.Total,
		Requests:            t.Requests - earlier.Requests,
		Responses:           t.Responses - earlier.Responses,
		Connections:         t.Connections - earlier.Connections,
		EstimatedTCPIPBytes: t.EstimatedTCPIPBytes - earlier.EstimatedTCPIPBytes,
	}
}

// countingConn counts the bytes that cross a connection, as the kernel
// accepted or delivered them, into the shared counter and into its own
// recv (read only by the goroutine that owns the connection, to size each
// response).
type countingConn struct {
	net.Conn
	c    *trafficCounter
	recv int64
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.recv += int64(n)
	cc.c.recv.Add(int64(n))
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.sent.Add(int64(n))
	return n, err
}
