package api

import (
	"fmt"
	"time"
)

// SSEConfig configures GET /v1/events, the server-sent events stream.
type SSEConfig struct {
	// Heartbeat is how long a stream may stay silent: after this long
	// without an event the server writes a comment line, so proxies and
	// load balancers that close idle connections (HAProxy's "timeout
	// server", 60 s in many setups) keep it. 15 s sits well below the
	// usual limits.
	Heartbeat time.Duration
	// MaxLifetime is the longest a stream stays open. Each stream ends at
	// a random time between 80% and 100% of it, so the reconnects it causes
	// spread out, and a load balancer gets to move streams onto nodes that
	// joined since. The client resumes from its last event id: nothing is
	// lost. 5 minutes costs a reconnect per stream per ~4.5 minutes.
	MaxLifetime time.Duration
	// Retry is sent as the stream's "retry:" field: how long a browser's
	// EventSource waits before reconnecting after the stream ends.
	Retry time.Duration
}

// DefaultSSEConfig returns the stream settings pushupd starts with.
func DefaultSSEConfig() SSEConfig {
	return SSEConfig{
		Heartbeat:   15 * time.Second,
		MaxLifetime: 5 * time.Minute,
		Retry:       2 * time.Second,
	}
}

// Validate reports stream settings that cannot work.
func (c SSEConfig) Validate() error {
	switch {
	case c.Heartbeat <= 0:
		return fmt.Errorf("api: SSE heartbeat must be positive, got %s", c.Heartbeat)
	case c.MaxLifetime <= 0:
		return fmt.Errorf("api: SSE max lifetime must be positive, got %s", c.MaxLifetime)
	case c.Retry <= 0:
		return fmt.Errorf("api: SSE retry must be positive, got %s", c.Retry)
	}
	return nil
}

// lifetimeJitter is the part of MaxLifetime a stream's lifetime may fall
// short of it, at random: 20% spreads the reconnects of streams opened
// together (after a node restart) over a minute of a 5-minute lifetime.
const lifetimeJitter = 0.2
