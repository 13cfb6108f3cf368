package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/store"
)

// defaultDrainSpread is how long a SIGTERM'd node takes to send its
// waiting subscribers away: long enough that 15,000 of them arrive at the
// other nodes at about 3,000 a second, well inside -shutdown-timeout.
const defaultDrainSpread = 5 * time.Second

// durableConfig is the data directory and drain part of the config.
type durableConfig struct {
	// Store is set when -data-dir is.
	Store *store.Config
}

// durableFlags registers -data-dir, -fsync and -drain-spread. The
// returned function checks them once the flags are parsed.
func durableFlags(fs *flag.FlagSet, c *config) func() error {
	sc := store.DefaultConfig()
	dir := fs.String("data-dir", "", "keep every committed event in this directory (an embedded bbolt database) and replay it at start, so a restart keeps the cache; DIR/* takes the first free DIR/0, DIR/1, ... (replicas sharing a volume); empty keeps everything in memory only")
	fsync := fs.String("fsync", string(sc.Fsync), "with -data-dir, when writes reach the disk: always (a publish is acknowledged once fsynced), batch (group commits every 5ms, one fsync each; a crash may lose the last few ms of acknowledged publications) or never (the OS decides; a killed process loses only what was queued, a power cut more)")
	fs.DurationVar(&c.API.DrainSpread, "drain-spread", defaultDrainSpread, "on SIGTERM, answer waiting subscribers spread over this long, each told to wait a jittered moment before polling again, so other nodes see a ramp instead of a spike (0: all at once)")
	return func() error {
		if c.API.DrainSpread < 0 {
			return errors.New("-drain-spread must not be negative")
		}
		if c.API.DrainSpread >= c.ShutdownTimeout {
			set := false
			fs.Visit(func(f *flag.Flag) { set = set || f.Name == "drain-spread" })
			if set {
				return fmt.Errorf("-drain-spread (%s) must be shorter than -shutdown-timeout (%s)", c.API.DrainSpread, c.ShutdownTimeout)
			}
			// A short -shutdown-timeout chosen before the drain existed:
			// spread over half of it, leaving the rest for the writes.
			c.API.DrainSpread = c.ShutdownTimeout / 2
		}
		f, err := store.ParseFsync(*fsync)
		if err != nil {
			return fmt.Errorf("-fsync: %w", err)
		}
		if *dir == "" {
			return nil
		}
		sc.Dir, sc.Fsync = *dir, f
		c.Durable.Store = &sc
		return nil
	}
}

// openStore opens the data directory, if configured, and makes it the
// broker's journal.
func openStore(cfg *config, log *slog.Logger) (*store.Store, error) {
	if cfg.Durable.Store == nil {
		return nil, nil
	}
	st, err := store.Open(*cfg.Durable.Store)
	if err != nil {
		return nil, err
	}
	cfg.Broker.Journal = st
	return st, nil
}

// recoverStore replays the data directory into b, before it serves, and
// starts the store's writer.
func recoverStore(st *store.Store, b *broker.Broker, log *slog.Logger) error {
	if st == nil {
		return nil
	}
	start := time.Now()
	evs, err := st.Load()
	if err != nil {
		return err
	}
	rs, err := b.Recover(evs)
	if err != nil {
		return err
	}
	st.Start(b.Retained)
	log.Info("replayed data directory", "dir", st.Dir(), "fsync", cfgFsync(st), "events", rs.Events, "channels", rs.Channels, "origins", rs.Origins,
		"gaps", rs.Gaps, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func cfgFsync(st *store.Store) store.Fsync { return st.Config().Fsync }

// closeStore closes st after the broker stopped, logging a failure.
func closeStore(st *store.Store, log *slog.Logger) error {
	if st == nil {
		return nil
	}
	if err := st.Close(); err != nil {
		log.Error("closing the data directory", "err", err)
		return err
	}
	return nil
}
