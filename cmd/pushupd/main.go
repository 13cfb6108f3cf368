// Command pushupd runs a PushUp broker: publishers POST messages to
// channels, browsers long-poll /v1/subscribe. Run with -h for every flag.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"

	"github.com/hashicorp/go-sockaddr"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/cluster"
	"github.com/pushuphq/pushup/web/demo"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushupd:", err)
		os.Exit(2)
	}
	if cfg.HealthCheck != "" {
		if err := healthCheck(cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "pushupd: health check:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "pushupd:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down gracefully. ready, if not
// nil, gets the listening address once connections are accepted.
func run(ctx context.Context, cfg config, logOut io.Writer, ready func(net.Addr)) error {
	log := cfg.logger(logOut)
	cfg.API.Logger = log
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var node *cluster.Node
	if cfg.Cluster != nil {
		if cfg.Cluster.HTTP, err = advertiseHTTP(*cfg.Cluster, ln.Addr(), cfg.TLSCert != ""); err != nil {
			ln.Close()
			return err
		}
		if node, err = cluster.New(*cfg.Cluster, log); err != nil {
			ln.Close()
			return err
		}
		cfg.Broker.OnCommit = node.Commit
		cfg.API.Cluster = node
	}
	st, err := openStore(&cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeStore(st, log) // after the broker closed: nothing more to record
	b, err := broker.New(cfg.Broker)
	if err != nil {
		ln.Close()
		return err
	}
	if err := recoverStore(st, b, log); err != nil {
		b.Close()
		ln.Close()
		return err
	}
	demoPlugin := demo.Off() // says how to turn it on
	generatedKey := false
	if cfg.Demo {
		var dc demo.Config
		dc, generatedKey, err = demoConfig(&cfg.API)
		if err == nil {
			demoPlugin, err = demo.NewPlugin(dc)
		}
		if err != nil {
			b.Close()
			ln.Close()
			return err
		}
	}
	cfg.API.Plugins = append(cfg.API.Plugins, demoPlugin)
	srv, err := api.New(b, cfg.API)
	if err != nil {
		b.Close()
		ln.Close()
		return err
	}
	if st != nil {
		srv.Registry().MustRegister(st.Collector())
	}
	log.Info("pushupd listening", "addr", ln.Addr().String(), "model", srv.Model(), "tls", cfg.TLSCert != "",
		"gc_percent", cfg.GCPercent,
		"origin", fmt.Sprintf("%016x", b.Origin()),
		"implicit_channels", cfg.Broker.ImplicitChannels, "message_ttl", cfg.Broker.Channel.MessageTTL,
		"max_messages", cfg.Broker.Channel.MaxMessages, "channel_ttl", cfg.Broker.ChannelTTL,
		"default_timeout", cfg.API.DefaultTimeout, "max_timeout", cfg.API.MaxTimeout,
		"publisher_keys", len(cfg.API.PublisherKeys), "private_channels", cfg.API.PrivateChannels,
		"cors_origins", cfg.API.CORSOrigins, "demo", cfg.Demo)
	if len(cfg.API.PublisherKeys) == 0 && !listensLocally(ln.Addr()) {
		log.Warn("NO PUBLISHER KEY and listening beyond loopback: anyone who can reach this port can publish, create and close channels; set -publisher-key (or $PUSHUP_PUBLISHER_KEY)",
			"addr", ln.Addr().String())
	}
	if cfg.Demo {
		// The demo's post endpoint needs no key by design; say so where an
		// operator who set one will look.
		log.Warn("demo mode: anyone who can reach this server can post questions to author:* and tag:* channels",
			"page", "/demo/", "publisher_key_set", len(cfg.API.PublisherKeys) > 0)
		if generatedKey {
			log.Warn("demo mode: no -subscriber-key, so the demo signs the tokens of its private user:* channels with a random key of this process; give every node of a cluster the same -subscriber-key")
		}
	}
	if ready != nil {
		ready(ln.Addr())
	}

	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			b.Close()
			ln.Close()
			return err
		}
		defer stopPprof()
	}

	served := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			served <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
			return
		}
		served <- srv.Serve(ln)
	}()
	started := make(chan error, 1)
	if node != nil {
		log.Info("cluster node starting", "name", cfg.Cluster.NodeName, "bind", cfg.Cluster.Bind,
			"join", cfg.Cluster.Join, "replication", cfg.Cluster.Mode, "http", cfg.Cluster.HTTP, "key_set", cfg.Cluster.Key != "")
		if cfg.Cluster.Key == "" {
			log.Warn("no -cluster-key: anyone who can reach this node's HTTP port can send it cluster events")
		}
		go func() { started <- node.Start(ctx, b) }()
	}
	var runErr error
	select {
	case runErr = <-served:
	case err := <-started:
		if err != nil && ctx.Err() == nil {
			runErr = err
		}
		if runErr == nil {
			select {
			case runErr = <-served:
			case <-ctx.Done():
			}
		}
	case <-ctx.Done():
	}
	if runErr != nil {
		b.Close()
		if node != nil {
			node.Close(context.Background())
		}
		return runErr
	}
	log.Info("shutting down: answering waiting subscribers", "waiting", b.Stats().Waiters, "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; serr != nil && err == nil {
		err = serr
	}
	if node != nil {
		// After the HTTP server: no more local publications, so the
		// queues can drain to the peers before this node leaves.
		if cerr := node.Close(sctx); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// demoConfig is the demo's configuration, and what -demo changes in the
// API's: the demo shows a private channel per person, user:<name>, so
// user:* becomes private, and the demo mints its tokens with the first
// -subscriber-key (the new one while rotating). With no HS256 key it makes
// a random one for this process and adds it to the keys the API verifies
// with (generated reports that): `pushupd -demo` then works on one
// machine with no setup, while a cluster, whose nodes must accept each
// other's tokens, needs -subscriber-key.
func demoConfig(ac *api.Config) (dc demo.Config, generated bool, err error) {
	dc = demo.DefaultConfig()
	if !slices.Contains(ac.PrivateChannels, demo.UserPrefix+"*") && !slices.Contains(ac.PrivateChannels, "*") {
		ac.PrivateChannels = append(ac.PrivateChannels, demo.UserPrefix+"*")
	}
	if len(ac.SubscriberKeys) == 0 {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return dc, false, fmt.Errorf("demo: generating a subscriber key: %w", err)
		}
		ac.SubscriberKeys = append(ac.SubscriberKeys, key)
		generated = true
	}
	dc.TokenKey = ac.SubscriberKeys[0]
	return dc, generated, nil
}

// autoHTTP is the -advertise-http value that makes pushupd work out its
// own address: for containers, where each replica has its own IP but
// shares one configuration (and distroless images have no shell to run
// $(hostname -i)).
const autoHTTP = "auto"

// privateIP is the address memberlist advertises when it binds to all
// interfaces and is given no -cluster-advertise: the first private
// (RFC 6890) address of an interface that is up, preferring the one with
// the default route. A variable so tests can stand in for the host.
var privateIP = sockaddr.GetPrivateIP

// advertiseHTTP is the base URL peers reach this node's HTTP API at:
// -advertise-http, or the listening address, or (when listening on all
// interfaces) the cluster address's host with the listening port. With
// -advertise-http auto, when none of those names a host, it is the
// private address memberlist advertises too, so peers reach both ports of
// a node at the same address.
func advertiseHTTP(cc cluster.Config, addr net.Addr, tls bool) (string, error) {
	if cc.HTTP != "" && cc.HTTP != autoHTTP {
		return cc.HTTP, nil
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("cannot tell peers how to reach %s: set -advertise-http", addr)
	}
	host := ""
	if !tcp.IP.IsUnspecified() {
		host = tcp.IP.String()
	} else {
		for _, hp := range []string{cc.Advertise, cc.Bind} {
			if h, _, err := net.SplitHostPort(hp); err == nil && h != "" {
				if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
					host = h
					break
				}
			}
		}
	}
	if host == "" && cc.HTTP == autoHTTP {
		ip, err := privateIP()
		if err != nil {
			return "", fmt.Errorf("-advertise-http auto: finding this host's private address: %w", err)
		}
		if ip == "" {
			return "", errors.New("-advertise-http auto: this host has no private address on an interface that is up; set -advertise-http")
		}
		host = ip
	}
	if host == "" {
		return "", errors.New("listening on all interfaces: set -advertise-http (or -advertise-http auto, or -cluster-advertise) so peers know this node's address")
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)), nil
}

// listensLocally reports whether addr is reachable from this host only.
func listensLocally(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
