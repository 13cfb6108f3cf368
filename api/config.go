package api

import (
	"crypto"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushuphq/pushup/cluster"
)

// Config configures the HTTP front.
type Config struct {
	// Model is how waiting subscribe requests are held: ModelEvent (no
	// goroutine per waiting request; Linux only, elsewhere it falls back
	// to ModelGoroutine), ModelGoroutine or ModelThread. In ModelEvent,
	// requests over TLS or HTTP/2 use the goroutine path: they cannot be
	// hijacked.
	Model Model
	// MaxThreads is, in ModelThread, the process's limit on OS threads:
	// New raises the Go runtime's limit (runtime/debug.SetMaxThreads,
	// 10,000 by default) to it if it is lower, and never lowers it. At
	// most MaxThreads less a margin for the runtime's own threads (64 +
	// GOMAXPROCS) requests wait at once; more, or more than the OS limits
	// allow (kernel.threads-max, kernel.pid_max, the pids cgroup,
	// RLIMIT_NPROC), are refused with 503 thread_limit, because Go ends
	// the whole process when it cannot have a thread. Other models ignore
	// it.
	MaxThreads int
	// DefaultTimeout is how long a subscribe waits when the request names
	// no timeout. 30 seconds sits well below the 60s idle limits common in
	// proxies and load balancers.
	DefaultTimeout time.Duration
	// MaxTimeout is the longest timeout a subscribe may ask for; longer
	// asks are rejected with 400, not silently shortened. Proxies in front
	// must allow at least this plus a few seconds (deploy/haproxy does).
	MaxTimeout time.Duration
	// MaxBodyBytes caps a request body; larger bodies get 413.
	MaxBodyBytes int64
	// PublisherKey, when set, is required as "Authorization: Bearer <key>"
	// on publish and channel endpoints. Who may subscribe is decided by
	// PrivateChannels and subscriber tokens instead.
	PublisherKey string
	// PublisherKeys are more publisher keys, each accepted like
	// PublisherKey: list the new key next to the old one, move publishers
	// over, then drop the old one.
	PublisherKeys []string
	// PrivateChannels are the channels a subscribe needs a token for:
	// names, and prefixes ending in "*" ("user:*"; "*" alone: every
	// channel). Empty: every channel is public, as before tokens existed.
	PrivateChannels []string
	// SubscriberKeys are HS256 secrets (at least 32 bytes) that verify
	// subscriber tokens. Several may be listed so a key can be rotated:
	// a token verifies if any key verifies it.
	SubscriberKeys [][]byte
	// SubscriberPublicKeys verify RS256, ES256 (P-256) and EdDSA (Ed25519)
	// subscriber tokens, so only the application's backend holds the
	// signing key. Listed with SubscriberKeys, any may verify a token.
	SubscriberPublicKeys []crypto.PublicKey
	// SubscriberCookie, when set, is a cookie name a subscribe may carry
	// its token in (for EventSource, which cannot send headers, on the
	// application's own domain). The Authorization header and the token
	// query parameter are always looked at first.
	SubscriberCookie string
	// MaxConnsPerIP caps the subscribe requests one client address may
	// have waiting at once; more get 429 with Retry-After. Zero: no cap.
	// Behind a proxy, set TrustedProxies, or every client shares the
	// proxy's address.
	MaxConnsPerIP int
	// TrustedProxies are the peers whose X-Forwarded-For is believed: for
	// a request from one of them the client address is the last address
	// in X-Forwarded-For that is not itself a trusted proxy. Requests from
	// elsewhere are judged by their own peer address, whatever they claim.
	TrustedProxies []netip.Prefix
	// Now is the clock subscriber tokens are checked against; nil means
	// time.Now. Tests set it.
	Now func() time.Time
	// CORSOrigins lists the origins allowed to call subscribe from a
	// browser; "*" allows any. Publisher endpoints never send CORS headers,
	// so browsers on other origins cannot publish.
	CORSOrigins []string
	// ReadHeaderTimeout cuts off clients that are slow to send headers
	// (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. It does
	// not limit how long a subscribe waits.
	ReadTimeout time.Duration
	// WriteTimeout is how long a client may stall reading its answer: a
	// client that takes no bytes for this long is dropped (and counted).
	// It does not limit how long a subscribe waits, nor a large answer a
	// client keeps reading.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle between requests.
	IdleTimeout time.Duration
	// Plugins are applications served beside the API under paths of
	// their own (the Q&A demo, web/demo, is one); the index at GET /
	// names them. None by default.
	Plugins []Plugin
	// MaxConns is how many client connections may be open before new ones
	// are served only for /healthz (anything else gets 503 overloaded with
	// Retry-After, and the connection closes), so a process near its
	// open-file limit still answers its health checks; a few more past it
	// get the 503 without being read. 0 derives it from the open-file
	// limit (RLIMIT_NOFILE), less a tenth kept for everything else.
	MaxConns int
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// SSE configures the server-sent events stream, GET /v1/events.
	SSE SSEConfig
	// Cluster, when set, is this node's cluster membership (a
	// cluster.Node): its node-to-node endpoints are served under
	// /internal/v1/, its state at GET /v1/cluster, and the node refuses
	// API requests with 503 until it is ready (has restored a peer's
	// state).
	Cluster Cluster
	// DrainSpread is how long Shutdown takes to answer the waiting
	// subscribers (see broker.Drain): spread evenly, each with a jittered
	// retry hint. Zero answers them all at once.
	DrainSpread time.Duration
}

// DefaultConfig returns the configuration pushupd starts with.
func DefaultConfig() Config {
	return Config{
		Model:             ModelEvent,
		MaxThreads:        10_000, // Go's own default
		DefaultTimeout:    30 * time.Second,
		MaxTimeout:        120 * time.Second,
		MaxBodyBytes:      1 << 20,
		CORSOrigins:       []string{"*"},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		SSE:               DefaultSSEConfig(),
	}
}

// Validate reports a configuration that cannot work. Its messages name
// the Go fields; pushupd names its flags instead.
func (c Config) Validate() error {
	if _, err := ParseModel(string(c.Model)); err != nil {
		return err
	}
	switch {
	case c.Model == ModelThread && c.MaxThreads <= threadMargin():
		return fmt.Errorf("api: MaxThreads (%d) leaves no thread for waiting requests: the runtime keeps %d", c.MaxThreads, threadMargin())
	case c.MaxTimeout <= 0:
		return fmt.Errorf("api: MaxTimeout must be positive, got %s", c.MaxTimeout)
	case c.DefaultTimeout < 0 || c.DefaultTimeout > c.MaxTimeout:
		return fmt.Errorf("api: DefaultTimeout (%s) must be between 0 and MaxTimeout (%s)", c.DefaultTimeout, c.MaxTimeout)
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("api: MaxBodyBytes must be positive, got %d", c.MaxBodyBytes)
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return fmt.Errorf("api: ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout must be positive")
	}
	if len(c.PrivateChannels) > 0 && len(c.SubscriberKeys) == 0 && len(c.SubscriberPublicKeys) == 0 {
		return fmt.Errorf("api: PrivateChannels need a subscriber key (SubscriberKeys or SubscriberPublicKeys) to verify tokens")
	}
	if c.MaxConnsPerIP < 0 {
		return fmt.Errorf("api: MaxConnsPerIP must not be negative, got %d", c.MaxConnsPerIP)
	}
	if err := c.SSE.Validate(); err != nil {
		return err
	}
	return nil
}

// Cluster is what the HTTP front needs from cluster membership.
type Cluster interface {
	// Ready reports whether the node has its state and serves.
	Ready() bool
	// Handler serves the node-to-node endpoints under /internal/v1/.
	Handler() http.Handler
	// Collector exports the cluster's metrics.
	Collector() prometheus.Collector
	// Status is the body of GET /v1/cluster.
	Status() cluster.Status
}
