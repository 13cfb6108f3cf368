package broker

import (
	"fmt"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// MaxIdempotencyKeyLen bounds an idempotency key: long enough for a UUID
// with a prefix or a hash, short enough that keys cannot be a memory lever.
const MaxIdempotencyKeyLen = 255

// ValidIdempotencyKey reports whether k is a usable idempotency key: 1 to
// MaxIdempotencyKeyLen printable ASCII characters (no spaces), what HTTP
// headers carry safely.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// idempotency remembers the message each idempotency key published, for
// as long as the message can be cached (the message TTL), within a count.
// Keys of this node's publications and of replicated ones are both kept,
// so a publisher's retry is recognised on any node. Not safe for
// concurrent use: Broker.commitMu guards it.
type idempotency struct {
	ttl  time.Duration
	max  int
	keys map[string]*channel.Message
	// order is the keys in the order stored, with when, so the oldest
	// are dropped first; a ring over order[head:].
	order []idemEntry
	head  int
}

type idemEntry struct {
	key    string
	stored int64 // Unix ns
}

func newIdempotency(ttl time.Duration, max int) *idempotency {
	return &idempotency{ttl: ttl, max: max, keys: make(map[string]*channel.Message)}
}

// get returns the message key published, if it is still remembered.
func (s *idempotency) get(key string, now time.Time) *channel.Message {
	s.prune(now)
	return s.keys[key]
}

// put remembers that key published m. A key already known keeps its first
// message.
func (s *idempotency) put(key string, m *channel.Message, now time.Time) {
	if s.max == 0 {
		return
	}
	if _, ok := s.keys[key]; ok {
		return
	}
	s.keys[key] = m
	s.order = append(s.order, idemEntry{key, now.UnixNano()})
	s.prune(now)
}

// prune forgets keys older than the TTL, and the oldest beyond the count.
func (s *idempotency) prune(now time.Time) {
	cut := now.Add(-s.ttl).UnixNano()
	for s.head < len(s.order) {
		e := s.order[s.head]
		if e.stored > cut && len(s.keys) <= s.max {
			break
		}
		delete(s.keys, e.key)
		s.order[s.head] = idemEntry{}
		s.head++
	}
	// Compact once the dead prefix is half the slice: amortised O(1).
	if s.head > 0 && s.head >= len(s.order)/2 {
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order = s.order[:n]
		s.head = 0
	}
}

// len returns how many keys are remembered.
func (s *idempotency) len() int { return len(s.keys) }

// idempotencyTTL is how long keys are remembered: the message TTL, or
// when messages have none, the channel TTL.
func (c Config) idempotencyTTL() time.Duration {
	if c.Channel.MessageTTL > 0 {
		return c.Channel.MessageTTL
	}
	return c.ChannelTTL
}

func checkIdempotencyKey(k string) error {
	if k != "" && !ValidIdempotencyKey(k) {
		return fmt.Errorf("%w: 1 to %d printable ASCII characters, no spaces", ErrInvalidIdempotencyKey, MaxIdempotencyKeyLen)
	}
	return nil
}
