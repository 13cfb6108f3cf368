package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ipLimiter counts the waiting subscribes of each client address. It is
// safe for concurrent use; its one lock is a leaf (nothing else is taken
// under it).
type ipLimiter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func newIPLimiter(max int) *ipLimiter {
	return &ipLimiter{max: max, n: make(map[netip.Addr]int)}
}

// acquire takes a slot for a; false when a already holds max.
func (l *ipLimiter) acquire(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[a] >= l.max {
		return false
	}
	l.n[a]++
	return true
}

// release gives back a slot taken by acquire.
func (l *ipLimiter) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[a] <= 1 {
		delete(l.n, a) // the map holds only addresses with waiters
		return
	}
	l.n[a]--
}

// holding returns how many slots a holds, for tests.
func (l *ipLimiter) holding(a netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[a]
}

// limitRetryAfter is the Retry-After of a 429: long enough for a waiting
// poll of the same client to end or be answered in the common case.
const limitRetryAfter = 5 * time.Second

// clientAddr is the address a request is counted against: its peer, or,
// when the peer is a trusted proxy, the nearest untrusted address in
// X-Forwarded-For (read right to left: each proxy appends the address it
// saw, so only the entries our own proxies added can be believed).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	return s.clientAddrOf(r.RemoteAddr, func() []string { return r.Header.Values("X-Forwarded-For") })
}

// clientAddrOf is clientAddr of a peer ("ip:port") and X-Forwarded-For
// lines, asked for only when the peer is a trusted proxy.
func (s *Server) clientAddrOf(peer string, forwardedFor func() []string) netip.Addr {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return netip.Addr{} // counted together: unknown peers share one slot set
	}
	addr := ap.Addr().Unmap()
	if !s.trusted(addr) {
		return addr
	}
	xff := forwardedFor()
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // garbage from a trusted proxy: count the proxy
			}
			a = a.Unmap()
			if !s.trusted(a) {
				return a
			}
			addr = a
		}
	}
	return addr
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// admitWaiter takes a waiting slot for r's client when a per-address cap
// is set. It returns the function that gives the slot back (to run once,
// when the subscribe ends) or a 429 error. w gets Retry-After.
func (s *Server) admitWaiter(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	if s.perIP == nil {
		return nil, nil
	}
	return s.admitAddr(w, s.clientAddr(r))
}

// admitAddr takes a waiting slot for client address a, or answers 429
// with Retry-After in w's headers. s.perIP is not nil.
func (s *Server) admitAddr(w http.ResponseWriter, a netip.Addr) (release func(), err error) {
	if !s.perIP.acquire(a) {
		w.Header().Set("Retry-After", strconv.Itoa(int(limitRetryAfter/time.Second)))
		return nil, &apiError{status: http.StatusTooManyRequests, code: "too_many_connections",
			msg: fmt.Sprintf("this client already has %d subscribe requests waiting, the limit", s.perIP.max)}
	}
	var once sync.Once
	return func() { once.Do(func() { s.perIP.release(a) }) }, nil
}

// setupAccess prepares who may read and write from the configuration.
func (s *Server) setupAccess() error {
	for _, k := range append([]string{s.cfg.PublisherKey}, s.cfg.PublisherKeys...) {
		if k != "" {
			s.publisherKeys = append(s.publisherKeys, []byte("Bearer "+k))
		}
	}
	s.private = newChannelPatterns(s.cfg.PrivateChannels)
	if len(s.cfg.SubscriberKeys) > 0 || len(s.cfg.SubscriberPublicKeys) > 0 {
		now := s.cfg.Now
		if now == nil {
			now = time.Now
		}
		v, err := newTokenVerifier(s.cfg.SubscriberKeys, s.cfg.SubscriberPublicKeys, now)
		if err != nil {
			return err
		}
		s.tokens = v
	}
	if s.cfg.MaxConnsPerIP > 0 {
		s.perIP = newIPLimiter(s.cfg.MaxConnsPerIP)
	}
	return nil
}

// waited reports whether the subscribe handler of r parked its connection
// (event model): its waiting slot is then given back by the broker's OnEnd,
// not when the handler returns.
func waited(r *http.Request) bool {
	m := metaFrom(r.Context())
	return m != nil && m.parked
}
