//go:build linux

package evhttp

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine's sockets are non-blocking (accept4 with SOCK_NONBLOCK, or a
// duplicate of a socket the netpoller made non-blocking), so a read or a
// write on one returns at once: with what the socket buffer held or took,
// or EAGAIN. They go through RawSyscall rather than unix.Read and
// unix.Write, which wrap every call in the runtime's entersyscall and
// exitsyscall: that bookkeeping, and the hand-off of the P that sysmon
// makes when a call seems slow (20 µs at first), cost as much as the copy
// itself at one read and one write per delivery. A raw call keeps its P
// for the call's length, which is safe only because that length is
// bounded: a read copies at most len(b) bytes already queued, a write
// copies at most the free room of the socket's send buffer (a big answer
// into a full socket returns EAGAIN, or a short count, at once; the rest
// waits for EPOLLOUT). Nothing here may wait for the peer. epoll_wait,
// which does wait, stays on the ordinary path (internal/epoll).

// zero is what an empty buffer points at: the kernel reads nothing there.
var zero byte

func bufPtr(b []byte) uintptr {
	if len(b) == 0 {
		return uintptr(unsafe.Pointer(&zero))
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// rawWrite is write(2) on a non-blocking socket, without the runtime's
// system-call bookkeeping (see above).
func rawWrite(fd int, b []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), bufPtr(b), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	raceReadBuf(b, int(n))
	return int(n), 0
}

// rawRead is read(2) on a non-blocking socket, without the runtime's
// system-call bookkeeping (see above).
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), bufPtr(b), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	raceWriteBuf(b, int(n))
	return int(n), 0
}

// writeFD writes as much of b as the socket takes now, without waiting.
func writeFD(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, e := rawWrite(fd, b[n:])
		n += m
		switch {
		case e == unix.EINTR:
		case e == unix.EAGAIN:
			return n, nil
		case e != 0:
			return n, e
		case m == 0:
			return n, nil
		}
	}
	return n, nil
}

// readFD reads what the socket has now, without waiting. It returns 0, nil
// when there was nothing after all.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, e := rawRead(fd, b)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return 0, nil
		case e != 0:
			return 0, e
		case n == 0:
			return 0, errEOF
		}
		return n, nil
	}
}
