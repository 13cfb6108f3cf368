package cluster

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network for memberlist with the faults of a real
// one: packets are dropped (lost, partitioned, to a node that is down, or
// when the receiver's buffer is full), never blocked on, and stream dials
// across a partition fail. memberlist's own MockNetwork blocks a sender
// until the receiver reads, forever if it never will, and is not safe to
// add nodes to while others run; tests need both.
type memNet struct {
	f      *faults
	mu     sync.Mutex
	byAddr map[string]*memTransport
	byName map[string]*memTransport
	port   int
}

func newMemNet(f *faults) *memNet {
	return &memNet{f: f, byAddr: map[string]*memTransport{}, byName: map[string]*memTransport{}}
}

// transport returns a new transport for node name; a node restarted under
// the same name gets the same address.
func (m *memNet) transport(name string) *memTransport {
	m.mu.Lock()
	defer m.mu.Unlock()
	addr := ""
	if old := m.byName[name]; old != nil {
		addr = old.addr
	} else {
		m.port++
		addr = fmt.Sprintf("127.0.0.1:%d", m.port)
	}
	t := &memTransport{net: m, name: name, addr: addr,
		packets: make(chan *memberlist.Packet, 1024), streams: make(chan net.Conn, 64), done: make(chan struct{})}
	m.byName[name] = t
	m.byAddr[addr] = t
	return t
}

func (m *memNet) lookup(a memberlist.Address) *memTransport {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.Name != "" {
		return m.byName[a.Name]
	}
	return m.byAddr[a.Addr]
}

// memTransport is one node's end of a memNet.
type memTransport struct {
	net     *memNet
	name    string
	addr    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once

	// conns are both ends of the streams this node dialed or was handed,
	// closed by Shutdown: memberlist's shutdown does not stop a push/pull
	// already writing, and a pipe write nobody reads blocks until
	// memberlist's TCP timeout, past the end of the tests.
	mu    sync.Mutex
	conns []net.Conn
}

// track keeps c to close at Shutdown; after it, c is closed at once.
func (t *memTransport) track(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		c.Close()
		return
	default:
	}
	t.conns = append(t.conns, c)
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := splitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	return net.ParseIP(host), port, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dest := t.net.lookup(a)
	if dest == nil || t.net.f.drop(t.name, dest.name) {
		return now, nil
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: memAddr(t.addr), Timestamp: now}
	select {
	case <-dest.done:
	case dest.packets <- p:
	default: // the receiver's buffer is full: lost, as UDP would
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dest := t.net.lookup(a)
	if dest == nil {
		return nil, fmt.Errorf("no route to %s", a.Addr)
	}
	if t.net.f.cut(t.name, dest.name) {
		return nil, fmt.Errorf("partitioned from %s", dest.name)
	}
	mine, theirs := net.Pipe()
	t.track(mine)
	dest.track(theirs)
	select {
	case dest.streams <- theirs:
		return mine, nil
	case <-dest.done:
	case <-time.After(timeout):
	}
	mine.Close()
	theirs.Close()
	return nil, fmt.Errorf("%s does not answer", dest.name)
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops deliveries to this transport and closes its streams,
// those handed over but not taken included.
func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		t.mu.Lock()
		close(t.done)
		conns := t.conns
		t.conns = nil
		t.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		for {
			select {
			case c := <-t.streams:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// memAddr is a memNet address as a net.Addr.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
