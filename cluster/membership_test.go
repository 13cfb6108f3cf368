package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// These tests run real memberlist instances and HTTP servers on
// loopback, with failure detection tuned to a fraction of a second.

// memberNode is one in-process node: a broker, its cluster node and the
// HTTP server for its /internal/v1/ endpoints.
type memberNode struct {
	n   *Node
	b   *broker.Broker
	srv *httptest.Server
	log *syncBuffer
}

// fastMemberConfig detects failures and spreads state in well under a
// second on loopback.
func fastMemberConfig(name, bind string, mode Mode, join ...string) Config {
	c := DefaultConfig()
	c.NodeName, c.Bind, c.Mode, c.Join, c.Key = name, bind, mode, join, "test-key"
	c.JoinTimeout = 10 * time.Second
	c.GossipInterval = 20 * time.Millisecond
	c.AnnounceInterval = 100 * time.Millisecond
	c.PushPullInterval = time.Second
	c.RepairAfter = 200 * time.Millisecond
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.LeaveTimeout = time.Second
	return c
}

// newMemberNode builds a node whose HTTP server already listens; start it
// with (*memberNode).start. Cleanup closes it gracefully unless the test
// crashed or closed it.
func newMemberNode(t *testing.T, cfg Config) *memberNode {
	t.Helper()
	m := &memberNode{srv: httptest.NewUnstartedServer(nil), log: &syncBuffer{}}
	cfg.HTTP = "http://" + m.srv.Listener.Addr().String()
	var err error
	m.n, err = New(cfg, slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	bc := broker.DefaultConfig()
	bc.OnCommit = m.n.Commit
	m.b, err = broker.New(bc)
	require.NoError(t, err)
	m.srv.Config.Handler = m.n.Handler()
	m.srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if m.n.ml != nil && !m.n.closing.Load() {
			assert.NoError(t, m.n.Close(ctx))
		}
		m.b.Close()
		m.srv.Close()
		if t.Failed() {
			t.Logf("--- %s log:\n%s", m.n.cfg.NodeName, m.log.String())
		}
	})
	return m
}

// start starts the node and waits until it is ready.
func (m *memberNode) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, m.n.Start(ctx, m.b))
}

// addr is the node's memberlist address, for the others to join.
func (m *memberNode) addr() string {
	ln := m.n.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), fmt.Sprint(ln.Port))
}

// crash stops the node as kill -9 would: no leave, no drain; memberlist
// and the HTTP server go silent at once. Its goroutines are stopped too,
// so the test leaves none behind.
func (m *memberNode) crash() {
	m.n.closing.Store(true)
	m.srv.CloseClientConnections()
	m.srv.Close()
	_ = m.n.ml.Shutdown()
	close(m.n.stop)
	m.n.pmu.Lock()
	for _, p := range m.n.peers {
		if p.sender != nil {
			p.sender.close()
		}
	}
	m.n.pmu.Unlock()
	m.n.wg.Wait()
}

// member is what m reports of another member in its Status.
func (m *memberNode) member(name string) (MemberStatus, bool) {
	for _, ms := range m.n.Status().Members {
		if ms.Name == name {
			return ms, true
		}
	}
	return MemberStatus{}, false
}

// freeMemberAddr is a loopback host:port free for TCP and UDP.
func freeMemberAddr(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port for TCP and UDP")
	return ""
}

// TestMemberStatesAfterCrashAndLeave: a member killed without a word is
// reported dead and, in unicast mode, no longer streamed to; one that
// shuts down is reported left; and a node whose peers are gone shuts down
// without waiting for events nobody will take. memberlist reports both
// departures through NotifyLeave with a Node whose State says alive, so
// the state must come from the callback.
func TestMemberStatesAfterCrashAndLeave(t *testing.T) {
	a := newMemberNode(t, fastMemberConfig("a", "127.0.0.1:0", ModeUnicast))
	a.start(t)
	b := newMemberNode(t, fastMemberConfig("b", "127.0.0.1:0", ModeUnicast, a.addr()))
	b.start(t)
	c := newMemberNode(t, fastMemberConfig("c", "127.0.0.1:0", ModeUnicast, a.addr()))
	c.start(t)
	for _, x := range []*memberNode{a, b} {
		require.Eventually(t, func() bool {
			ms, ok := x.member("c")
			return ok && ms.State == "alive" && ms.Ready && ms.Replication.Stream != nil && ms.Replication.Stream.Connected
		}, 10*time.Second, 10*time.Millisecond, "%s streams to c", x.n.cfg.NodeName)
	}

	c.crash()
	for _, x := range []*memberNode{a, b} {
		require.Eventually(t, func() bool {
			ms, ok := x.member("c")
			return ok && ms.State == "dead" && ms.Replication.Stream == nil
		}, 10*time.Second, 10*time.Millisecond, "%s sees c dead and stops streaming to it", x.n.cfg.NodeName)
	}
	// What a publishes now is queued for b only.
	_, err := a.b.Publish(broker.Publication{Channels: []string{"news"}, Data: json.RawMessage(`1`)})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.n.Close(ctx))
	require.Eventually(t, func() bool {
		ms, ok := a.member("b")
		return ok && ms.State == "left"
	}, 10*time.Second, 10*time.Millisecond, "a sees b left")

	// a's peers are all gone: nothing to drain, Close returns at once
	// rather than when ctx expires.
	require.NoError(t, a.n.Close(ctx))
	assert.NoError(t, ctx.Err(), "Close waited for events no peer will take")
}

// TestJoinRetriesWhileOnlyItselfAnswers: a node whose seeds name itself
// (every replica of a compose service joins the service's name, which
// resolves to all of them, itself included) and whose peers are not up
// yet has contacted only itself. That is not a cluster: it keeps trying,
// and joins the peer that comes up, instead of starting alone.
func TestJoinRetriesWhileOnlyItselfAnswers(t *testing.T) {
	aAddr, bAddr := freeMemberAddr(t), freeMemberAddr(t)
	a := newMemberNode(t, fastMemberConfig("a", aAddr, ModeUnicast, aAddr, bAddr))
	started := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { started <- a.n.Start(ctx, a.b) }()
	require.Eventually(t, func() bool {
		// Its first Join is over: it reached itself only.
		l := a.log.String()
		return strings.Contains(l, "no other member reached yet") || strings.Contains(l, "joined cluster")
	}, 10*time.Second, 10*time.Millisecond, "a tries to join while b is down")

	// b starts a cluster of its own (no seeds) and publishes.
	b := newMemberNode(t, fastMemberConfig("b", bAddr, ModeUnicast))
	b.start(t)
	_, err := b.b.Publish(broker.Publication{Channels: []string{"news"}, Data: json.RawMessage(`"before a"`)})
	require.NoError(t, err)

	require.NoError(t, <-started)
	assert.Equal(t, 2, a.n.ml.NumMembers(), "a joined b")
	assert.Contains(t, a.log.String(), `msg="restored snapshot"`, "a copied b's state")
	assert.NotContains(t, a.log.String(), "starting alone")
	ms, ok := b.member("a")
	require.True(t, ok)
	assert.True(t, ms.Ready)
}

// TestWholeClusterStopsCleanly: every node shutting down at once, as
// "docker compose down" does, is a clean stop for each of them, although
// nobody is left to hear the last ones leave.
func TestWholeClusterStopsCleanly(t *testing.T) {
	first := newMemberNode(t, fastMemberConfig("n0", "127.0.0.1:0", ModeGossip))
	first.start(t)
	nodes := []*memberNode{first}
	for i := 1; i < 3; i++ {
		m := newMemberNode(t, fastMemberConfig(fmt.Sprintf("n%d", i), "127.0.0.1:0", ModeGossip, first.addr()))
		m.start(t)
		nodes = append(nodes, m)
	}
	for _, m := range nodes {
		require.Eventually(t, func() bool { return m.n.ml.NumMembers() == 3 }, 10*time.Second, 10*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, m := range nodes {
		wg.Go(func() { errs[i] = m.n.Close(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, nodes[i].n.cfg.NodeName)
	}
}

// syncBuffer collects a node's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
