package loadtest

import (
	"errors"
	"io"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrorKind classifies a subscriber's connection error.
type ErrorKind int

// Error kinds, in the order reports list them.
const (
	// KindDial: the TCP connection could not be established.
	KindDial ErrorKind = iota
	// KindWrite: writing a request failed.
	KindWrite
	// KindRead: reading a response failed (reset, broken pipe, ...).
	KindRead
	// KindTimeout: a dial, write or read passed its deadline; for a long
	// poll, the answer did not come within the hold plus the read slack.
	KindTimeout
	// KindClosed: the server closed the connection before the response
	// began, or in the middle of it.
	KindClosed
	// KindStatus: the server answered with a status other than 200.
	// Reports break these down by code ("status_503").
	KindStatus
	// KindProtocol: the response was not HTTP/1.x or not the documented
	// JSON answer.
	KindProtocol
	numKinds
)

var kindNames = [numKinds]string{"dial", "write", "read", "timeout", "closed", "status", "protocol"}

// String returns the kind's name as used in reports.
func (k ErrorKind) String() string {
	if k < 0 || k >= numKinds {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// classify picks the kind of err, which happened while doing op (KindDial,
// KindWrite or KindRead). A timeout is a timeout whatever the step.
func classify(op ErrorKind, err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case op == KindDial || op == KindWrite:
		return op
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return KindClosed
	case errors.Is(err, ErrMalformedResponse):
		return KindProtocol
	}
	return op
}

// errorCounter counts errors by kind, and statuses by code, from many
// goroutines.
type errorCounter struct {
	kinds    [numKinds]atomic.Int64
	mu       sync.Mutex
	statuses map[int]int64
}

func (c *errorCounter) add(k ErrorKind) { c.kinds[k].Add(1) }

func (c *errorCounter) status(code int) {
	c.kinds[KindStatus].Add(1)
	c.mu.Lock()
	if c.statuses == nil {
		c.statuses = map[int]int64{}
	}
	c.statuses[code]++
	c.mu.Unlock()
}

// total returns the number of errors of every kind.
func (c *errorCounter) total() int64 {
	var n int64
	for i := range c.kinds {
		n += c.kinds[i].Load()
	}
	return n
}

// snapshot returns the non-zero counts by name: the kinds, plus
// "status_<code>" for each unexpected status.
func (c *errorCounter) snapshot() map[string]int64 {
	out := map[string]int64{}
	for k := range numKinds {
		if n := c.kinds[k].Load(); n > 0 {
			out[k.String()] = n
		}
	}
	c.mu.Lock()
	statuses := maps.Clone(c.statuses)
	c.mu.Unlock()
	for code, n := range statuses {
		out["status_"+strconv.Itoa(code)] = n
	}
	return out
}
