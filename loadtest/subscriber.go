package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// subscriber is one simulated browser: one TCP connection, one cursor.
// Its fields are owned by its goroutine (run), except conn, which Stop's
// interrupt reads under mu.
type subscriber struct {
	id       int
	p        *Population
	target   target
	dialer   *dialer
	channels []string
	first    subscribeRequest // since=now, timeout=0: takes the position
	poll     subscribeRequest // every later request
	phase    time.Duration    // pull: offset of this subscriber's polls
	r        *receipts

	mu   sync.Mutex
	conn *countingConn

	rr     *responseReader // allocated on first connect, kept across reconnects
	wbuf   []byte
	cursor string
	more   bool // the last answer said "more": poll again at once
}

// answer is a subscribe answer.
type answer struct {
	Messages []struct {
		ID   string          `json:"id"`
		Time int64           `json:"time"`
		Data json.RawMessage `json:"data"`
	} `json:"messages"`
	Cursor    string `json:"cursor"`
	More      bool   `json:"more"`
	Truncated bool   `json:"truncated"`
}

// parseAnswer decodes a subscribe answer body.
func parseAnswer(body []byte) (answer, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%w: subscribe answer: %v", ErrMalformedResponse, err)
	}
	if a.Cursor == "" {
		return a, fmt.Errorf("%w: subscribe answer without a cursor", ErrMalformedResponse)
	}
	return a, nil
}

// run polls until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	defer s.closeConn()
	// Stop must also end a read parked for up to two minutes: on cancel,
	// push the connection's deadline into the past.
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	cfg := &s.p.cfg
	backoff := time.Duration(0)
	next := time.Now().Add(s.phase) // pull: when the next poll is due
	for ctx.Err() == nil {
		if backoff > 0 {
			if !sleep(ctx, backoff) {
				return
			}
		}
		started := s.cursor != ""
		if started && cfg.Mode == ModePull {
			if !sleep(ctx, time.Until(next)) {
				return
			}
		}
		if err := s.roundTrip(ctx, started); err != nil {
			backoff = min(max(2*backoff, cfg.MinBackoff), cfg.MaxBackoff)
			continue
		}
		backoff = 0
		if cfg.Mode == ModePull && s.cursor != "" && !s.more {
			// Keep to the grid of the interval: after a slow answer, skip
			// the polls that are already late instead of bunching them.
			now := time.Now()
			for !next.After(now) {
				next = next.Add(cfg.PollInterval)
			}
		}
	}
}

// fail counts err, of kind, unless it is Stop interrupting the
// subscriber, and returns it.
func (s *subscriber) fail(ctx context.Context, kind ErrorKind, err error) error {
	if ctx.Err() == nil {
		s.p.errors.add(kind)
	}
	return err
}

// roundTrip sends one subscribe request and handles its answer, counting
// any error.
func (s *subscriber) roundTrip(ctx context.Context, started bool) error {
	cfg := &s.p.cfg
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return s.fail(ctx, classify(KindDial, err), err)
		}
	}
	req, since, hold := s.poll, s.cursor, cfg.PollInterval
	if !started {
		req, since, hold = s.first, "now", 0
	}
	if cfg.Mode == ModePull {
		hold = 0
	}
	now := time.Now()
	s.mu.Lock()
	_ = s.conn.SetWriteDeadline(now.Add(cfg.WriteTimeout))
	_ = s.conn.SetReadDeadline(now.Add(hold + cfg.ReadSlack))
	s.mu.Unlock()
	// Checked after arming under mu: either interrupt ran before (and ctx
	// says so now) or it runs after and overrides these deadlines.
	if ctx.Err() != nil {
		return ctx.Err()
	}

	s.wbuf = req.append(s.wbuf[:0], since)
	if _, err := s.conn.Write(s.wbuf); err != nil {
		s.closeConn()
		return s.fail(ctx, classify(KindWrite, err), err)
	}
	s.p.traffic.request(len(s.wbuf))
	s.p.inflight.Add(1)
	before := s.conn.recv
	resp, err := s.rr.read()
	recvAt := time.Now().UnixNano()
	s.p.inflight.Add(-1)
	if err != nil {
		s.closeConn()
		return s.fail(ctx, classify(KindRead, err), err)
	}
	s.p.traffic.response(s.conn.recv - before)
	if resp.Close {
		// The server said so (shutdown, or a proxy): the next request
		// goes over a new connection, with the same cursor.
		defer s.closeConn()
	}
	if resp.Status != 200 {
		s.p.errors.status(resp.Status)
		return fmt.Errorf("%w: %d", ErrUnexpectedStatus, resp.Status)
	}
	a, err := parseAnswer(resp.Body)
	if err != nil {
		return s.fail(ctx, KindProtocol, err)
	}
	if !started {
		// The position is fixed by the server before it answers, so every
		// message sent from now on is after it.
		s.r.startedAt.Store(recvAt)
		s.p.started.Add(1)
	}
	s.record(a, recvAt)
	s.cursor = a.Cursor
	s.more = a.More
	return nil
}

// record accounts for the messages of one answer.
func (s *subscriber) record(a answer, recvAt int64) {
	if a.Truncated {
		s.r.truncated++
	}
	for _, m := range a.Messages {
		s.p.received.Add(1)
		pl, ok := parsePayload(m.Data)
		if !ok {
			s.r.foreign++
			continue
		}
		switch s.r.add(pl, recvAt) {
		case receiptFresh:
			s.p.fresh.Add(1)
		case receiptDuplicate:
			s.p.duplicates.Add(1)
		}
	}
}

func (s *subscriber) connect(ctx context.Context) error {
	nc, err := s.dialer.dial(ctx, s.target.addr)
	if err != nil {
		return err
	}
	cc := &countingConn{Conn: nc, c: &s.p.traffic}
	s.p.traffic.conns.Add(1)
	s.p.connected.Add(1)
	if s.rr == nil {
		s.rr = newResponseReader(cc, s.p.cfg.ReadBufferSize, s.p.cfg.MaxBodyBytes)
	} else {
		s.rr.reset(cc)
	}
	s.mu.Lock()
	s.conn = cc
	s.mu.Unlock()
	return nil
}

func (s *subscriber) closeConn() {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
		s.p.connected.Add(-1)
	}
}

// interrupt ends any I/O in progress; called once ctx is done.
func (s *subscriber) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		_ = s.conn.SetDeadline(time.Unix(1, 0))
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
