//go:build linux

package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pushuphq/pushup/internal/testbed"
)

// The floor server is the least a long-polling server can make the kernel
// do per delivery: one write of a fixed answer to each parked connection,
// one read of its re-poll, and the share of epoll_wait calls that report
// those re-polls. It is one thread around one edge-triggered epoll set
// (each connection registered once, never re-armed), with no allocation
// per request, no HTTP parsing beyond finding the end of a request, no
// timers and no holds: a poll waits until the next publish however long
// that is. Nothing here is a broker; it exists to be measured next to one
// (see Floor).
//
// It runs as a child process of the load tester, so that its CPU time,
// memory and system calls are its own: the load tester re-executes
// itself with $PUSHUP_FLOOR_SERVER (testbed.FloorServerEnv) set to the address to listen on, and
// this package's init serves instead of returning to main.

func init() {
	addr := os.Getenv(testbed.FloorServerEnv)
	if addr == "" {
		return
	}
	if err := serveFloor(addr); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// floorConn is the state of one accepted connection, indexed by fd.
type floorConn struct {
	open   bool
	parked bool   // its GET /sub has been read and not yet answered
	in     []byte // an incomplete request, nil for almost every read
}

// floorServer is the server's state; only its loop's thread touches it.
type floorServer struct {
	ep, ln  int
	conns   []floorConn
	parked  []int32 // fds parked since the last publish (closed ones too)
	nParked int     // how many of them are still open
	answer  []byte  // the answer being written, rebuilt per publish
	buf     []byte  // the read buffer every connection shares
	events  []unix.EpollEvent
}

func serveFloor(addr string) error {
	runtime.LockOSThread()
	host, portText, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: port}
	sa.Addr = host
	if err := unix.Bind(ln, sa); err != nil {
		return err
	}
	if err := unix.Listen(ln, 4096); err != nil {
		return err
	}
	bound, err := unix.Getsockname(ln)
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(ln)}); err != nil {
		return err
	}
	// SIGTERM ends the process: the kernel closes every socket.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-term; os.Exit(0) }()

	b4 := bound.(*unix.SockaddrInet4)
	fmt.Fprintf(os.Stderr, "floor listening addr=%d.%d.%d.%d:%d\n", b4.Addr[0], b4.Addr[1], b4.Addr[2], b4.Addr[3], b4.Port)
	s := &floorServer{ep: ep, ln: ln, buf: make([]byte, 4096), events: make([]unix.EpollEvent, 512)}
	return s.loop()
}

// splitHostPort parses an IPv4 host:port.
func splitHostPort(addr string) (ip [4]byte, port string, err error) {
	i := bytes.LastIndexByte([]byte(addr), ':')
	if i < 0 {
		return ip, "", fmt.Errorf("%w: floor address %q: want ipv4:port", ErrInvalidConfig, addr)
	}
	parts := bytes.Split([]byte(addr[:i]), []byte("."))
	if len(parts) != 4 {
		return ip, "", fmt.Errorf("%w: floor address %q: want ipv4:port", ErrInvalidConfig, addr)
	}
	for k, p := range parts {
		v, err := strconv.Atoi(string(p))
		if err != nil || v < 0 || v > 255 {
			return ip, "", fmt.Errorf("%w: floor address %q: want ipv4:port", ErrInvalidConfig, addr)
		}
		ip[k] = byte(v)
	}
	return ip, addr[i+1:], nil
}

func (s *floorServer) loop() error {
	for {
		n, err := unix.EpollWait(s.ep, s.events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range s.events[:n] {
			fd := int(ev.Fd)
			if fd == s.ln {
				s.accept()
				continue
			}
			s.readable(fd, ev.Events)
		}
	}
}

func (s *floorServer) accept() {
	for {
		fd, _, err := unix.Accept4(s.ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: drained (edge-triggered); anything else: the next edge retries
		}
		for fd >= len(s.conns) {
			s.conns = append(s.conns, floorConn{})
		}
		s.conns[fd] = floorConn{open: true}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		if unix.EpollCtl(s.ep, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
			s.close(fd)
		}
	}
}

// rawRead and rawWrite are read(2) and write(2) without the Go
// scheduler's bookkeeping: they never block on these non-blocking
// sockets, and the floor should not pay for what C servers do not.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// readable reads what arrived on fd. A read shorter than the buffer has
// drained the socket: anything arriving later raises a new edge, so one
// read per wake is enough for a re-poll.
func (s *floorServer) readable(fd int, events uint32) {
	c := &s.conns[fd]
	if !c.open {
		return
	}
	for {
		n, errno := rawRead(fd, s.buf)
		if errno == unix.EAGAIN {
			break
		}
		if errno != 0 || n == 0 {
			s.close(fd)
			return
		}
		data := s.buf[:n]
		if c.in != nil {
			c.in = append(c.in, data...)
			data = c.in
		}
		rest := s.requests(fd, data)
		if !s.conns[fd].open {
			return
		}
		c = &s.conns[fd]
		if len(rest) > 0 {
			c.in = append(c.in[:0:0], rest...)
		} else {
			c.in = nil
		}
		if n < len(s.buf) {
			break
		}
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.close(fd)
	}
}

var (
	floorSubscribePath = []byte("GET /sub ")
	floorPublishPath   = []byte("POST /pub ")
	floorWaitingPath   = []byte("GET /waiting ")
	headerEnd          = []byte("\r\n\r\n")
	contentLength      = []byte("\r\ncontent-length:")
)

// requests handles every whole request in data and returns what is left
// (an incomplete request).
func (s *floorServer) requests(fd int, data []byte) []byte {
	for len(data) > 0 {
		end := bytes.Index(data, headerEnd)
		if end < 0 {
			return data
		}
		head, body := data[:end+4], data[end+4:]
		switch {
		case bytes.HasPrefix(head, floorSubscribePath):
			data = body
			if !s.conns[fd].parked {
				s.conns[fd].parked = true
				s.parked = append(s.parked, int32(fd))
				s.nParked++
			}
		case bytes.HasPrefix(head, floorWaitingPath):
			data = body
			s.reply(fd, "200 OK", strconv.AppendInt(nil, int64(s.nParked), 10))
		case bytes.HasPrefix(head, floorPublishPath):
			size, ok := floorContentLength(head)
			if !ok {
				s.reply(fd, "400 Bad Request", []byte("no content-length"))
				s.close(fd)
				return nil
			}
			if len(body) < size {
				return data
			}
			s.publish(body[:size])
			s.reply(fd, "201 Created", nil)
			data = body[size:]
		default:
			s.reply(fd, "404 Not Found", nil)
			s.close(fd)
			return nil
		}
	}
	return nil
}

// floorContentLength finds a Content-Length header in head, any case.
func floorContentLength(head []byte) (int, bool) {
	lower := bytes.ToLower(head)
	i := bytes.Index(lower, contentLength)
	if i < 0 {
		return 0, false
	}
	v := lower[i+len(contentLength):]
	v = v[:bytes.IndexByte(v, '\r')]
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	return n, err == nil && n >= 0
}

// publish writes one answer, the same bytes, to every parked connection:
// a status line, the one header HTTP/1.1 needs to frame it, and data.
func (s *floorServer) publish(data []byte) {
	s.answer = append(s.answer[:0], "HTTP/1.1 200 OK\r\nContent-Length: "...)
	s.answer = strconv.AppendInt(s.answer, int64(len(data)), 10)
	s.answer = append(s.answer, "\r\n\r\n"...)
	s.answer = append(s.answer, data...)
	// Nothing is read, so nothing parks, while this loop runs.
	for _, fd32 := range s.parked {
		fd := int(fd32)
		if !s.conns[fd].open || !s.conns[fd].parked {
			continue
		}
		s.conns[fd].parked = false
		s.nParked--
		// A short write would need EPOLLOUT and a queue; an answer this
		// small fits an idle socket's send buffer, so a connection that
		// cannot take it whole is broken and closed (the client counts it).
		if n, errno := rawWrite(fd, s.answer); errno != 0 || n != len(s.answer) {
			s.close(fd)
		}
	}
	s.parked = s.parked[:0]
}

func (s *floorServer) reply(fd int, status string, body []byte) {
	var b []byte
	b = append(b, "HTTP/1.1 "+status+"\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	if n, errno := rawWrite(fd, b); errno != 0 || n != len(b) {
		s.close(fd)
	}
}

func (s *floorServer) close(fd int) {
	if !s.conns[fd].open {
		return
	}
	if s.conns[fd].parked {
		s.nParked--
	}
	s.conns[fd] = floorConn{}
	_ = unix.Close(fd) // closing removes it from the epoll set
}
