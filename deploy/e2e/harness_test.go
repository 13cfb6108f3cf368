package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

// clusterKey authenticates the test cluster's node-to-node traffic.
const clusterKey = "e2e-cluster-key"

// testCluster is three pushupd processes and an haproxy in front of them,
// all on loopback ports picked at random. Cleanup stops them all.
type testCluster struct {
	t      *testing.T
	bin    string
	mode   string
	nodes  []*node
	lb     string // haproxy's frontend, "http://127.0.0.1:PORT"
	hap    *testbed.HAProxy
	client *http.Client

	// What the kill step leaves for the restart step: the messages the
	// survivors acknowledged, and a subscriber's cursor with what it had
	// received by then.
	killedKeys []msgKey
	resume     string
	resumeGot  []msgKey
}

// node is one pushupd of the cluster. Its ports stay the same across
// restarts.
type node struct {
	name string
	url  string // http://127.0.0.1:PORT
	http string // 127.0.0.1:PORT
	bind string // memberlist's 127.0.0.1:PORT
	args []string
	d    *testbed.Daemon
	// logs of earlier runs (before a kill), for failure messages
	past []string
}

// startCluster starts three nodes that all name all three in -join, as
// every replica of a docker compose service does, and haproxy in front.
func startCluster(t *testing.T, mode string) *testCluster {
	t.Helper()
	hapBin := testbed.HAProxyOrSkip(t) // first: skip before building anything
	c := &testCluster{
		t: t, bin: pushupd.For(t), mode: mode,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 30 * time.Second},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})

	var joins []string
	for i := range 3 {
		n := &node{name: fmt.Sprintf("n%d", i+1), http: freeAddr(t, false), bind: freeAddr(t, true)}
		n.url = "http://" + n.http
		joins = append(joins, n.bind)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.args = []string{
			"-node-name", n.name, "-cluster-bind", n.bind, "-join", strings.Join(joins, ","),
			"-replication", mode, "-cluster-key", clusterKey,
			// No node is ready when all start together: each waits this
			// long for a ready peer to copy, then starts alone.
			"-join-timeout", "2s",
			"-shutdown-timeout", "5s",
			// The kill step's channel gets 1,200 messages; a node must
			// keep them all to show it lost none.
			"-max-messages", "10000",
		}
	}
	t.Cleanup(c.stopNodes)
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitReady(c.nodes...)

	var servers []haproxycfg.Server
	for _, n := range c.nodes {
		servers = append(servers, haproxycfg.Server{Name: n.name, Addr: n.http})
	}
	c.hap = startHAProxy(t, hapBin, servers)
	c.lb = c.hap.URL
	c.waitServers(map[string]string{"n1": "UP", "n2": "UP", "n3": "UP"})
	return c
}

// start runs a node's pushupd (again, after a kill, with the same
// arguments and ports).
func (c *testCluster) start(n *node) {
	c.t.Helper()
	cfg := testbed.DefaultDaemonConfig()
	cfg.Binary, cfg.Listen, cfg.Args = c.bin, n.http, n.args
	cfg.StartTimeout = 15 * time.Second
	cfg.StopTimeout = 10 * time.Second
	d, err := testbed.StartDaemon(cfg)
	require.NoError(c.t, err)
	n.d = d
}

// kill ends a node with SIGKILL.
func (c *testCluster) kill(n *node) {
	n.d.Kill()
	n.past = append(n.past, n.d.Log())
}

// stopNodes stops every running node with SIGTERM, one after the other,
// and requires each to exit 0: a graceful leave.
func (c *testCluster) stopNodes() {
	for _, n := range c.nodes {
		if n.d == nil {
			continue
		}
		select {
		case <-n.d.Exited():
			continue // killed and not restarted
		default:
		}
		if err := n.d.Stop(); err != nil {
			c.t.Errorf("stopping %s: %v", n.name, err)
		}
	}
}

func (c *testCluster) dumpLogs() {
	for _, n := range c.nodes {
		for i, l := range n.past {
			c.t.Logf("--- %s log (run %d, killed):\n%s", n.name, i+1, l)
		}
		if n.d != nil {
			c.t.Logf("--- %s log:\n%s", n.name, n.d.Log())
		}
	}
	if c.hap != nil {
		c.t.Logf("--- haproxy:\n%s", c.hap.Log())
	}
}

// healthCheck runs the image's HEALTHCHECK command against node n:
// pushupd -healthcheck /healthz/ready with PUSHUP_LISTEN set to n's.
func (c *testCluster) healthCheck(n *node) error {
	cmd := exec.Command(c.bin, "-healthcheck", "/healthz/ready")
	cmd.Env = append(os.Environ(), "PUSHUP_LISTEN="+n.http)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// waitReady waits until the nodes answer /healthz/ready with 200.
func (c *testCluster) waitReady(nodes ...*node) {
	c.t.Helper()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	require.Eventually(c.t, func() bool { return testbed.Ready(c.client, urls...) }, 20*time.Second, 20*time.Millisecond, "nodes not ready")
}

// waitServers waits until haproxy shows each server in the given state.
func (c *testCluster) waitServers(want map[string]string) {
	c.t.Helper()
	var last map[string]string
	var lastErr error
	ok := assert.Eventually(c.t, func() bool {
		last, lastErr = c.hap.ServerStatus(context.Background())
		if lastErr != nil {
			return false
		}
		for name, st := range want {
			if last[name] != st {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond)
	require.True(c.t, ok, "haproxy servers: want %v, last seen %v (%v)", want, last, lastErr)
}

// memberState is a member's state as node n sees it in /v1/cluster.
func (c *testCluster) clusterStatus(n *node) (clusterStatus, error) {
	var st clusterStatus
	resp, err := c.client.Get(n.url + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/v1/cluster: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

type clusterStatus struct {
	Node    string `json:"node"`
	Mode    string `json:"replication"`
	Ready   bool   `json:"ready"`
	Members []struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		Ready       bool   `json:"ready"`
		Origin      string `json:"origin"`
		Replication *struct {
			Behind uint64          `json:"behind"`
			Stream json.RawMessage `json:"stream"`
		} `json:"replication"`
	} `json:"members"`
}

// freeAddr returns a loopback host:port nobody is bound to (with udp,
// for UDP too: memberlist binds both), outside the ephemeral port range.
func freeAddr(t *testing.T, udp bool) string {
	t.Helper()
	addr, err := testbed.FreeLoopbackAddr(udp)
	require.NoError(t, err)
	return addr
}

// msgKey identifies a test message: its publisher and its number.
type msgKey struct {
	P string `json:"p"`
	I int    `json:"i"`
}

func (k msgKey) String() string { return k.P + "/" + strconv.Itoa(k.I) }

type message struct {
	ID       string   `json:"id"`
	Time     int64    `json:"time"`
	Channels []string `json:"channels"`
	Data     msgKey   `json:"data"`
}

type answer struct {
	Messages  []message `json:"messages"`
	Cursor    string    `json:"cursor"`
	More      bool      `json:"more"`
	Truncated bool      `json:"truncated"`
}

// poll makes one subscribe request; it returns the answer and the
// haproxy server that answered ("" when asked directly).
func (c *testCluster) poll(ctx context.Context, base, channel, since string, timeout time.Duration) (answer, string, error) {
	var a answer
	q := url.Values{"channels": {channel}, "timeout": {strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)}}
	if since != "" {
		q.Set("since", since)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe?"+q.Encode(), nil)
	if err != nil {
		return a, "", err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return a, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return a, "", fmt.Errorf("subscribe %s: %s: %s", base, resp.Status, body)
	}
	return a, resp.Header.Get("X-Pushup-Server"), json.Unmarshal(body, &a)
}

// publish posts one message; it returns the haproxy server that took it
// ("" when posted directly).
func (c *testCluster) publish(base, channel string, k msgKey) (string, error) {
	body, _ := json.Marshal(map[string]any{"channels": []string{channel}, "data": k})
	resp, err := c.client.Post(base+"/v1/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("publish to %s: %s: %s", base, resp.Status, b)
	}
	return resp.Header.Get("X-Pushup-Server"), nil
}

// readAll reads every cached message of a channel from one node, from the
// start, following "more".
func (c *testCluster) readAll(base, channel string) ([]message, error) {
	var out []message
	since := "0"
	for range 1000 {
		a, _, err := c.poll(context.Background(), base, channel, since, 0)
		if err != nil {
			return nil, err
		}
		if a.Truncated {
			return nil, errors.New("truncated answer")
		}
		out = append(out, a.Messages...)
		since = a.Cursor
		if !a.More {
			return out, nil
		}
	}
	return nil, errors.New("more than 1000 pages")
}

// subscriber long-polls one channel in a loop, each poll to the base URL
// next gives it, and records what it receives. It runs until stopped.
type subscriber struct {
	name    string
	channel string
	next    func(k int) string

	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	got       []msgKey
	count     map[msgKey]int
	servers   map[string]int // answers by node
	last      string         // the node of the last answer
	bases     map[string]int // polls by base URL
	errs      []string
	truncated bool
	cursor    string
	killed    bool           // set by the test when a node was killed
	after     map[string]int // answers by server after that
}

// subscribe starts a subscriber from the start of the channel's cache.
func (c *testCluster) subscribe(name, channel string, next func(k int) string) *subscriber {
	return c.subscribeFrom(name, channel, "0", next)
}

// subscribeFrom starts a subscriber from a cursor (or "now", or "0").
func (c *testCluster) subscribeFrom(name, channel, since string, next func(k int) string) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{name: name, channel: channel, next: next, cancel: cancel, done: make(chan struct{}),
		count: map[msgKey]int{}, servers: map[string]int{}, bases: map[string]int{}, after: map[string]int{}}
	go s.run(ctx, c, since)
	c.t.Cleanup(s.stop)
	return s
}

func (s *subscriber) run(ctx context.Context, c *testCluster, since string) {
	defer close(s.done)
	for k := 0; ctx.Err() == nil; k++ {
		base := s.next(k)
		a, server, err := c.poll(ctx, base, s.channel, since, 2*time.Second)
		s.mu.Lock()
		s.bases[base]++
		if err != nil {
			if ctx.Err() == nil {
				s.errs = append(s.errs, err.Error())
			}
			s.mu.Unlock()
			// A failed poll is retried from the same cursor, as pushup.js
			// does, after a pause that keeps a dead node from spinning us.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		for _, m := range a.Messages {
			s.got = append(s.got, m.Data)
			s.count[m.Data]++
		}
		if server != "" {
			s.last = server
			s.servers[server]++
			if s.killed {
				s.after[server]++
			}
		}
		s.truncated = s.truncated || a.Truncated
		s.cursor = a.Cursor
		s.mu.Unlock()
		since = a.Cursor
	}
}

func (s *subscriber) stop() {
	s.cancel()
	<-s.done
}

// has reports whether the subscriber received every key.
func (s *subscriber) has(keys []msgKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if s.count[k] == 0 {
			return false
		}
	}
	return true
}

// missing lists up to 10 keys the subscriber did not receive.
func (s *subscriber) missing(keys []msgKey) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range keys {
		if s.count[k] == 0 && len(out) < 10 {
			out = append(out, k.String())
		}
	}
	return out
}

// duplicates lists the keys the subscriber received more than once.
func (s *subscriber) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, n := range s.count {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s x%d", k, n))
		}
	}
	return out
}

// inOrder reports the first message of a publisher received before an
// earlier one of the same publisher, if any: one publisher's messages,
// published one after the other to one node, arrive in that order.
func (s *subscriber) outOfOrder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]int{}
	for _, k := range s.got {
		if prev, ok := last[k.P]; ok && k.I <= prev {
			return fmt.Sprintf("%s after %s/%d", k, k.P, prev)
		}
		last[k.P] = k.I
	}
	return ""
}

// publisher posts numbered messages to one channel, each to the base URL
// next gives it, one after the other, until n are posted or it is
// stopped. It records which were acknowledged and by which server.
type publisher struct {
	name string
	mu   sync.Mutex
	// acked maps each acknowledged message to the server that took it
	// (haproxy's name for it, or the base URL when posted directly).
	acked  map[msgKey]string
	failed []msgKey // not acknowledged: published or not
	posted int
	done   chan struct{}
	stopCh chan struct{}
	once   sync.Once
}

// publishN starts a publisher of n messages. With keepGoing it carries on
// after a failure (posting through haproxy); otherwise it stops at the
// first (posting to a node directly, which died).
func (c *testCluster) publishN(name, channel string, n int, base string, keepGoing bool) *publisher {
	p := &publisher{name: name, acked: map[msgKey]string{}, done: make(chan struct{}), stopCh: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := range n {
			select {
			case <-p.stopCh:
				return
			default:
			}
			k := msgKey{P: name, I: i}
			server, err := c.publish(base, channel, k)
			if server == "" {
				server = base
			}
			p.mu.Lock()
			p.posted++
			if err == nil {
				p.acked[k] = server
			} else {
				p.failed = append(p.failed, k)
			}
			p.mu.Unlock()
			if err != nil && !keepGoing {
				return
			}
		}
	}()
	c.t.Cleanup(p.stop)
	return p
}

func (p *publisher) stop() {
	p.once.Do(func() { close(p.stopCh) })
	<-p.done
}

// progress is how many messages the publisher has posted.
func (p *publisher) progress() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.posted
}

// ackedBy lists the acknowledged messages taken by one of the servers.
func (p *publisher) ackedBy(servers ...string) []msgKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []msgKey
	for k, s := range p.acked {
		for _, x := range servers {
			if s == x {
				out = append(out, k)
			}
		}
	}
	return out
}
