package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushuphq/pushup/broker"
)

// streamProto is the Upgrade token of a replication stream.
const streamProto = "pushup-events/1"

// maxFrame bounds one stream frame: a batch of events. It is well above a
// full batch of the largest messages a publisher may send.
const maxFrame = 256 << 20

// sender streams this node's events to one peer over one persistent
// connection: FIFO, batched, reconnecting with backoff. Its queue is
// bounded: when the peer cannot keep up the oldest events are dropped and
// counted, and the peer repairs the gap from this node's log.
type sender struct {
	n    *Node
	peer string
	url  string

	mu    sync.Mutex
	queue []broker.Event
	conn  net.Conn // the live stream, closed by stop to unblock a write
	kick  chan struct{}
	ctx   context.Context // cancelled by stop: ends a dial in progress
	stop  context.CancelFunc
	done  chan struct{}

	connected                 atomic.Bool
	sent, dropped, reconnects atomic.Uint64
	lastErr                   atomic.Pointer[string]
}

func newSender(n *Node, peer, u string) *sender {
	s := &sender{n: n, peer: peer, url: u, kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.ctx, s.stop = context.WithCancel(context.Background())
	n.wg.Go(func() {
		defer close(s.done)
		s.run()
	})
	return s
}

// push queues events for the peer, dropping the oldest beyond QueueSize.
func (s *sender) push(evs []broker.Event) {
	s.mu.Lock()
	s.queue = append(s.queue, evs...)
	if over := len(s.queue) - s.n.cfg.QueueSize; over > 0 {
		clear(s.queue[:over])
		s.queue = s.queue[over:]
		s.dropped.Add(uint64(over))
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// close stops the sender without waiting: it runs in memberlist's
// callbacks, which must not block. A write or dial in progress is cut
// short. The Node's WaitGroup waits for the goroutine.
func (s *sender) close() {
	s.stop()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.mu.Unlock()
}

func (s *sender) run() {
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		conn, err := dialStream(s.ctx, s.url, s.n.cfg.Key, s.n.cfg.NodeName)
		if err != nil {
			msg := err.Error()
			s.lastErr.Store(&msg)
			s.n.log.Debug("stream to peer failed; retrying", "peer", s.peer, "in", backoff, "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			s.reconnects.Add(1)
			continue
		}
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		if s.ctx.Err() != nil { // stopped while connecting
			conn.Close()
			return
		}
		backoff = 100 * time.Millisecond
		s.connected.Store(true)
		err = s.stream(conn)
		s.connected.Store(false)
		conn.Close()
		if err == nil || s.ctx.Err() != nil {
			return // stopped
		}
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.n.log.Debug("stream to peer broke; reconnecting", "peer", s.peer, "err", err)
	}
}

// stream writes batches until stopped (nil) or the connection fails. A
// batch that failed stays at the head of the queue and is sent again:
// the peer ignores what it already has.
func (s *sender) stream(conn net.Conn) error {
	w := bufio.NewWriterSize(conn, 64<<10)
	var frame []byte
	for {
		s.mu.Lock()
		n := min(len(s.queue), s.n.cfg.BatchSize)
		batch := s.queue[:n:n]
		s.mu.Unlock()
		if n == 0 {
			select {
			case <-s.ctx.Done():
				return nil
			case <-s.kick:
				continue
			}
		}
		frame = encodeFrame(frame[:0], batch)
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(frame); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		s.mu.Lock()
		// The queue only grows at the tail or loses its head to
		// overflow; drop what was sent, if overflow has not already.
		sent := min(n, len(s.queue))
		clear(s.queue[:sent])
		s.queue = s.queue[sent:]
		s.mu.Unlock()
		s.sent.Add(uint64(n))
	}
}

// encodeFrame appends a length-prefixed event batch.
func encodeFrame(dst []byte, evs []broker.Event) []byte {
	msg := encodeEvents(evs)
	dst = binary.AppendUvarint(dst, uint64(len(msg)))
	return append(dst, msg...)
}

// dialStream opens a replication stream to a peer's HTTP port: an HTTP/1.1
// Upgrade, then raw frames.
func dialStream(ctx context.Context, base, key, from string) (net.Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	auth := ""
	if key != "" {
		auth = "Authorization: Bearer " + key + "\r\n"
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(conn, "POST /internal/v1/stream HTTP/1.1\r\nHost: %s\r\n%sConnection: Upgrade\r\nUpgrade: %s\r\nX-Pushup-Node: %s\r\nContent-Length: 0\r\n\r\n",
		u.Host, auth, streamProto, from)
	if err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("cluster: peer refused the stream: %s", resp.Status)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// serveStream receives a peer's replication stream until it ends.
func (n *Node) serveStream(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != streamProto {
		http.Error(w, "want Upgrade: "+streamProto, http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	from := r.Header.Get("X-Pushup-Node")
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+streamProto+"\r\n\r\n"); err != nil {
		return
	}
	// Close the stream when the node stops, so this goroutine ends.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-n.stop:
			conn.Close()
		case <-stopped:
		}
	}()
	br := rw.Reader
	var buf []byte
	for {
		size, err := binary.ReadUvarint(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !n.closing.Load() {
				n.log.Debug("stream from peer ended", "peer", from, "err", err)
			}
			return
		}
		if size > maxFrame {
			n.log.Warn("stream frame too large; closing", "peer", from, "bytes", size)
			return
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		evs, err := decodeEvents(buf)
		if err != nil {
			n.log.Warn("malformed stream frame; closing", "peer", from, "err", err)
			return
		}
		n.receive(evs)
	}
}
