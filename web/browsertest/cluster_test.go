package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

// demoCluster is three pushupd processes with the demo on, joined into a
// cluster, behind HAProxy with the local configuration deploy/ tests.
type demoCluster struct {
	URL   string // HAProxy's frontend
	nodes []*testbed.Daemon
}

func startDemoCluster(t *testing.T) *demoCluster {
	t.Helper()
	haproxy := testbed.HAProxyOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := testbed.BuildPushupd(ctx, t.TempDir())
	require.NoError(t, err)

	c := &demoCluster{}
	var first string
	var servers []haproxycfg.Server
	for i, name := range []string{"n1", "n2", "n3"} {
		bind, err := testbed.FreeLoopbackAddr(true)
		require.NoError(t, err)
		// One subscriber key for all: a token the demo mints on one node
		// must open user:<name> on the others.
		args := []string{"-demo", "-node-name", name, "-cluster-bind", bind, "-cluster-key", "browser-test",
			"-join-timeout", "3s", "-subscriber-key", "the-browser-test-cluster-subscriber-key"}
		if i == 0 {
			first = bind
		} else {
			args = append(args, "-join", first)
		}
		cfg := testbed.DefaultDaemonConfig()
		cfg.Binary, cfg.Args = bin, args
		d, err := testbed.StartDaemon(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { d.Stop() })
		c.nodes = append(c.nodes, d)
		servers = append(servers, haproxycfg.Server{Name: name, Addr: strings.TrimPrefix(d.URL, "http://")})
	}
	for _, d := range c.nodes {
		require.Eventually(t, func() bool { return clusterSize(d.URL) == 3 }, 20*time.Second, 20*time.Millisecond,
			"%s sees the three nodes", d.URL)
	}
	hcfg := testbed.DefaultHAProxyConfig()
	hcfg.Binary = haproxy
	hcfg.Balance = "roundrobin" // so consecutive posts land on different nodes
	h, err := testbed.StartHAProxy(ctx, hcfg, servers)
	require.NoError(t, err)
	t.Cleanup(func() { h.Stop() })
	require.NoError(t, h.WaitUp(ctx, 10*time.Second))
	c.URL = h.URL
	return c
}

// waiting is how many polls wait on channel, summed over the nodes.
func (c *demoCluster) waiting(channel string) int {
	n := 0
	for _, d := range c.nodes {
		resp, err := http.Get(d.URL + "/v1/channels/" + channel)
		if err != nil {
			return -1
		}
		var info struct {
			Subscribers int `json:"subscribers"`
		}
		if resp.StatusCode == http.StatusOK {
			json.NewDecoder(resp.Body).Decode(&info)
		}
		resp.Body.Close()
		n += info.Subscribers
	}
	return n
}

// clusterSize is how many alive, ready members a node reports.
func clusterSize(base string) int {
	resp, err := http.Get(base + "/v1/cluster")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Members []struct {
			State string `json:"state"`
			Ready bool   `json:"ready"`
		} `json:"members"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	n := 0
	for _, m := range st.Members {
		if m.State == "alive" && m.Ready {
			n++
		}
	}
	return n
}

// postThrough posts a question through HAProxy and returns its id and the
// node that took it.
func postThrough(t *testing.T, base, author, title string, tags ...string) (id, node string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"author": author, "title": title, "tags": tags})
	resp, err := http.Post(base+"/demo/api/questions", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var answer struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	return answer.ID, resp.Header.Get("X-Pushup-Server")
}

// TestDemoAgainstClusterBehindHAProxy: the demo, unchanged, behind HAProxy
// in front of three nodes. Questions posted through HAProxy land on
// different nodes, the pages' polls go to whichever node HAProxy picks,
// and each page shows each question it follows once, in time order.
func TestDemoAgainstClusterBehindHAProxy(t *testing.T) {
	chromiumOrSkip(t) // first: skip before building anything
	// The pages after the cluster: building and starting it can take
	// longer than a page's actions may on a loaded machine.
	c := startDemoCluster(t)
	alice := newPage(t, "alice")
	bob := newPage(t, "bob")
	run(t, alice, chromedp.Navigate(c.URL+"/demo/?name=alice&tags=go,javascript"))
	run(t, bob, chromedp.Navigate(c.URL+"/demo/?name=bob&tags=javascript,rust"))
	require.Eventually(t, func() bool {
		return c.waiting("tag:javascript") == 2 && c.waiting("tag:go") == 1 && c.waiting("tag:rust") == 1
	}, 10*time.Second, 10*time.Millisecond, "both pages' polls wait, on whichever nodes HAProxy gave them")

	var want []string
	took := map[string]bool{}
	for i, q := range []struct {
		author, title string
		tags          []string
	}{
		{"carol", "Does the cursor survive a node change?", []string{"javascript", "go"}},
		{"dave", "Which node answered me?", []string{"rust"}},
		{"erin", "Unrelated question", []string{"python"}},
		{"frank", "Gossip or unicast?", []string{"go", "javascript", "rust"}},
	} {
		id, node := postThrough(t, c.URL, q.author, q.title, q.tags...)
		took[node] = true
		if i != 2 {
			want = append(want, id)
		}
	}
	assert.GreaterOrEqual(t, len(took), 2, "questions went to several nodes: %v", took)
	assert.NotContains(t, took, "", "HAProxy names the node that took each question")

	expect := map[string][]string{"alice": {want[2], want[0]}, "bob": {want[2], want[1], want[0]}}
	for name, page := range map[string]context.Context{"alice": alice, "bob": bob} {
		waitFor(t, page, name+" to show the last question", shows(want[2]), 10*time.Second)
		items := feed(t, page)
		assert.Equal(t, expect[name], ids(items), "%s: each followed question once, newest first", name)
		for i, it := range items {
			if i > 0 {
				assert.LessOrEqual(t, it.Time, items[i-1].Time, "%s: time order", name)
			}
		}
	}
	assert.Equal(t, "live", eval[string](t, alice, `document.getElementById("status").dataset.state`))

	// Alice's private channel: a token the demo minted on one node opens
	// user:alice on every node, so her page reads it whichever node polls.
	resp, err := http.Get(c.nodes[0].URL + "/demo/api/token?name=alice")
	require.NoError(t, err)
	var tok struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	for _, d := range c.nodes {
		resp, err := http.Get(d.URL + "/v1/subscribe?timeout=0&channels=user:alice&token=" + tok.Token)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s accepts a token minted by %s", d.URL, c.nodes[0].URL)
	}
	resp, err = http.Post(c.nodes[2].URL+"/v1/publish", "application/json",
		strings.NewReader(`{"channels":["user:alice"],"data":{"text":"frank answered your question"}}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	waitFor(t, alice, "alice's private notification", `document.querySelectorAll("#inbox li").length === 1`, 10*time.Second)
	assert.Equal(t, "live", eval[string](t, alice, `document.getElementById("inbox-status").dataset.state`))
	screenshot(t, bob, "demo-cluster-bob")
}
