// Command pushupd runs a PushUp broker: publishers POST messages to
// channels, browsers long-poll /v1/subscribe. Run with -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/pushuphq/pushup/api"
	"github.com/pushuphq/pushup/broker"
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
	b, err := broker.New(cfg.Broker)
	if err != nil {
		return err
	}
	srv, err := api.New(b, cfg.API)
	if err != nil {
		b.Close()
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Close()
		return err
	}
	log.Info("pushupd listening", "addr", ln.Addr().String(), "model", srv.Model(), "tls", cfg.TLSCert != "",
		"gc_percent", cfg.GCPercent,
		"origin", fmt.Sprintf("%016x", b.Origin()),
		"implicit_channels", cfg.Broker.ImplicitChannels, "message_ttl", cfg.Broker.Channel.MessageTTL,
		"max_messages", cfg.Broker.Channel.MaxMessages, "channel_ttl", cfg.Broker.ChannelTTL,
		"default_timeout", cfg.API.DefaultTimeout, "max_timeout", cfg.API.MaxTimeout,
		"publisher_key_set", cfg.API.PublisherKey != "", "cors_origins", cfg.API.CORSOrigins, "demo", cfg.API.Demo)
	if cfg.API.Demo {
		// The demo's post endpoint needs no key by design; say so where an
		// operator who set one will look.
		log.Warn("demo mode: anyone who can reach this server can post questions to author:* and tag:* channels",
			"page", "/demo/", "publisher_key_set", cfg.API.PublisherKey != "")
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
	select {
	case err := <-served:
		b.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: answering waiting subscribers", "waiting", b.Stats().Waiters, "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
