package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/cluster"
)

// defaultGCPercent is pushupd's GC target. Its heap is mostly long-lived
// records of waiting subscribers, so Go's default (100: the heap may double
// between collections) mostly buys idle memory; see docs/BENCHMARKS.md
// for the measured trade-off.
const defaultGCPercent = 25

// defaultListen is loopback: a newcomer's "go run ./cmd/pushupd" works
// from the same machine, and a server with no publisher key is not open to
// the network until someone asks for it with -listen :8080 (containers
// do, in the Dockerfile and docker-compose.yml).
const defaultListen = "127.0.0.1:8080"

// envPrefix starts the environment variable of every flag: -max-timeout
// is PUSHUP_MAX_TIMEOUT.
const envPrefix = "PUSHUP_"

// config is everything pushupd needs to start.
type config struct {
	// Cluster is set when the node joins or starts a cluster.
	Cluster         *cluster.Config
	GCPercent       int
	Listen          string
	PprofListen     string
	TLSCert, TLSKey string
	Broker          broker.Config
	API             api.Config
	// Demo serves the Q&A demo (web/demo) beside the API.
	Demo            bool
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	LogFormat       string
	// Durable is the data directory and the drain (see durable.go).
	Durable durableConfig
	// HealthCheck, when set, makes pushupd a health probe instead of a
	// server: it asks this URL (or path on -listen) and exits 0 on 200.
	HealthCheck string
}

// envName returns the environment variable for a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags, with PUSHUP_* environment variables as
// defaults: a flag on the command line wins over its variable, which wins
// over the built-in default. It returns flag.ErrHelp after printing usage
// for -h.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	bc := broker.DefaultConfig()
	ac := api.DefaultConfig()
	c := config{GCPercent: defaultGCPercent, Listen: defaultListen, Broker: bc, API: ac, ShutdownTimeout: 15 * time.Second, LogFormat: "text"}

	fs := flag.NewFlagSet("pushupd", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve HTTP on (host:port)")
	model := fs.String("model", string(ac.Model), "how waiting subscribers are held: event (no goroutine per waiting request; Linux), goroutine, or thread (an OS thread each, the paper's multithreaded baseline)")
	fs.IntVar(&c.API.MaxThreads, "max-threads", ac.MaxThreads, "with -model=thread: the process's OS thread limit (Go's default is 10000); requests that would wait beyond it, less 64+GOMAXPROCS for the runtime, or beyond the OS's limits get 503 thread_limit")
	cc := cluster.DefaultConfig()
	host, _ := os.Hostname()
	nodeName := fs.String("node-name", host, "this node's name in the cluster; must be unique")
	clusterBind := fs.String("cluster-bind", "", "host:port for cluster membership (memberlist, TCP and UDP), e.g. 0.0.0.0:7946; setting it or -join makes this node part of a cluster")
	fs.StringVar(&cc.Advertise, "cluster-advertise", "", "host:port other nodes reach -cluster-bind at (default: -cluster-bind, if its host is an address)")
	join := fs.String("join", "", "comma-separated host:port of cluster nodes to join (their -cluster-bind); empty starts a new cluster")
	mode := fs.String("replication", string(cc.Mode), "how publications reach the other nodes: unicast (a stream to each peer) or gossip (epidemic, through memberlist)")
	fs.StringVar(&cc.Key, "cluster-key", "", "shared secret authenticating node-to-node traffic and encrypting gossip; every node needs the same (prefer the environment variable)")
	fs.StringVar(&cc.HTTP, "advertise-http", "", "base URL other nodes reach this node's HTTP API at, e.g. http://10.0.0.5:8080, or auto: this host's private address (what memberlist advertises) and -listen's port, for containers (default: from -listen, or -cluster-advertise's host and -listen's port)")
	fs.DurationVar(&cc.JoinTimeout, "join-timeout", cc.JoinTimeout, "how long a starting node tries to join and copy a ready peer's state before starting alone")
	fs.DurationVar(&cc.GossipInterval, "gossip-interval", cc.GossipInterval, "how often memberlist gossips (gossip replication spreads events at this pace)")
	fs.DurationVar(&cc.RejoinMaxInterval, "rejoin-max-interval", cc.RejoinMaxInterval, "longest wait between tries to reach members declared dead (and -join, when alone or in a minority); the tries start every second and back off to this, so a healed partition merges within about this long")
	fs.DurationVar(&cc.ReconnectTimeout, "reconnect-timeout", cc.ReconnectTimeout, "how long a member declared dead (not one that left) is tried again before it is forgotten")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go GC target (GOGC): heap growth allowed between collections, in percent of the live heap; 0 keeps Go's default or $GOGC. See docs/BENCHMARKS.md for the memory/CPU trade-off")
	fs.StringVar(&c.PprofListen, "pprof", "", "serve Go's /debug/pprof/ profiles on this address (e.g. 127.0.0.1:6060); off when empty. Keep it private")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS (and HTTP/2) with this certificate file; needs -tls-key. TLS connections use the goroutine model")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key file for -tls-cert")

	fs.DurationVar(&c.Broker.Channel.MessageTTL, "message-ttl", bc.Channel.MessageTTL, "how long a message stays cached for reconnecting subscribers (0: until pushed out by -max-messages)")
	fs.IntVar(&c.Broker.Channel.MaxMessages, "max-messages", bc.Channel.MaxMessages, "messages cached per channel; the oldest is evicted beyond it")
	fs.DurationVar(&c.Broker.ChannelTTL, "channel-ttl", bc.ChannelTTL, "a channel with no publication and no subscriber for this long expires")
	fs.DurationVar(&c.Broker.MaxChannelTTL, "max-channel-ttl", bc.MaxChannelTTL, "longest ttl a channel create or renew may ask for")
	fs.BoolVar(&c.Broker.ImplicitChannels, "implicit-channels", bc.ImplicitChannels, "publish and subscribe create missing channels (false: 404 until created with PUT /v1/channels/{channel})")
	fs.IntVar(&c.Broker.MaxChannels, "max-channels", bc.MaxChannels, "channels that may exist at once; creating more fails with 503 (0: no limit)")
	fs.IntVar(&c.Broker.MaxChannelsPerRequest, "max-channels-per-request", bc.MaxChannelsPerRequest, "channels one publication or subscription may name")
	fs.IntVar(&c.Broker.MaxBatch, "max-batch", bc.MaxBatch, "publications in one batch publish")
	fs.Int64Var(&c.Broker.MaxCacheBytes, "max-cache-bytes", bc.MaxCacheBytes, "cached message bytes over all channels (a message counted once per channel); beyond it the oldest are evicted and their readers get truncated, and one publication larger than it gets 413 (0: no bound). Set it to about a quarter of the memory pushupd may use")
	fs.Int64Var(&c.Broker.MaxAnswerBytes, "max-answer-bytes", bc.MaxAnswerBytes, "message bytes in one subscribe answer; the answer says \"more\":true beyond it and the client polls again at once (0: no bound)")
	fs.IntVar(&c.Broker.MaxResponseMessages, "max-response-messages", bc.MaxResponseMessages, "messages in one subscribe answer; the answer says \"more\":true beyond it")

	fs.DurationVar(&c.API.DefaultTimeout, "default-timeout", ac.DefaultTimeout, "how long a subscribe waits when it names no timeout")
	fs.DurationVar(&c.API.MaxTimeout, "max-timeout", ac.MaxTimeout, "longest timeout a subscribe may ask for (longer asks get 400)")
	fs.Int64Var(&c.API.MaxBodyBytes, "max-body", ac.MaxBodyBytes, "largest request body in bytes (larger gets 413)")
	publisherKeys := fs.String("publisher-key", "", "if set, publish and channel endpoints need \"Authorization: Bearer <key>\"; comma-separated keys are each accepted, to rotate one (prefer the environment variable: flags show in ps)")
	subscriberKeys := fs.String("subscriber-key", "", "comma-separated HS256 secrets (32 bytes or more) that verify subscriber tokens; list the new and the old key while rotating (prefer the environment variable)")
	publicKeyFiles := fs.String("subscriber-public-key", "", "comma-separated PEM files of public keys (RSA, ECDSA P-256, Ed25519) that verify RS256/ES256/EdDSA subscriber tokens")
	private := fs.String("private-channels", "", "comma-separated channels a subscribe needs a token for: names and prefixes ending in *, e.g. user:*,private:*; * makes every channel private")
	fs.StringVar(&c.API.SubscriberCookie, "subscriber-cookie", "", "name of a cookie a subscribe may carry its token in (after the Authorization header and the token query parameter)")
	fs.IntVar(&c.API.MaxConnsPerIP, "max-conns-per-ip", 0, "waiting subscribe requests one client address may hold; more get 429 with Retry-After (0: no cap). Behind a proxy set -trusted-proxies too")
	trusted := fs.String("trusted-proxies", "", "comma-separated CIDRs (or addresses) of proxies whose X-Forwarded-For names the client, for -max-conns-per-ip; e.g. 10.0.0.0/8")
	cors := fs.String("cors-origins", strings.Join(ac.CORSOrigins, ","), "comma-separated origins allowed to subscribe from browsers; * allows any, empty allows none")
	fs.DurationVar(&c.API.ReadHeaderTimeout, "read-header-timeout", ac.ReadHeaderTimeout, "cut off clients slower than this to send request headers")
	fs.DurationVar(&c.API.ReadTimeout, "read-timeout", ac.ReadTimeout, "longest time to read a whole request, body included")
	fs.DurationVar(&c.API.WriteTimeout, "write-timeout", ac.WriteTimeout, "a client that takes no bytes of its answer for this long is dropped")
	fs.DurationVar(&c.API.IdleTimeout, "idle-timeout", ac.IdleTimeout, "close keep-alive connections idle this long")
	fs.DurationVar(&c.API.SSE.Heartbeat, "sse-heartbeat", ac.SSE.Heartbeat, "an event stream (GET /v1/events) silent this long gets a comment line, so proxies keep it open")
	fs.DurationVar(&c.API.SSE.MaxLifetime, "sse-max-lifetime", ac.SSE.MaxLifetime, "an event stream ends after a random 80-100% of this; the client resumes from its last id, and a load balancer may move it")
	fs.DurationVar(&c.API.SSE.Retry, "sse-retry", ac.SSE.Retry, "the retry: field of event streams: how long a browser waits before reconnecting")
	fs.IntVar(&c.API.MaxConns, "max-conns", ac.MaxConns, "open client connections after which new ones are served only for /healthz (503 + Retry-After otherwise); 0: the open-file limit less a tenth")
	fs.BoolVar(&c.Demo, "demo", false, "serve the Q&A demo at /demo/; anyone can then post questions to author:* and tag:* channels, publisher key or not. It also makes user:* private and mints their tokens with the first -subscriber-key (with none, a random key of this process: set one for a cluster)")

	fs.StringVar(&c.HealthCheck, "healthcheck", "", "do not serve: GET this URL, or this path on -listen (e.g. /healthz/ready), and exit 0 if it answers 200, 1 otherwise; for container health checks in images without a shell or curl")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM/SIGINT, how long to wait for answers to be written before closing connections")
	checkDurable := durableFlags(fs, &c)
	level := fs.String("log-level", "info", "log level: debug, info, warn or error (debug logs every request)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")

	fs.Usage = func() {
		fmt.Fprintf(out, "pushupd: PushUp long-polling publish/subscribe broker\n\nUsage: pushupd [flags]\n\n")
		fmt.Fprintf(out, "Every flag can also be set by the environment variable shown; a flag given\non the command line wins.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(out, "  -%s  (default %s)  [$%s]\n      %s\n", f.Name, def, envName(f.Name), f.Usage)
		})
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("$%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (flags start with -)", fs.Args())
	}

	c.API.CORSOrigins = splitList(*cors)
	c.API.PublisherKeys = splitList(*publisherKeys)
	for _, k := range splitList(*subscriberKeys) {
		c.API.SubscriberKeys = append(c.API.SubscriberKeys, []byte(k))
	}
	for _, f := range splitList(*publicKeyFiles) {
		k, err := readPublicKey(f)
		if err != nil {
			return c, fmt.Errorf("-subscriber-public-key: %w", err)
		}
		c.API.SubscriberPublicKeys = append(c.API.SubscriberPublicKeys, k)
	}
	c.API.PrivateChannels = splitList(*private)
	for _, p := range splitList(*trusted) {
		pfx, err := parsePrefix(p)
		if err != nil {
			return c, fmt.Errorf("-trusted-proxies: %w", err)
		}
		c.API.TrustedProxies = append(c.API.TrustedProxies, pfx)
	}
	if *clusterBind != "" || *join != "" {
		cc.NodeName = *nodeName
		cc.Bind = *clusterBind
		if cc.Bind == "" {
			cc.Bind = ":7946"
		}
		for _, j := range strings.Split(*join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				cc.Join = append(cc.Join, j)
			}
		}
		mm, err := cluster.ParseMode(*mode)
		if err != nil {
			return c, fmt.Errorf("-replication: %w", err)
		}
		cc.Mode = mm
		c.Cluster = &cc
	}
	m, err := api.ParseModel(*model)
	if err != nil {
		return c, fmt.Errorf("-model: %w", err)
	}
	c.API.Model = m
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("-tls-cert and -tls-key go together")
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("-log-level %q: want debug, info, warn or error", *level)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("-log-format %q: want text or json", c.LogFormat)
	}
	if c.GCPercent < 0 || c.GCPercent > 10000 {
		return c, fmt.Errorf("-gc-percent %d: want 0 (Go's default) to 10000", c.GCPercent)
	}
	if c.ShutdownTimeout <= 0 {
		return c, errors.New("-shutdown-timeout must be positive")
	}
	if err := checkDurable(); err != nil {
		return c, err
	}
	if err := c.Broker.Validate(); err != nil {
		return c, flagTerms(err, fs, &c)
	}
	if err := c.API.Validate(); err != nil {
		return c, flagTerms(err, fs, &c)
	}
	return c, nil
}

// logger builds the process logger.
func (c config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parsePrefix reads a CIDR, or a single address as a one-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// readPublicKey reads a PEM public key (PKIX "PUBLIC KEY", or an RSA
// "RSA PUBLIC KEY") from file.
func readPublicKey(file string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s: PEM block %q is not a public key (a private key must stay with the application)", file, block.Type)
}
