//go:build linux

package epoll

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Event flags a registration can ask for and events report.
const (
	// Readable: data (or a request) arrived.
	Readable = unix.EPOLLIN
	// Writable: the socket has room to send again.
	Writable = unix.EPOLLOUT
	// Hangup: the peer closed its side or the socket failed. It is always
	// reported, whatever was asked for.
	Hangup = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

// Supported reports whether this platform has epoll.
const Supported = true

// Event is one readiness report.
type Event struct {
	Key    uint64
	Events uint32
}

// Poller is one epoll set and the goroutine that waits on it.
type Poller struct {
	epfd    int
	wake    int // eventfd that interrupts EpollWait for Close
	handler func([]Event)
	tick    func()
	every   time.Duration

	closeOnce sync.Once
	done      chan struct{}
}

// New starts a poller. handle receives each batch of events; tick, if not
// nil, runs about every interval (for sweeping deadlines) on the same
// goroutine. Both must not block.
func New(handle func([]Event), tick func(), interval time.Duration) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll: add eventfd: %w", err)
	}
	if interval <= 0 {
		interval = time.Second
	}
	p := &Poller{epfd: epfd, wake: wake, handler: handle, tick: tick, every: interval, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// keyOf packs a key into epoll_event's 64-bit data field. The eventfd is
// registered with Fd = 0 and Pad = 0; callers' keys start at 1.
func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd = int32(uint32(key))
	ev.Pad = int32(uint32(key >> 32))
}

func keyOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// ErrBadKey is returned for key 0, which the poller reserves.
var ErrBadKey = errors.New("epoll: key 0 is reserved")

func (p *Poller) ctl(op, fd int, key uint64, events uint32) error {
	return p.ctlMode(op, fd, key, events|unix.EPOLLONESHOT|unix.EPOLLRDHUP)
}

func (p *Poller) ctlMode(op, fd int, key uint64, events uint32) error {
	if key == 0 {
		return ErrBadKey
	}
	ev := unix.EpollEvent{Events: events}
	setKey(&ev, key)
	if err := unix.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll: ctl: %w", err)
	}
	return nil
}

// Add registers fd under key for events (Readable, Writable, or 0 for
// hang-up only).
func (p *Poller) Add(fd int, key uint64, events uint32) error {
	return p.ctl(unix.EPOLL_CTL_ADD, fd, key, events)
}

// AddEdge registers fd under key edge-triggered, for good: readable,
// writable and hang-up are each reported when they become true (new data,
// room freed after a write that did not fit, the peer's FIN), never again
// for a condition that stays true, and the registration needs no Rearm.
// A condition already true when fd is added is reported once. The caller
// must remember an edge it cannot act on at once: none comes again until
// something changes.
func (p *Poller) AddEdge(fd int, key uint64) error {
	return p.ctlMode(unix.EPOLL_CTL_ADD, fd, key, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
}

// Rearm re-enables a registration after its event was reported, possibly
// with other events. Readiness that is already true is reported at once.
func (p *Poller) Rearm(fd int, key uint64, events uint32) error {
	return p.ctl(unix.EPOLL_CTL_MOD, fd, key, events)
}

// Remove unregisters fd. Call it before closing the socket.
func (p *Poller) Remove(fd int) error {
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("epoll: del: %w", err)
	}
	return nil
}

func (p *Poller) loop() {
	defer close(p.done)
	raw := make([]unix.EpollEvent, 256)
	out := make([]Event, 0, len(raw))
	next := time.Now().Add(p.every)
	for {
		wait := time.Until(next)
		if wait < 0 {
			wait = 0
		}
		n, err := unix.EpollWait(p.epfd, raw, int(wait/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return // epfd closed
		}
		out = out[:0]
		for i := 0; i < n; i++ {
			k := keyOf(&raw[i])
			if k == 0 {
				return // the wake eventfd: Close was called
			}
			out = append(out, Event{Key: k, Events: raw[i].Events})
		}
		if len(out) > 0 {
			p.handler(out)
		}
		if p.tick != nil && !time.Now().Before(next) {
			p.tick()
			next = time.Now().Add(p.every)
		}
	}
}

// Close stops the poller's goroutine and releases the epoll set. Sockets
// still registered are not closed.
func (p *Poller) Close() error {
	p.closeOnce.Do(func() {
		var one = [8]byte{1}
		unix.Write(p.wake, one[:])
		<-p.done
		unix.Close(p.epfd)
		unix.Close(p.wake)
	})
	return nil
}
