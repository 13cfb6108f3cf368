//go:build linux

package evhttp

import (
	"time"

	"github.com/pushuphq/pushup/internal/epoll"
)

// Stream is a connection held open for a response written in parts over
// time (server-sent events: a head, then events, heartbeats, until a
// lifetime ends). While nothing is being written it costs what a parked
// connection costs: no goroutine, no buffer. Write and Close are safe from
// any goroutine and never block; bytes the socket does not take at once
// wait in the connection (at most Config.StreamBacklog of them) for it to
// drain, under WriteTimeout.
type Stream[A any] struct{ c *Conn[A] }

// defaultStreamBacklog is Config.StreamBacklog when 0: a few seconds of
// events for a client on a slow link, not a way to buffer a dead one.
const defaultStreamBacklog = 64 << 10

// StartStream turns the request being served into a stream: head (the
// status line and headers, ending in a blank line) is written first. The
// caller owns c and gives it up. The stream ends when the handler closes
// it, the client goes, a write fails, the backlog overflows, or the socket
// takes nothing for WriteTimeout; in every case but Close, cancel.Cancel
// is called once (with no engine lock held) so the handler can let go of
// what feeds the stream.
func (c *Conn[A]) StartStream(head []byte, cancel Canceler) *Stream[A] {
	c.mu.Lock()
	c.streaming, c.cancel = true, cancel
	c.out = append(c.out[:0], head...)
	c.mu.Unlock()
	c.streamFlush()
	return &Stream[A]{c: c}
}

// Write queues b on the stream and writes what the socket takes now. It
// reports false if the stream has ended, or ends it now because the
// client cannot keep up (the backlog would pass Config.StreamBacklog).
func (s *Stream[A]) Write(b []byte) bool {
	c := s.c
	c.mu.Lock()
	if c.state == csClosed || c.streamEnd {
		c.mu.Unlock()
		return false
	}
	if len(c.out)+len(b) > c.p.streamBacklog() {
		c.p.slowDropped.Add(1)
		c.endStreamLocked(false)
		return false
	}
	idle := c.state == csStream && len(c.out) == 0
	c.out = append(c.out, b...)
	if !idle {
		// An owner is writing, or the socket is full and EPOLLOUT will
		// flush: either way the bytes go out in order.
		c.mu.Unlock()
		return true
	}
	c.state = csBusy
	c.mu.Unlock()
	c.streamFlush()
	return true
}

// Close ends the stream once what was written has gone out (or could not:
// the write deadline still applies). cancel is not called.
func (s *Stream[A]) Close() {
	c := s.c
	c.mu.Lock()
	if c.state == csClosed || c.streamEnd {
		c.mu.Unlock()
		return
	}
	c.streamEnd = true
	if c.state == csStream && len(c.out) == 0 {
		c.closeLocked()
		return
	}
	c.mu.Unlock() // the owner, or the drain, closes it
}

func (p *Engine[A]) streamBacklog() int {
	if p.cfg.StreamBacklog > 0 {
		return p.cfg.StreamBacklog
	}
	return defaultStreamBacklog
}

// streamFlush writes the stream's queued bytes; the caller owns c. Bytes
// queued meanwhile (Write appends while c is busy) are written in the same
// go. What the socket does not take waits for EPOLLOUT.
func (c *Conn[A]) streamFlush() {
	for {
		c.mu.Lock()
		b := c.out
		c.out = nil
		if len(b) == 0 || c.closeReq {
			break // with c.mu held
		}
		c.mu.Unlock()
		n, err := writeFD(c.fd, b) // the owner's fd
		if err != nil {
			c.p.writeFailed.Add(1)
			c.mu.Lock()
			c.endStreamLocked(true)
			return
		}
		if n < len(b) {
			c.mu.Lock()
			c.out = append(b[n:len(b):len(b)], c.out...) // ahead of what came meanwhile
			if n > 0 || c.deadline == 0 {
				c.setDeadlineLocked(time.Now().Add(c.p.cfg.WriteTimeout).UnixNano())
			}
			if c.closeReq || c.armLocked(epoll.Writable) != nil {
				c.endStreamLocked(true)
				return
			}
			c.state = csStream
			c.mu.Unlock()
			return
		}
	}
	// All written (c.mu held).
	if c.closeReq || c.streamEnd {
		if c.closeReq {
			c.endStreamLocked(true)
		} else {
			c.closeLocked()
		}
		return
	}
	c.setDeadlineLocked(0)
	if err := c.armLocked(0); err != nil { // hang-up only
		c.endStreamLocked(true)
		return
	}
	c.state = csStream
	c.mu.Unlock()
}

// streamEvent handles an epoll report or a passed deadline for a stream
// nobody owns; the caller holds c.mu, which streamEvent releases.
func (c *Conn[A]) streamEvent(events uint32, timedOut bool) {
	switch {
	case timedOut:
		c.p.slowDropped.Add(1)
		c.endStreamLocked(true)
	case events&epoll.Hangup != 0:
		c.p.vanished.Add(1)
		c.endStreamLocked(true)
	case events&epoll.Writable != 0 && len(c.out) > 0:
		c.state = csBusy
		c.mu.Unlock()
		c.streamFlush()
	default:
		c.mu.Unlock()
	}
}

// endStreamLocked ends a stream on the engine's side: closes it (or has
// its owner close it) and tells the handler through cancel, unless the
// handler ended it. owner: the caller owns c, or nobody does. Caller holds
// c.mu, which it releases.
func (c *Conn[A]) endStreamLocked(owner bool) {
	cancel := c.cancel
	byHandler := c.streamEnd
	c.cancel = nil
	if c.state == csBusy && !owner {
		c.closeReq = true
		c.mu.Unlock()
	} else {
		c.closeLocked()
	}
	if cancel != nil && !byHandler {
		cancel.Cancel()
	}
}
