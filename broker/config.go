package broker

import (
	"fmt"
	"time"

	"github.com/pushuphq/pushup/channel"
)

// Config configures a Broker. A Config is copied by New and not modified
// afterwards.
type Config struct {
	// Channel bounds each channel's message cache (age and count).
	Channel channel.Config
	// ChannelTTL is how long a channel lives with no publication and no
	// subscriber before it expires and its memory is freed. It applies to
	// channels created implicitly or without a ttl. One hour outlives any
	// long-poll gap by far while still reclaiming abandoned channels.
	ChannelTTL time.Duration
	// MaxChannelTTL is the longest ttl a create or renew may ask for.
	// Seven days: longer-lived channels should be renewed, so the broker
	// never holds a forgotten channel for weeks.
	MaxChannelTTL time.Duration
	// ImplicitChannels makes publish and subscribe create channels that do
	// not exist (including ones closed earlier). When false they fail with
	// ErrChannelNotFound and channels must be created explicitly.
	ImplicitChannels bool
	// MaxChannels caps the number of channels, so a flood of implicit
	// creations cannot exhaust memory; creating beyond it fails with
	// ErrChannelLimit. Zero means no limit.
	MaxChannels int
	// MaxChannelsPerRequest caps the channels one publication or one
	// subscription may name.
	MaxChannelsPerRequest int
	// MaxBatch caps the publications in one batch publish.
	MaxBatch int
	// MaxResponseMessages caps the messages in one subscribe answer; the
	// answer then says More and the client polls again at once.
	MaxResponseMessages int
	// TimeoutJitter shortens each subscription's wait by a random part of
	// up to this fraction of its timeout (0.1: a 30s wait ends between 27s
	// and 30s), so a crowd that subscribed together does not time out and
	// reconnect together. It never lengthens a wait: proxies in front
	// must be able to rely on the maximum. 0 disables it; at most 0.5.
	TimeoutJitter float64
	// LogEvents is how many recent events the broker keeps per origin so
	// it can give a peer that missed some of them (after a partition, a
	// dropped packet, a full queue) what it missed. Older events, and
	// events older than the message TTL, are dropped; a peer that missed
	// those learns its readers were truncated. Each kept event costs a
	// slot of about 80 bytes (the messages are shared with the caches).
	LogEvents int
	// PendingEvents caps the events of one origin held because they
	// arrived after a gap, waiting for the gap to be repaired; beyond it
	// they are dropped and fetched again by the repair.
	PendingEvents int
	// MaxCacheBytes bounds the cached message bytes over all channels
	// (each message's encoding once per channel holding it). Beyond it the
	// oldest messages are evicted first and their readers get truncated;
	// a single publication larger than the whole budget is refused with
	// ErrTooLarge. The event log kept for repairs is held to the same
	// bound. Zero: no bound but the per-channel ones. pushupd's default
	// is 1 GiB (see DefaultMaxCacheBytes).
	MaxCacheBytes int64
	// MaxAnswerBytes caps the message bytes of one subscribe answer; the
	// answer then says More and the client polls again at once, so a
	// since=0 poll of a large cache is not built (and held per waiting
	// connection) whole. An answer always carries at least one message.
	// Zero: only MaxResponseMessages bounds it. 4 MiB by default.
	MaxAnswerBytes int64
	// MaxIdempotencyKeys caps the idempotency keys remembered (each for
	// the message TTL); beyond it the oldest are forgotten first. A key
	// costs its length plus about 100 bytes: 100,000 keys stay around
	// 15 MiB while covering 160 keyed publications a second for the
	// default 10 minute TTL. 0 remembers none (keys are then ignored).
	MaxIdempotencyKeys int
	// OnCommit, if set, is called with every event this broker's own
	// origin commits (publications, channel renewals and closes), in
	// commit order, under the commit lock: it must not block and must not
	// call the broker. The cluster uses it to replicate.
	OnCommit func(Event)
	// Journal, if set, persists every committed event (see Journal and
	// Recover); nil keeps everything in memory only.
	Journal Journal
	// Origin identifies this broker's boot in message ids and cursors. Zero
	// picks a random one, which is what a node should do at every start.
	Origin uint64
	// Now is the wall clock. Nil means time.Now; tests inject their own.
	Now func() time.Time
}

// DefaultMaxCacheBytes is the default cache budget: a fixed 1 GiB rather
// than a share of physical memory, because a container sees the host's
// memory, not its own limit, and one setting should mean the same on a
// laptop and a server. 1 GiB holds a million 1 KiB messages, far above
// what the per-channel bounds let a typical deployment keep, so it bites
// only on a flood; set -max-cache-bytes to about a quarter of the memory
// the process may use.
const DefaultMaxCacheBytes = 1 << 30

// DefaultConfig returns the configuration pushupd starts with.
func DefaultConfig() Config {
	return Config{
		Channel:               channel.DefaultConfig(),
		ChannelTTL:            time.Hour,
		MaxChannelTTL:         7 * 24 * time.Hour,
		ImplicitChannels:      true,
		MaxChannels:           1_000_000,
		MaxChannelsPerRequest: 64,
		MaxBatch:              1000,
		MaxResponseMessages:   1000,
		TimeoutJitter:         0.1,
		LogEvents:             100_000,
		PendingEvents:         100_000,
		MaxIdempotencyKeys:    100_000,
		MaxCacheBytes:         DefaultMaxCacheBytes,
		MaxAnswerBytes:        4 << 20,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if err := c.Channel.Validate(); err != nil {
		return err
	}
	switch {
	case c.ChannelTTL <= 0:
		return fmt.Errorf("broker: ChannelTTL must be positive, got %s", c.ChannelTTL)
	case c.MaxChannelTTL < c.ChannelTTL:
		return fmt.Errorf("broker: MaxChannelTTL (%s) must be at least ChannelTTL (%s)", c.MaxChannelTTL, c.ChannelTTL)
	case c.MaxChannels < 0:
		return fmt.Errorf("broker: MaxChannels must not be negative, got %d", c.MaxChannels)
	case c.MaxChannelsPerRequest < 1:
		return fmt.Errorf("broker: MaxChannelsPerRequest must be at least 1, got %d", c.MaxChannelsPerRequest)
	case c.MaxBatch < 1:
		return fmt.Errorf("broker: MaxBatch must be at least 1, got %d", c.MaxBatch)
	case c.TimeoutJitter < 0 || c.TimeoutJitter > 0.5:
		return fmt.Errorf("broker: TimeoutJitter must be between 0 and 0.5, got %g", c.TimeoutJitter)
	case c.MaxAnswerBytes < 0:
		return fmt.Errorf("broker: MaxAnswerBytes must not be negative, got %d", c.MaxAnswerBytes)
	case c.MaxCacheBytes < 0:
		return fmt.Errorf("broker: MaxCacheBytes must not be negative, got %d", c.MaxCacheBytes)
	case c.MaxIdempotencyKeys < 0:
		return fmt.Errorf("broker: MaxIdempotencyKeys must not be negative, got %d", c.MaxIdempotencyKeys)
	case c.LogEvents < 0 || c.PendingEvents < 0:
		return fmt.Errorf("broker: LogEvents and PendingEvents must not be negative")
	case c.MaxResponseMessages < 1:
		return fmt.Errorf("broker: MaxResponseMessages must be at least 1, got %d", c.MaxResponseMessages)
	}
	return nil
}
