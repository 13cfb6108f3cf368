package store

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a broker with its store, as pushupd wires them.
type node struct {
	b  *broker.Broker
	st *Store
}

func openNode(t *testing.T, dir string, fsync Fsync, mod func(*broker.Config)) *node {
	t.Helper()
	sc := DefaultConfig()
	sc.Dir, sc.Fsync = dir, fsync
	st, err := Open(sc)
	require.NoError(t, err)
	bc := broker.DefaultConfig()
	bc.Journal = st
	if mod != nil {
		mod(&bc)
	}
	b, err := broker.New(bc)
	require.NoError(t, err)
	evs, err := st.Load()
	require.NoError(t, err)
	_, err = b.Recover(evs)
	require.NoError(t, err)
	st.Start(b.Retained)
	return &node{b: b, st: st}
}

// stop shuts the node down cleanly.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.b.Close()
	require.NoError(t, n.st.Close())
}

func publishN(t *testing.T, b *broker.Broker, from, n int, channels ...string) {
	t.Helper()
	for i := from; i < from+n; i++ {
		_, err := b.Publish(broker.Publication{Channels: channels, Data: json.RawMessage(fmt.Sprint(i))})
		require.NoError(t, err)
	}
}

func poll(t *testing.T, b *broker.Broker, cur broker.Cursor, channels ...string) broker.Result {
	t.Helper()
	res, sub, err := b.Subscribe(broker.SubscribeRequest{Channels: channels, Cursor: cur}, nil)
	require.NoError(t, err)
	require.Nil(t, sub)
	return res
}

func data(res broker.Result) []string {
	out := make([]string, len(res.Messages))
	for i, m := range res.Messages {
		out[i] = string(m.Data)
	}
	return out
}

func seq(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(from + i)
	}
	return out
}

func TestRestartKeepsHistoryAndCursors(t *testing.T) {
	for _, mode := range []Fsync{FsyncAlways, FsyncBatch, FsyncNever} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			n := openNode(t, dir, mode, nil)
			publishN(t, n.b, 0, 50, "a")
			publishN(t, n.b, 50, 10, "a", "b")
			_, _, err := n.b.Renew("empty", 2*time.Hour)
			require.NoError(t, err)
			before := poll(t, n.b, broker.Cursor{}, "a")
			require.Equal(t, seq(0, 60), data(before))
			closedCh := "gone"
			publishN(t, n.b, 100, 3, closedCh)
			_, err = n.b.CloseChannel(closedCh)
			require.NoError(t, err)
			n.stop(t)

			n = openNode(t, dir, mode, nil)
			defer n.stop(t)
			// The cursor from before the restart: nothing again...
			again := poll(t, n.b, before.Cursor, "a")
			assert.Empty(t, again.Messages)
			assert.False(t, again.Truncated)
			// ...and exactly what is published after it.
			publishN(t, n.b, 60, 5, "a")
			next := poll(t, n.b, before.Cursor, "a")
			assert.Equal(t, seq(60, 5), data(next))
			// The whole history, same ids, for a reader from the start.
			all := poll(t, n.b, broker.Cursor{}, "a")
			require.Equal(t, seq(0, 65), data(all))
			for i, m := range before.Messages {
				assert.Equal(t, m.ID, all.Messages[i].ID)
				assert.Equal(t, m.TS, all.Messages[i].TS)
			}
			assert.Equal(t, seq(50, 10), data(poll(t, n.b, broker.Cursor{}, "b")))
			info, err := n.b.Info("empty")
			require.NoError(t, err)
			assert.Equal(t, 2*time.Hour, info.TTL)
			_, err = n.b.Info(closedCh)
			assert.ErrorIs(t, err, broker.ErrChannelNotFound, "a closed channel stays closed")
			// New messages come after the old ones in time.
			assert.Greater(t, next.Messages[0].TS, before.Messages[59].TS)
		})
	}
}

func TestAlwaysAcknowledgesOnlyWhatIsOnDisk(t *testing.T) {
	n := openNode(t, t.TempDir(), FsyncAlways, nil)
	defer n.stop(t)
	for i := range 20 {
		publishN(t, n.b, i, 1, "a")
		st, err := n.st.Stats()
		require.NoError(t, err)
		require.Equal(t, i+1, st.Events, "publish %d returned before its event was committed", i)
	}
}

// crash stops the store as a killed process would: what is queued is
// never written. It stops the writer first so nothing races the close.
func (s *Store) crash() {
	s.mu.Lock()
	s.queue = nil
	s.err = ErrClosed
	started := s.started
	s.mu.Unlock()
	if started {
		close(s.stop)
		<-s.done
	}
	s.db.Close()
}

func TestBatchLosesOnlyWhatWasQueued(t *testing.T) {
	dir := t.TempDir()
	sc := DefaultConfig()
	sc.Dir = dir
	sc.BatchDelay = time.Hour // nothing is written by the writer: all queued
	st, err := Open(sc)
	require.NoError(t, err)
	bc := broker.DefaultConfig()
	bc.Journal = st
	b, err := broker.New(bc)
	require.NoError(t, err)
	st.Start(b.Retained)
	publishN(t, b, 0, 10, "a")
	require.NoError(t, st.flush(true)) // a group commit: these are safe
	publishN(t, b, 10, 5, "a")         // acknowledged, still in the window
	st.mu.Lock()
	queued := len(st.queue)
	st.mu.Unlock()
	assert.Equal(t, 5, queued)
	st.crash()
	b.Close()

	n := openNode(t, dir, FsyncBatch, nil)
	defer n.stop(t)
	// Exactly the committed prefix, without holes.
	assert.Equal(t, seq(0, 10), data(poll(t, n.b, broker.Cursor{}, "a")))
}

func TestPruneDeletesEvictedAndClosed(t *testing.T) {
	n := openNode(t, t.TempDir(), FsyncAlways, func(c *broker.Config) {
		c.LogEvents = 2
		c.Channel.MaxMessages = 3
	})
	defer n.stop(t)
	publishN(t, n.b, 0, 10, "a")
	n.st.Prune(n.b.Retained())
	st, err := n.st.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Events, "only the 3 cached messages stay on disk")
	assert.Equal(t, uint64(7), st.Pruned)

	_, err = n.b.CloseChannel("a")
	require.NoError(t, err)
	n.st.Prune(n.b.Retained())
	st, err = n.st.Stats()
	require.NoError(t, err)
	assert.Equal(t, 2, st.Events, "a closed channel's messages leave the disk; the repair log's last 2 events stay")
}

func TestPruneDeletesExpired(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	n := openNode(t, t.TempDir(), FsyncAlways, func(c *broker.Config) {
		c.Channel.MessageTTL = time.Minute
		c.Now = clock
	})
	defer n.stop(t)
	publishN(t, n.b, 0, 10, "a")
	n.st.Prune(n.b.Retained())
	st, err := n.st.Stats()
	require.NoError(t, err)
	require.Equal(t, 10, st.Events)

	now.Add(int64(2 * time.Minute))
	n.st.Prune(n.b.Retained())
	st, err = n.st.Stats()
	require.NoError(t, err)
	assert.Equal(t, 0, st.Events, "expired messages leave the disk")
}

func TestIdleExpiryForgetsTheChannel(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		n := openNode(t, dir, FsyncAlways, nil)
		_, _, err := n.b.Renew("short", time.Second)
		require.NoError(t, err)
		publishN(t, n.b, 0, 1, "short")
		synctest.Wait()
		st, err := n.st.Stats()
		require.NoError(t, err)
		require.Equal(t, 1, st.Channels)

		time.Sleep(2 * time.Second)
		synctest.Wait()
		st, err = n.st.Stats()
		require.NoError(t, err)
		assert.Equal(t, 0, st.Channels, "an expired channel's state leaves the disk")
		n.stop(t)
	})
	n := openNode(t, dir, FsyncAlways, nil)
	defer n.stop(t)
	_, err := n.b.Info("short")
	assert.ErrorIs(t, err, broker.ErrChannelNotFound, "replay must not bring back an expired channel")
	assert.Empty(t, poll(t, n.b, broker.Cursor{}, "short").Messages, "nor its messages")
}

func TestSnapshotRestoredIsJournaled(t *testing.T) {
	giver, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	defer giver.Close()
	publishN(t, giver, 0, 5, "a", "b")
	_, _, err = giver.Renew("c", time.Hour)
	require.NoError(t, err)

	dir := t.TempDir()
	n := openNode(t, dir, FsyncAlways, nil)
	require.NoError(t, n.b.Restore(giver.Snapshot()))
	n.stop(t)

	n = openNode(t, dir, FsyncAlways, nil)
	defer n.stop(t)
	assert.Equal(t, seq(0, 5), data(poll(t, n.b, broker.Cursor{}, "a")))
	assert.Equal(t, seq(0, 5), data(poll(t, n.b, broker.Cursor{}, "b")))
	_, err = n.b.Info("c")
	assert.NoError(t, err)
}

func TestLoadRejectsCorruptRecords(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir, FsyncAlways, nil)
	publishN(t, n.b, 0, 1, "a")
	n.stop(t)
	db, err := bolt.Open(dir+"/pushup.db", 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).Put(eventKey(1, 1), []byte{recordVersion, 1, 0xff})
	}))
	require.NoError(t, db.Close())
	st, err := Open(Config{Dir: dir, Fsync: FsyncBatch, BatchDelay: time.Millisecond, PruneInterval: time.Second, MaxBacklog: 1})
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Load()
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir, FsyncBatch, nil)
	defer n.stop(t)
	sc := DefaultConfig()
	sc.Dir = dir
	_, err := Open(sc)
	assert.Error(t, err, "two processes must not share a data directory")
}

func TestRecoverNeedsAnEmptyBroker(t *testing.T) {
	b, err := broker.New(broker.DefaultConfig())
	require.NoError(t, err)
	defer b.Close()
	publishN(t, b, 0, 1, "a")
	_, err = b.Recover(nil)
	assert.ErrorIs(t, err, broker.ErrNotEmpty)
}

func TestParseFsync(t *testing.T) {
	for _, s := range []string{"always", "batch", "never"} {
		f, err := ParseFsync(s)
		require.NoError(t, err)
		assert.Equal(t, Fsync(s), f)
	}
	_, err := ParseFsync("sometimes")
	assert.ErrorIs(t, err, ErrInvalidFsync)
}

func TestPoolGivesEachProcessItsOwnSlot(t *testing.T) {
	pool := t.TempDir()
	sc := DefaultConfig()
	sc.Dir = pool + SlotSuffix
	a, err := Open(sc)
	require.NoError(t, err)
	b, err := Open(sc)
	require.NoError(t, err)
	assert.Equal(t, pool+"/0", a.Dir())
	assert.Equal(t, pool+"/1", b.Dir())
	require.NoError(t, a.Close())
	c, err := Open(sc)
	require.NoError(t, err)
	assert.Equal(t, pool+"/0", c.Dir(), "a freed slot is taken again")
	require.NoError(t, b.Close())
	require.NoError(t, c.Close())
}

func TestCollectorReportsWrites(t *testing.T) {
	n := openNode(t, t.TempDir(), FsyncAlways, nil)
	defer n.stop(t)
	publishN(t, n.b, 0, 3, "a")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(n.st.Collector()))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if m.Counter != nil {
			got[mf.GetName()] = m.GetCounter().GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, 3.0, got["pushup_store_events_written_total"])
	assert.Equal(t, 0.0, got["pushup_store_failed"])
	assert.Contains(t, got, "pushup_store_backlog_events")
}
