package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"
)

// A client connection to one server port is identified by its source
// address and port. One source address has about 28,000 ephemeral ports
// (net.ipv4.ip_local_port_range 32768-60999), so one process dialing one
// server from 127.0.0.1 runs out there. Every 127.0.0.0/8 address is
// loopback on Linux, so dialing from 127.0.0.1 through 127.0.0.254 in turn
// gives each its own port range: 254 times as many connections.

// loopbackSources is 127.0.0.1 through 127.0.0.254.
func loopbackSources() []netip.Addr {
	out := make([]netip.Addr, 254)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
	}
	return out
}

// dialer opens subscriber connections, spreading their source addresses.
// It is safe for concurrent use.
type dialer struct {
	timeout time.Duration
	sources []netip.Addr // nil: let the kernel pick
	next    atomic.Uint64
	// sem bounds dials in progress, so connecting thousands of subscribers
	// does not overflow the server's accept backlog (SYNs dropped there
	// come back only after a 1 s retransmit).
	sem chan struct{}
}

// newDialer builds a dialer for target. sources overrides the source
// addresses; nil means 127.0.0.1-254 for an IPv4 loopback target and the
// kernel's choice otherwise.
func newDialer(target netip.AddrPort, sources []netip.Addr, timeout time.Duration, concurrency int) *dialer {
	d := &dialer{timeout: timeout, sources: sources, sem: make(chan struct{}, max(1, concurrency))}
	if d.sources == nil && target.Addr().Unmap().Is4() && target.Addr().IsLoopback() {
		d.sources = loopbackSources()
	}
	return d
}

// dial connects to target from the next source address.
func (d *dialer) dial(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.sem }()
	nd := net.Dialer{
		Timeout: d.timeout,
		// No keep-alive probes: runs are shorter than their first probe
		// would matter, and probes on 15,000 idle connections are traffic
		// NT does not see.
		KeepAlive: -1,
	}
	if len(d.sources) > 0 {
		src := d.sources[d.next.Add(1)%uint64(len(d.sources))]
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return nd.DialContext(ctx, "tcp", target.String())
}

// target is one server a subscriber or publisher talks to.
type target struct {
	base string         // "http://127.0.0.1:8080", for net/http clients
	host string         // Host header
	addr netip.AddrPort // resolved once, not per connection
}

// resolveTarget parses a base URL ("http://host:port") and resolves its
// host once.
func resolveTarget(ctx context.Context, base string) (target, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return target{}, fmt.Errorf("%w: target %q: want http://host:port", ErrInvalidConfig, base)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(ips) == 0 {
		return target{}, fmt.Errorf("%w: target %q: %v", ErrInvalidConfig, base, err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ips[0].Unmap().String(), port))
	if err != nil {
		return target{}, fmt.Errorf("%w: target %q: %v", ErrInvalidConfig, base, err)
	}
	return target{base: "http://" + u.Host, host: u.Host, addr: ap}, nil
}
