//go:build linux

package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// auditChannel is the channel every publisher writes to and every
// subscriber reads.
const auditChannel = "audit"

// publishEvery is each node's publisher's pace: 40 msg/s a node, 120 in
// all.
const publishEvery = 25 * time.Millisecond

// fleet is three pushupd in a lab, a publisher and a pinned subscriber
// per node. Cleanup stops them all.
type fleet struct {
	t      *testing.T
	lab    *lab
	mode   string
	nodes  []*pnode
	client *http.Client

	mu    sync.Mutex
	acked map[string]int // token -> node index that acknowledged it

	ctx     context.Context // ends the publishers and subscribers
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pubStop []chan struct{} // per node: stops its publisher
	subs    []*subscriber
}

// pnode is one pushupd.
type pnode struct {
	i    int
	name string
	url  string // http://10.77.0.i:8080
	log  string // its log file
	d    *testbed.Daemon
}

// subscriber long-polls one node with its cursor and counts what it gets.
type subscriber struct {
	node int
	mu   sync.Mutex
	got  map[string]int // token -> deliveries
	ids  map[string]int // message id -> deliveries
	dead bool           // its node was killed: it stopped
}

func (s *subscriber) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func (s *subscriber) has(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[token] > 0
}

// tokens returns what it received whose token starts with prefix.
func (s *subscriber) tokens(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.got {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// startFleet starts three nodes in a new lab, in replication mode, each
// naming all three in -join, and waits until all are ready.
func startFleet(t *testing.T, mode string) *fleet {
	t.Helper()
	l := newLab(t, 3) // first: skip before building anything
	bin := pushupd.For(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{
		t: t, lab: l, mode: mode, acked: map[string]int{}, ctx: ctx, cancel: cancel,
		client: &http.Client{Transport: &http.Transport{DialContext: l.dial, MaxIdleConnsPerHost: 8}},
	}
	t.Cleanup(f.client.CloseIdleConnections)
	var joins []string
	for i := range 3 {
		joins = append(joins, nodeIP(i)+":7946")
	}
	t.Cleanup(f.stopNodes) // after the lab's cleanup is registered: runs before it
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
	})
	logDir := t.TempDir()
	for i := range 3 {
		n := &pnode{i: i, name: fmt.Sprintf("n%d", i+1), url: "http://" + nodeIP(i) + ":8080",
			log: filepath.Join(logDir, fmt.Sprintf("n%d.log", i+1))}
		f.nodes = append(f.nodes, n)
		logFile, err := os.Create(n.log)
		require.NoError(t, err)
		t.Cleanup(func() { logFile.Close() })
		cfg := testbed.DefaultDaemonConfig()
		cfg.Binary = l.wrapper(i, bin)
		cfg.Listen = nodeIP(i) + ":8080"
		cfg.Log = logFile
		cfg.StartTimeout = 20 * time.Second
		cfg.StopTimeout = 10 * time.Second
		cfg.Args = []string{
			"-node-name", n.name, "-cluster-bind", nodeIP(i) + ":7946", "-join", strings.Join(joins, ","),
			"-replication", mode, "-cluster-key", "netns-test-key",
			// All start together, so no node is ready to copy: each
			// waits this long, then starts alone and the others join.
			"-join-timeout", "2s",
			"-shutdown-timeout", "5s",
			// Keep every message of the run, to show none was lost.
			"-max-messages", "100000",
		}
		d, err := testbed.StartDaemon(cfg)
		require.NoError(t, err)
		n.d = d
	}
	f.waitCluster(nil)
	return f
}

// stopNodes stops every running node with SIGTERM.
func (f *fleet) stopNodes() {
	f.cancel()
	f.wg.Wait()
	for _, n := range f.nodes {
		if n.d == nil {
			continue
		}
		select {
		case <-n.d.Exited():
			continue // killed
		default:
		}
		if err := n.d.Stop(); err != nil {
			f.t.Errorf("stopping %s: %v", n.name, err)
		}
	}
}

func (f *fleet) dumpLogs() {
	for _, n := range f.nodes {
		b, err := os.ReadFile(n.log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		f.t.Logf("--- %s log (last %d lines):\n%s", n.name, len(lines), strings.Join(lines, "\n"))
	}
}

// clusterView is the part of GET /v1/cluster these tests read.
type clusterView struct {
	Ready       bool     `json:"ready"`
	Partitioned bool     `json:"partitioned"`
	Unreachable []string `json:"unreachable"`
	Rejoins     uint64   `json:"rejoins"`
	Members     []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"members"`
}

func (f *fleet) view(n *pnode) (clusterView, error) {
	var v clusterView
	err := f.getJSON(n.url+"/v1/cluster", &v)
	return v, err
}

// waitCluster waits until every live node is ready and sees every other
// live node alive, with nobody unreachable but the dead.
func (f *fleet) waitCluster(dead *pnode) {
	f.t.Helper()
	var last string
	ok := waitFor(60*time.Second, func() bool {
		for _, n := range f.nodes {
			if n == dead {
				continue
			}
			v, err := f.view(n)
			if err != nil || !v.Ready || v.Partitioned {
				last = fmt.Sprintf("%s: %+v %v", n.name, v, err)
				return false
			}
			alive := 0
			for _, m := range v.Members {
				if m.State == "alive" && (dead == nil || m.Name != dead.name) {
					alive++
				}
			}
			want := len(f.nodes)
			if dead != nil {
				want--
			}
			if alive != want {
				last = fmt.Sprintf("%s sees %d alive: %+v", n.name, alive, v.Members)
				return false
			}
		}
		return true
	})
	require.True(f.t, ok, "the cluster never formed: %s", last)
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fleet) getJSON(u string, v any) error { return f.getJSONTimeout(u, v, 5*time.Second) }

// startTraffic starts a publisher and a pinned subscriber on every node.
func (f *fleet) startTraffic() {
	for _, n := range f.nodes {
		s := &subscriber{node: n.i, got: map[string]int{}, ids: map[string]int{}}
		f.subs = append(f.subs, s)
		f.wg.Go(func() { f.subscribe(n, s) })
		stop := make(chan struct{})
		f.pubStop = append(f.pubStop, stop)
		f.wg.Go(func() { f.publish(n, stop) })
	}
}

// stopPublishing stops every publisher and waits until they returned.
func (f *fleet) stopPublishing() {
	for i, c := range f.pubStop {
		if c != nil {
			close(c)
			f.pubStop[i] = nil
		}
	}
}

// publish sends one publication every publishEvery to node n until stop
// or the fleet's end, and records those acknowledged (201).
func (f *fleet) publish(n *pnode, stop chan struct{}) {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		token := fmt.Sprintf("%s-%d", n.name, k)
		body, _ := json.Marshal(map[string]any{"channels": []string{auditChannel}, "data": token})
		ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/v1/publish", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				f.mu.Lock()
				f.acked[token] = n.i
				f.mu.Unlock()
			}
		}
		cancel()
	}
}

// pollAnswer is the part of a subscribe answer the subscribers read.
type pollAnswer struct {
	Messages []struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	} `json:"messages"`
	Cursor    string `json:"cursor"`
	More      bool   `json:"more"`
	Truncated bool   `json:"truncated"`
}

// poll asks node n for what follows cursor on the audit channel.
func (f *fleet) poll(n *pnode, cursor string, timeout string) (pollAnswer, error) {
	var a pollAnswer
	q := url.Values{"channels": {auditChannel}, "timeout": {timeout}}
	if cursor != "" {
		q.Set("since", cursor)
	}
	err := f.getJSONTimeout(n.url+"/v1/subscribe?"+q.Encode(), &a, 15*time.Second)
	return a, err
}

func (f *fleet) getJSONTimeout(u string, v any, d time.Duration) error {
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// subscribe long-polls node n with its cursor until the fleet ends or the
// node is killed.
func (f *fleet) subscribe(n *pnode, s *subscriber) {
	cursor := ""
	for f.ctx.Err() == nil {
		select {
		case <-n.d.Exited():
			s.mu.Lock()
			s.dead = true
			s.mu.Unlock()
			return
		default:
		}
		a, err := f.poll(n, cursor, "5")
		if err != nil {
			select {
			case <-f.ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.mu.Lock()
		for _, m := range a.Messages {
			var token string
			if json.Unmarshal(m.Data, &token) == nil {
				s.got[token]++
			}
			s.ids[m.ID]++
		}
		s.mu.Unlock()
		cursor = a.Cursor
	}
}

// ackedSnapshot returns every acknowledged token so far.
func (f *fleet) ackedSnapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.acked))
	for k, v := range f.acked {
		out[k] = v
	}
	return out
}

// waitDelivered waits until every live subscriber has every token of want
// (but those acknowledged by a skipped node), and returns how long it took.
// It fails the test after bound.
func (f *fleet) waitDelivered(what string, want map[string]int, skip *pnode, bound time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	var missing string
	ok := waitFor(bound, func() bool {
		for _, s := range f.subs {
			if s.stopped() {
				continue
			}
			k, example := 0, ""
			for tok, from := range want {
				if skip != nil && from == skip.i {
					continue
				}
				if !s.has(tok) {
					k++
					example = tok
				}
			}
			if k > 0 {
				missing = fmt.Sprintf("n%d's subscriber lacks %d of %d acknowledged messages (e.g. %s)", s.node+1, k, len(want), example)
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	require.True(f.t, ok, "%s: not every acknowledged message on every node within %s: %s", what, bound, missing)
	f.t.Logf("%s: every acknowledged publication (%d) reached every live node's subscriber %.1f s later", what, len(want), took.Seconds())
	return took
}

// checkExactlyOnce checks that no subscriber got a message twice, and
// that each live node's whole history holds exactly what its subscriber
// received, every acknowledged message included.
func (f *fleet) checkExactlyOnce(skip *pnode) {
	f.t.Helper()
	acked := f.ackedSnapshot()
	for _, s := range f.subs {
		s.mu.Lock()
		for tok, k := range s.got {
			require.Equal(f.t, 1, k, "n%d's subscriber got %s %d times", s.node+1, tok, k)
		}
		for id, k := range s.ids {
			require.Equal(f.t, 1, k, "n%d's subscriber got id %s %d times", s.node+1, id, k)
		}
		got := len(s.got)
		dead := s.dead
		s.mu.Unlock()
		if dead {
			continue
		}
		hist := f.history(f.nodes[s.node])
		require.Equal(f.t, s.tokens(""), hist, "n%d's history is not what its subscriber received", s.node+1)
		for tok, from := range acked {
			if skip != nil && from == skip.i {
				continue
			}
			require.True(f.t, s.has(tok), "n%d lacks acknowledged %s", s.node+1, tok)
		}
		f.t.Logf("n%d: subscriber received %d messages, each once; history matches", s.node+1, got)
	}
}

// history reads every message node n holds on the audit channel.
func (f *fleet) history(n *pnode) []string {
	f.t.Helper()
	var out []string
	cursor := "0"
	for range 1000 {
		a, err := f.poll(n, cursor, "0")
		require.NoError(f.t, err)
		require.False(f.t, a.Truncated, "%s evicted messages", n.name)
		for _, m := range a.Messages {
			var token string
			require.NoError(f.t, json.Unmarshal(m.Data, &token))
			out = append(out, token)
		}
		cursor = a.Cursor
		if !a.More {
			slices.Sort(out)
			return out
		}
	}
	f.t.Fatalf("%s: history did not end", n.name)
	return nil
}
