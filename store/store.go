package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pushuphq/pushup/broker"
)

// Sentinel errors.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidFsync: an unknown fsync mode.
	ErrInvalidFsync = errors.New("store: invalid fsync mode")
	// ErrCorrupt: a record on disk cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
)

// Fsync says when the store forces its writes to disk.
type Fsync string

// The fsync modes; see the package comment.
const (
	FsyncAlways Fsync = "always"
	FsyncBatch  Fsync = "batch"
	FsyncNever  Fsync = "never"
)

// ParseFsync parses a mode name.
func ParseFsync(s string) (Fsync, error) {
	switch f := Fsync(s); f {
	case FsyncAlways, FsyncBatch, FsyncNever:
		return f, nil
	}
	return "", fmt.Errorf("%w: %q (want always, batch or never)", ErrInvalidFsync, s)
}

// Config configures a Store.
type Config struct {
	// Dir is the data directory; created if missing. The database is
	// Dir/pushup.db.
	Dir string
	// Fsync is when writes are forced to disk.
	Fsync Fsync
	// BatchDelay is how long FsyncBatch collects a group before it
	// commits it with one fsync: the window of acknowledged publications
	// a crash may lose (plus one commit). 5ms keeps fsyncs to about 200
	// a second whatever the publish rate.
	BatchDelay time.Duration
	// PruneInterval is how often events the broker no longer holds are
	// deleted from disk.
	PruneInterval time.Duration
	// MaxBacklog caps the events queued but not yet written in batch and
	// never modes: beyond it Publish waits for the disk, so a slow disk
	// slows publishers instead of growing memory without bound.
	MaxBacklog int
	// Now is the clock used for timestamps in Stats; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig returns the configuration pushupd uses with -data-dir.
func DefaultConfig() Config {
	return Config{Fsync: FsyncBatch, BatchDelay: 5 * time.Millisecond, PruneInterval: 10 * time.Second, MaxBacklog: 10_000}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("store: Dir must be set")
	}
	if _, err := ParseFsync(string(c.Fsync)); err != nil {
		return err
	}
	if c.BatchDelay < 0 || c.PruneInterval <= 0 || c.MaxBacklog < 1 {
		return errors.New("store: BatchDelay must not be negative, PruneInterval and MaxBacklog must be positive")
	}
	return nil
}

var (
	bucketEvents   = []byte("events")   // origin(8) seq(8) -> record
	bucketChannels = []byte("channels") // name -> ttl (8, ns)
	bucketExpired  = []byte("expired")  // order(8) -> name of a channel that expired for idleness
	bucketMeta     = []byte("meta")
	keyNext        = []byte("next") // the next commit-order number
)

// op is one queued write.
type op struct {
	ticket uint64
	ev     broker.Event
	forget string // a channel that expired, when ev is zero
}

// Store is the on-disk journal. Open it, Load what it holds, Start its
// writer, and Close it after the broker.
type Store struct {
	cfg Config
	db  *bolt.DB

	mu      sync.Mutex
	cond    *sync.Cond // signalled when durable moves or err is set
	queue   []op
	next    uint64 // the last ticket handed out
	durable uint64 // every ticket up to it is written (and synced as promised)
	err     error  // sticky: the first write error, or ErrClosed
	started bool

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	retained func() map[uint64]uint64

	stats statCounters
}

// SlotSuffix ends a Config.Dir that names a pool of data directories
// rather than one: "/data/*" is the first of /data/0, /data/1, ... that no
// other process holds. Replicas that share one volume (docker compose
// --scale) each take one; a restarted replica may take another's old
// slot, which is fine: it replays that history and repairs the rest from
// its peers.
const SlotSuffix = "/*"

// maxSlots bounds the pool of a Dir ending in SlotSuffix.
const maxSlots = 64

// Open opens (or creates) the store in cfg.Dir. Only one process may
// have a data directory open: a second one fails after a second (or, for
// a pool, takes the next slot).
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var db *bolt.DB
	var err error
	if pool, ok := strings.CutSuffix(cfg.Dir, SlotSuffix); ok {
		for i := 0; i < maxSlots && db == nil; i++ {
			dir := filepath.Join(pool, strconv.Itoa(i))
			if db, err = openDB(dir, 50*time.Millisecond); err == nil {
				cfg.Dir = dir
			} else if !errors.Is(err, bolt.ErrTimeout) {
				return nil, err
			}
		}
		if db == nil {
			return nil, fmt.Errorf("store: all %d data directories in %s are held by other processes", maxSlots, pool)
		}
	} else if db, err = openDB(cfg.Dir, time.Second); err != nil {
		return nil, err
	}
	db.NoSync = cfg.Fsync == FsyncNever
	s := &Store{cfg: cfg, db: db, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketChannels, bucketExpired, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if v := tx.Bucket(bucketMeta).Get(keyNext); len(v) == 8 {
			s.next = binary.BigEndian.Uint64(v) - 1
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s.durable = s.next
	return s, nil
}

// openDB opens the database in dir, waiting up to timeout for another
// process's lock on it.
func openDB(dir string, timeout time.Duration) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "pushup.db"), 0o640, &bolt.Options{
		Timeout: timeout,
		// The freelist is rebuilt by scanning at open instead of being
		// written at every commit: cheaper commits for a slower start.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Map address space up front: remapping as the file grows
		// copies and stalls the writer. Virtual only; pages are read in
		// as used.
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", dir, err)
	}
	return db, nil
}

// Config returns the store's configuration (Dir is the slot taken).
func (s *Store) Config() Config { return s.cfg }

// Dir returns the data directory in use (the slot taken, for a pool).
func (s *Store) Dir() string { return s.cfg.Dir }

// Load returns what the store holds, for broker.Recover: the events in
// the order they were committed, idle expiries among them (an EventClose
// with Origin zero), then every channel's last state (an EventRenew with
// Origin zero).
func (s *Store) Load() ([]broker.Event, error) {
	var chans, evs []broker.Event
	var order []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketExpired).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: expiry %x", ErrCorrupt, k)
			}
			evs = append(evs, broker.Event{Kind: broker.EventClose, Channel: string(v)})
			order = append(order, binary.BigEndian.Uint64(k))
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketChannels).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: channel %q", ErrCorrupt, k)
			}
			chans = append(chans, broker.Event{Kind: broker.EventRenew, Channel: string(k), TTL: time.Duration(binary.BigEndian.Uint64(v))})
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			ev, n, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("%w: key %x: %w", ErrCorrupt, k, err)
			}
			evs = append(evs, ev)
			order = append(order, n)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: loading: %w", err)
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return order[idx[a]] < order[idx[b]] })
	out := make([]broker.Event, 0, len(evs)+len(chans))
	for _, i := range idx {
		out = append(out, evs[i])
	}
	return append(out, chans...), nil
}

// Start starts the writer. retained reports what the broker still holds
// (broker.Retained); nil never prunes. Until Start, events are queued
// and Wait in FsyncAlways mode blocks: start it before serving.
func (s *Store) Start(retained func() map[uint64]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.err != nil {
		return
	}
	s.started = true
	s.retained = retained
	go s.write()
}

// Record queues ev. It implements broker.Journal.
func (s *Store) Record(ev broker.Event) uint64 {
	return s.enqueue(op{ev: ev})
}

// Forget queues the removal of an expired channel's state. It implements
// broker.Journal.
func (s *Store) Forget(name string) {
	s.enqueue(op{forget: name})
}

func (s *Store) enqueue(o op) uint64 {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return 0
	}
	s.next++
	o.ticket = s.next
	s.queue = append(s.queue, o)
	t := s.next
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return t
}

// Wait returns once ticket t is durable as the fsync mode promises:
// written and fsynced for FsyncAlways; for the other modes at once,
// unless more than MaxBacklog events wait to be written. It implements
// broker.Journal.
func (s *Store) Wait(t uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.err != nil {
			if errors.Is(s.err, ErrClosed) && s.durable >= t {
				return nil
			}
			return s.err
		}
		if s.durable >= t || (s.cfg.Fsync != FsyncAlways && t-s.durable <= uint64(s.cfg.MaxBacklog)) {
			return nil
		}
		s.cond.Wait()
	}
}

// Close writes what is queued (with an fsync, whatever the mode) and
// closes the database. Call it after the broker's Close.
func (s *Store) Close() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	var err error
	if started {
		close(s.stop)
		<-s.done
	} else {
		err = s.flush(true)
	}
	s.mu.Lock()
	if s.err == nil || errors.Is(s.err, ErrClosed) {
		s.err = ErrClosed
	} else if err == nil {
		err = s.err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: %w", cerr)
	}
	return err
}

// write is the writer goroutine: it commits the queue in groups and
// prunes every PruneInterval, until Close.
func (s *Store) write() {
	defer close(s.done)
	prune := time.NewTicker(s.cfg.PruneInterval)
	defer prune.Stop()
	var delay *time.Timer
	if s.cfg.Fsync == FsyncBatch && s.cfg.BatchDelay > 0 {
		delay = time.NewTimer(time.Hour)
		delay.Stop()
		defer delay.Stop()
	}
	var last time.Time // when the last group commit started
	for {
		select {
		case <-s.stop:
			_ = s.flush(true)
			return
		case <-prune.C:
			s.prune()
			continue
		case <-s.wake:
		}
		// Let the group grow until BatchDelay after the last commit
		// started: one fsync for all. When a commit takes longer than
		// that, what arrived meanwhile is the next group, at once.
		if wait := s.cfg.BatchDelay - time.Since(last); delay != nil && wait > 0 {
			delay.Reset(wait)
			select {
			case <-delay.C:
			case <-s.stop:
				_ = s.flush(true)
				return
			}
		}
		last = time.Now()
		_ = s.flush(false)
	}
}

// flush commits everything queued in one transaction; final forces an
// fsync whatever the mode.
func (s *Store) flush(final bool) error {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	if len(q) == 0 {
		return nil
	}
	if final && s.cfg.Fsync == FsyncNever {
		s.db.NoSync = false
		defer func() { s.db.NoSync = true }()
	}
	start := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error { return apply(tx, q) })
	s.stats.commit(len(q), time.Since(start))
	s.mu.Lock()
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("store: writing: %w", err)
		}
	} else {
		s.durable = q[len(q)-1].ticket
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return err
}

// apply writes a group of ops in one transaction.
func apply(tx *bolt.Tx, q []op) error {
	evs, chans, meta := tx.Bucket(bucketEvents), tx.Bucket(bucketChannels), tx.Bucket(bucketMeta)
	// Keys mostly arrive in order (per origin, by seq): fill pages
	// instead of splitting them half-empty, halving the bytes written.
	evs.FillPercent = 0.9
	var buf []byte
	for _, o := range q {
		if o.forget != "" {
			if err := chans.Delete([]byte(o.forget)); err != nil {
				return err
			}
			// Replay must drop the channel here too, with the messages
			// published to it before (see Load).
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], o.ticket)
			if err := tx.Bucket(bucketExpired).Put(k[:], []byte(o.forget)); err != nil {
				return err
			}
			continue
		}
		ev := o.ev
		switch ev.Kind {
		case broker.EventRenew:
			var ttl [8]byte
			binary.BigEndian.PutUint64(ttl[:], uint64(ev.TTL))
			if err := chans.Put([]byte(ev.Channel), ttl[:]); err != nil {
				return err
			}
		case broker.EventClose:
			if err := chans.Delete([]byte(ev.Channel)); err != nil {
				return err
			}
		}
		if ev.Origin == 0 {
			continue // channel state only
		}
		buf = encodeEvent(buf[:0], ev, o.ticket)
		// bbolt keeps the value slice until commit: give it its own.
		if err := evs.Put(eventKey(ev.Origin, ev.Seq), bytes.Clone(buf)); err != nil {
			return err
		}
	}
	var next [8]byte
	binary.BigEndian.PutUint64(next[:], q[len(q)-1].ticket+1)
	return meta.Put(keyNext, next[:])
}

func eventKey(origin, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, origin)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// maxPruneDeletes bounds one prune transaction; the rest waits for the
// next interval, so a prune never holds the writer for long.
const maxPruneDeletes = 100_000

// prune deletes, for every origin, the events below what the broker
// still holds; events of origins the broker no longer knows go entirely.
func (s *Store) prune() {
	if s.retained != nil {
		s.pruneWith(s.retained())
	}
}

// pruneWith deletes what keep (broker.Retained's answer) no longer holds.
func (s *Store) pruneWith(keep map[uint64]uint64) {
	start := time.Now()
	deleted := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		var dead [][]byte
		for k, _ := c.First(); k != nil && len(dead) < maxPruneDeletes; {
			origin := binary.BigEndian.Uint64(k[:8])
			from, known := keep[origin]
			if known && binary.BigEndian.Uint64(k[8:]) >= from {
				// Skip the rest of this origin.
				k, _ = c.Seek(eventKey(origin+1, 0))
				if origin == ^uint64(0) {
					break
				}
				continue
			}
			dead = append(dead, bytes.Clone(k))
			k, _ = c.Next()
		}
		b := tx.Bucket(bucketEvents)
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		deleted = len(dead)
		return pruneExpiries(tx)
	})
	s.stats.prune(deleted, time.Since(start))
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("store: pruning: %w", err)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// pruneExpiries deletes the idle-expiry records older than every event
// left: they have nothing left to drop at replay. The oldest event is the
// first of some origin, so one seek per origin finds it.
func pruneExpiries(tx *bolt.Tx) error {
	oldest := ^uint64(0)
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.First(); k != nil; {
		_, order, err := decodeEvent(v)
		if err != nil {
			return fmt.Errorf("%w: key %x: %w", ErrCorrupt, k, err)
		}
		oldest = min(oldest, order)
		origin := binary.BigEndian.Uint64(k[:8])
		if origin == ^uint64(0) {
			break
		}
		k, v = c.Seek(eventKey(origin+1, 0))
	}
	ec := tx.Bucket(bucketExpired).Cursor()
	var dead [][]byte
	for k, _ := ec.First(); k != nil && binary.BigEndian.Uint64(k) < oldest && len(dead) < maxPruneDeletes; k, _ = ec.Next() {
		dead = append(dead, bytes.Clone(k))
	}
	for _, k := range dead {
		if err := tx.Bucket(bucketExpired).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Prune deletes now what retained (broker.Retained) says is no longer
// held, as the writer does every PruneInterval; bbolt serializes it with
// the writer's transactions.
func (s *Store) Prune(retained map[uint64]uint64) {
	s.pruneWith(retained)
}
