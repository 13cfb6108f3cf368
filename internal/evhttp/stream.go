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
	st := &Stream[A]{c: c}
	if c.p.closing.Load() {
		// Shutdown's pass may have found c busy before it was a stream:
		// end it here, or Shutdown waits for its context.
		c.endStreamLocked(true, StreamShutdown)
		return st
	}
	b := c.bufsLocked()
	b.out = append(b.out[:0], head...)
	c.mu.Unlock()
	c.streamFlush()
	return st
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
	bf := c.bufsLocked()
	if len(bf.out)+len(b) > c.p.streamBacklog() {
		c.p.slowDropped.Add(1)
		c.endStreamLocked(false, StreamSlow)
		return false
	}
	idle := c.state == csStream && len(bf.out) == 0
	bf.out = append(bf.out, b...)
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
	if c.state == csStream && len(c.outLocked()) == 0 {
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
		b := c.outLocked()
		if c.bufs != nil {
			c.bufs.out = nil
		}
		if len(b) == 0 || c.closeReq {
			break // with c.mu held
		}
		c.mu.Unlock()
		n, err := writeFD(int(c.fd), b) // the owner's fd
		if err != nil {
			c.p.writeFailed.Add(1)
			c.mu.Lock()
			c.endStreamLocked(true, StreamGone)
			return
		}
		if n < len(b) {
			c.mu.Lock()
			bf := c.bufsLocked()
			bf.out = append(b[n:len(b):len(b)], bf.out...) // ahead of what came meanwhile
			if n > 0 || c.deadline == 0 {
				c.setDeadlineLocked(time.Now().Add(c.p.cfg.WriteTimeout).UnixNano())
			}
			if c.closeReq || c.registerLocked() != nil {
				c.endStreamLocked(true, c.closeReason())
				return
			}
			if c.hup { // it went while we wrote: its edge will not come again
				c.p.vanished.Add(1)
				c.endStreamLocked(true, StreamGone)
				return
			}
			if c.writePending {
				// Room was reported since the write began: its edge
				// will not come again, so try now.
				c.writePending = false
				c.mu.Unlock()
				continue
			}
			c.state = csStream
			c.mu.Unlock()
			return
		}
	}
	// All written (c.mu held).
	if c.closeReq || c.streamEnd {
		if c.closeReq {
			c.endStreamLocked(true, c.closeReason())
		} else {
			c.closeLocked()
		}
		return
	}
	c.setDeadlineLocked(0)
	if err := c.registerLocked(); err != nil {
		c.endStreamLocked(true, StreamGone)
		return
	}
	if c.hup {
		// The client went while the stream was being written: its edge
		// came and went.
		c.p.vanished.Add(1)
		c.endStreamLocked(true, StreamGone)
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
		c.endStreamLocked(true, StreamSlow)
	case events&epoll.Hangup != 0:
		c.p.vanished.Add(1)
		c.endStreamLocked(true, StreamGone)
	case c.writePending && len(c.outLocked()) > 0:
		c.state = csBusy
		c.mu.Unlock()
		c.streamFlush()
	default:
		c.mu.Unlock()
	}
}

// closeReason is why a stream whose owner found closeReq ends. Caller
// holds c.mu.
func (c *Conn[A]) closeReason() StreamEnd {
	if c.p.closing.Load() {
		return StreamShutdown
	}
	return StreamGone
}

// endStreamLocked ends a stream on the engine's side: closes it (or has
// its owner close it) and tells the handler through cancel, unless the
// handler ended it. owner: the caller owns c, or nobody does. Caller holds
// c.mu, which it releases.
func (c *Conn[A]) endStreamLocked(owner bool, why StreamEnd) {
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
		if e, ok := cancel.(StreamEnder); ok {
			e.StreamEnded(why)
		} else {
			cancel.Cancel()
		}
	}
}
