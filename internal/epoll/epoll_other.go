//go:build !linux

package epoll

import (
	"errors"
	"time"
)

// Event flags; see the Linux implementation.
const (
	Readable = 0x1
	Writable = 0x4
	Hangup   = 0x2
)

// Supported reports whether this platform has epoll.
const Supported = false

// ErrUnsupported: no epoll on this platform; callers fall back to a
// goroutine per waiting connection.
var ErrUnsupported = errors.New("epoll: not supported on this platform")

// Event is one readiness report.
type Event struct {
	Key    uint64
	Events uint32
}

// Poller is unavailable on this platform.
type Poller struct{}

// New fails on this platform.
func New(func([]Event), func(), time.Duration) (*Poller, error) { return nil, ErrUnsupported }

// Add fails on this platform.
func (p *Poller) Add(int, uint64, uint32) error { return ErrUnsupported }

// AddEdge fails on this platform.
func (p *Poller) AddEdge(int, uint64) error { return ErrUnsupported }

// Rearm fails on this platform.
func (p *Poller) Rearm(int, uint64, uint32) error { return ErrUnsupported }

// Remove fails on this platform.
func (p *Poller) Remove(int) error { return ErrUnsupported }

// Close does nothing on this platform.
func (p *Poller) Close() error { return nil }
