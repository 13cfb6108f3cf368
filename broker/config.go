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
	case c.LogEvents < 0 || c.PendingEvents < 0:
		return fmt.Errorf("broker: LogEvents and PendingEvents must not be negative")
	case c.MaxResponseMessages < 1:
		return fmt.Errorf("broker: MaxResponseMessages must be at least 1, got %d", c.MaxResponseMessages)
	}
	return nil
}
