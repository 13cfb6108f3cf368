package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
)

// faults is a test network's misbehaviour: packet loss, partitions, and
// nodes that are down. It covers both memberlist's traffic (through
// faultyTransport) and the nodes' HTTP traffic (through faultyHandler).
type faults struct {
	mu    sync.Mutex
	loss  float64
	rng   *rand.Rand
	group map[string]int // partition group by node name; same group talks
	down  map[string]bool
	// noHTTP refuses node-to-node HTTP (streams, repairs, snapshots)
	// while memberlist's own traffic still flows.
	noHTTP bool
}

func newFaults() *faults {
	return &faults{rng: rand.New(rand.NewPCG(1, 2)), group: map[string]int{}, down: map[string]bool{}}
}

// cut reports whether traffic between a and b is blocked.
func (f *faults) cut(a, b string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down[a] || f.down[b] || f.group[a] != f.group[b]
}

// drop reports whether one packet from a to b is lost.
func (f *faults) drop(a, b string) bool {
	if f.cut(a, b) {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < f.loss
}

func (f *faults) setLoss(p float64) {
	f.mu.Lock()
	f.loss = p
	f.mu.Unlock()
}

// partition puts each node in the group given; unnamed nodes are in 0.
func (f *faults) partition(groups map[string]int) {
	f.mu.Lock()
	f.group = groups
	f.mu.Unlock()
}

func (f *faults) heal() { f.partition(map[string]int{}) }

func (f *faults) blockHTTP(block bool) {
	f.mu.Lock()
	f.noHTTP = block
	f.mu.Unlock()
}

func (f *faults) httpBlocked() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.noHTTP
}

func (f *faults) setDown(name string, down bool) {
	f.mu.Lock()
	f.down[name] = down
	f.mu.Unlock()
}

// faultyHandler refuses node-to-node HTTP requests across a partition and
// cuts replication streams when one starts.
func faultyHandler(name string, f *faults, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := r.Header.Get("X-Pushup-Node")
		if f.cut(from, name) || f.httpBlocked() {
			http.Error(w, "partitioned", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(&cuttable{ResponseWriter: w, from: from, to: name, f: f}, r)
	})
}

// cuttable hands out connections that fail once their peers are cut off.
type cuttable struct {
	http.ResponseWriter
	from, to string
	f        *faults
}

func (c *cuttable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	cc := &cutConn{Conn: conn, c: c}
	// What the server already read comes first; every later read goes
	// through cc, which fails once the peers are cut off.
	early, _ := rw.Reader.Peek(rw.Reader.Buffered())
	r := io.MultiReader(bytes.NewReader(bytes.Clone(early)), cc)
	return cc, bufio.NewReadWriter(bufio.NewReader(r), rw.Writer), nil
}

type cutConn struct {
	net.Conn
	c *cuttable
}

func (c *cutConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.c.f.cut(c.c.from, c.c.to) {
		c.Conn.Close()
		return 0, fmt.Errorf("partitioned")
	}
	return n, err
}

// testNode is a broker and its cluster node, on the in-memory network and
// a loopback HTTP server.
type testNode struct {
	once sync.Once
	name string
	b    *broker.Broker
	n    *Node
	srv  *httptest.Server
	mt   *memTransport
}

// testCluster is a set of nodes on one in-memory network.
type testCluster struct {
	t      *testing.T
	net    *memNet
	f      *faults
	nodes  map[string]*testNode
	mode   Mode
	config func(*Config)
	// tune, when set, adjusts each node's memberlist configuration.
	tune func(*memberlist.Config)
}

func newTestCluster(t *testing.T, mode Mode) *testCluster {
	f := newFaults()
	return &testCluster{t: t, net: newMemNet(f), f: f, nodes: map[string]*testNode{}, mode: mode}
}

// fastConfig shrinks every interval so tests take seconds, not minutes.
func fastConfig(name string, mode Mode) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.Bind = "127.0.0.1:0"
	cfg.Mode = mode
	cfg.Key = "test-key"
	cfg.JoinTimeout = 5 * time.Second
	cfg.GossipInterval = 10 * time.Millisecond
	cfg.AnnounceInterval = 100 * time.Millisecond
	cfg.PushPullInterval = 300 * time.Millisecond
	cfg.RepairAfter = 200 * time.Millisecond
	cfg.ProbeInterval = 100 * time.Millisecond
	cfg.ProbeTimeout = 50 * time.Millisecond
	cfg.LeaveTimeout = 500 * time.Millisecond
	return cfg
}

// start adds a node named name, joining the first node if there is one.
func (c *testCluster) start(name string, join ...string) *testNode {
	c.t.Helper()
	cfg := fastConfig(name, c.mode)
	if c.config != nil {
		c.config(&cfg)
	}
	var mux http.Handler
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mux.ServeHTTP(w, r) })
	srv := httptest.NewServer(handler)
	cfg.HTTP = srv.URL
	for _, j := range join {
		cfg.Join = append(cfg.Join, c.nodes[j].mt.addr)
	}
	var out io.Writer = io.Discard
	if os.Getenv("PUSHUP_TEST_LOG") != "" { // node logs, for debugging a test
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	node, err := New(cfg, log)
	require.NoError(c.t, err)
	mt := c.net.transport(name)
	node.transport = mt
	node.tune = c.tune
	bcfg := broker.DefaultConfig()
	bcfg.OnCommit = node.Commit
	b, err := broker.New(bcfg)
	require.NoError(c.t, err)
	mux = faultyHandler(name, c.f, node.Handler())
	tn := &testNode{name: name, b: b, n: node, srv: srv, mt: mt}
	c.nodes[name] = tn
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(c.t, node.Start(ctx, b))
	c.t.Cleanup(func() { tn.stop() })
	return tn
}

// stop shuts a node down gracefully (idempotent).
func (n *testNode) stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.b.Close()
		n.n.Close(ctx)
		n.srv.Close()
	})
}

// kill makes a node vanish without a goodbye, like kill -9: its network
// goes silent, and then its goroutines are stopped.
func (c *testCluster) kill(name string) {
	tn := c.nodes[name]
	tn.mt.Shutdown()
	tn.srv.CloseClientConnections()
	tn.n.closing.Store(true) // no leave message, no draining
	tn.n.ml.Shutdown()
	close(tn.n.stop)
	tn.n.pmu.Lock()
	for _, p := range tn.n.peers {
		if p.sender != nil {
			p.sender.close()
		}
	}
	tn.n.pmu.Unlock()
	tn.n.wg.Wait()
	tn.once.Do(func() {
		tn.b.Close()
		tn.srv.Close()
	})
}
