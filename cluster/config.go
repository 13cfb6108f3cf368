package cluster

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Mode is how a node's events reach the other nodes.
type Mode string

const (
	// ModeUnicast streams events to each peer directly.
	ModeUnicast Mode = "unicast"
	// ModeGossip spreads events epidemically through memberlist.
	ModeGossip Mode = "gossip"
)

// ParseMode parses a -replication flag value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeUnicast, ModeGossip:
		return m, nil
	}
	return "", fmt.Errorf("cluster: unknown replication mode %q (want %q or %q)", s, ModeUnicast, ModeGossip)
}

// Config configures a Node.
type Config struct {
	// NodeName must be unique in the cluster; the host name by default.
	NodeName string
	// Bind is the host:port memberlist listens on (TCP and UDP).
	Bind string
	// Advertise is the host:port other nodes reach memberlist at; empty
	// means Bind (with the host filled in if Bind's is unspecified).
	Advertise string
	// HTTP is the base URL other nodes reach this node's HTTP API at,
	// e.g. "http://10.0.0.5:8080", for replication streams, repairs and
	// snapshots.
	HTTP string
	// Join lists host:port addresses of nodes to join; empty starts a new
	// cluster.
	Join []string
	// Mode is the replication mode.
	Mode Mode
	// Key, when set, authenticates node-to-node HTTP traffic and encrypts
	// memberlist's (with a key derived from it). Every node needs the
	// same. Without it anyone who can reach a node's HTTP port can inject
	// events: set it in production.
	Key string
	// JoinTimeout bounds how long a starting node tries to join and fetch
	// a snapshot; after it, a node with no reachable peer starts alone.
	JoinTimeout time.Duration
	// QueueSize caps, per peer, the events waiting to be streamed
	// (unicast). An overflow drops the oldest and is counted; the peer
	// repairs the gap.
	QueueSize int
	// BatchSize caps the events sent in one stream frame (unicast).
	BatchSize int
	// GossipInterval is how often memberlist gossips; shorter spreads
	// events faster for more packets. 50ms suits a LAN.
	GossipInterval time.Duration
	// GossipPayload is the largest encoded event sent by gossip; larger
	// ones are sent to every node reliably. memberlist's UDP packets
	// are 1,400 bytes.
	GossipPayload int
	// AnnounceInterval is how often a node announces its own position.
	AnnounceInterval time.Duration
	// PushPullInterval is how often memberlist exchanges full state
	// (every position each node holds) between random pairs.
	PushPullInterval time.Duration
	// RepairAfter is how long a node waits for a missing event to arrive
	// by itself before pulling it from a peer.
	RepairAfter time.Duration
	// ProbeInterval and ProbeTimeout tune memberlist's failure detector:
	// a node is suspected after a failed probe and declared dead a few
	// probe intervals later.
	ProbeInterval, ProbeTimeout time.Duration
	// LeaveTimeout bounds the graceful leave on shutdown.
	LeaveTimeout time.Duration
	// RejoinInterval is how soon a node tries to reach a failed member
	// again (and the Join addresses, when it is alone or in a minority);
	// each round that reaches nobody doubles the wait, up to
	// RejoinMaxInterval. The worst-case healing time after a partition
	// is about RejoinMaxInterval plus a few probe intervals.
	RejoinInterval, RejoinMaxInterval time.Duration
	// ReconnectTimeout is how long a failed member is tried again before
	// it is forgotten (serf's reconnect_timeout).
	ReconnectTimeout time.Duration
}

// DefaultConfig returns settings for a LAN.
func DefaultConfig() Config {
	return Config{
		Mode:             ModeUnicast,
		JoinTimeout:      30 * time.Second,
		QueueSize:        100_000,
		BatchSize:        512,
		GossipInterval:   50 * time.Millisecond,
		GossipPayload:    1024,
		AnnounceInterval: time.Second,
		PushPullInterval: 10 * time.Second,
		RepairAfter:      time.Second,
		ProbeInterval:    time.Second,
		ProbeTimeout:     500 * time.Millisecond,
		LeaveTimeout:     5 * time.Second,
		RejoinInterval:   time.Second,
		// Small next to the 10 s a Join to a cut-off address takes to
		// time out: a healed link is found within a few seconds.
		RejoinMaxInterval: 4 * time.Second,
		ReconnectTimeout:  24 * time.Hour,
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("cluster: NodeName is required")
	}
	if _, _, err := splitHostPort(c.Bind); err != nil {
		return fmt.Errorf("cluster: Bind: %w", err)
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("cluster: Advertise: %w", err)
		}
	}
	if c.HTTP == "" {
		return errors.New("cluster: HTTP (this node's base URL for peers) is required")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	switch {
	case c.JoinTimeout <= 0, c.GossipInterval <= 0, c.AnnounceInterval <= 0, c.PushPullInterval <= 0,
		c.RepairAfter <= 0, c.ProbeInterval <= 0, c.ProbeTimeout <= 0, c.LeaveTimeout <= 0,
		c.RejoinInterval <= 0, c.RejoinMaxInterval < c.RejoinInterval, c.ReconnectTimeout <= 0:
		return errors.New("cluster: intervals and timeouts must be positive")
	case c.QueueSize < 1 || c.BatchSize < 1:
		return errors.New("cluster: QueueSize and BatchSize must be at least 1")
	case c.GossipPayload < 64 || c.GossipPayload > 1300:
		return fmt.Errorf("cluster: GossipPayload must be between 64 and 1300 bytes, got %d", c.GossipPayload)
	}
	return nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, port, nil
}

// gossipKey derives memberlist's AES-256 key from the cluster key.
func (c Config) gossipKey() []byte {
	if c.Key == "" {
		return nil
	}
	k := sha256.Sum256([]byte("pushup-memberlist:" + c.Key))
	return k[:]
}
