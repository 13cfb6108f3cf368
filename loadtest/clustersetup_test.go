package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// balancedRun is a run of n local nodes in a cluster behind HAProxy.
func balancedRun(n int) RunConfig {
	rc := DefaultRunConfig()
	dc := testbed.DefaultDaemonConfig()
	dc.Binary = "/bin/pushupd"
	rc.Server.Daemons = nil
	for range n {
		rc.Server.Daemons = append(rc.Server.Daemons, dc)
	}
	rc.Server.Cluster = &ClusterSetup{Replication: "unicast", FormTimeout: 30 * time.Second}
	hc := testbed.DefaultHAProxyConfig()
	hc.MaxConn = rc.Subscribers.Subscribers + 1
	rc.Server.HAProxy = &hc
	return rc
}

func TestServerSetupValidate(t *testing.T) {
	require.NoError(t, balancedRun(3).Validate())
	for name, mutate := range map[string]func(*RunConfig){
		"no daemons": func(rc *RunConfig) {
			rc.Server.Daemons, rc.Server.URLs = nil, []string{"http://127.0.0.1:1"}
		},
		"unknown replication":   func(rc *RunConfig) { rc.Server.Cluster.Replication = "multicast" },
		"no form timeout":       func(rc *RunConfig) { rc.Server.Cluster.FormTimeout = 0 },
		"daemon sets -join":     func(rc *RunConfig) { rc.Server.Daemons[1].Args = []string{"-gc-percent", "50", "--join=x:1"} },
		"daemon sets node name": func(rc *RunConfig) { rc.Server.Daemons[0].Args = []string{"-node-name", "a"} },
		"maxconn below clients": func(rc *RunConfig) { rc.Server.HAProxy.MaxConn = rc.Subscribers.Subscribers },
		"publish to nodes without haproxy": func(rc *RunConfig) {
			rc.Server.HAProxy, rc.Server.PublishToNodes = nil, true
		},
	} {
		rc := balancedRun(2)
		mutate(&rc)
		assert.ErrorIs(t, rc.Validate(), ErrInvalidConfig, name)
	}
	// Publishers that go to the nodes need no room in HAProxy.
	rc := balancedRun(2)
	rc.Server.HAProxy.MaxConn = rc.Subscribers.Subscribers
	rc.Server.PublishToNodes = true
	assert.NoError(t, rc.Validate())
}

func TestClusterDaemons(t *testing.T) {
	dc := testbed.DefaultDaemonConfig()
	dc.Args = []string{"-gc-percent", "50"}
	setup := ClusterSetup{Replication: "gossip", FormTimeout: 7 * time.Second}
	out, err := clusterDaemons([]testbed.DaemonConfig{dc, dc, dc}, setup)
	require.NoError(t, err)
	require.Len(t, out, 3)
	flag := func(args []string, name string) string {
		for i, a := range args {
			if a == "-"+name && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	first := out[0].Args
	assert.Equal(t, "n1", flag(first, "node-name"))
	assert.Empty(t, flag(first, "join"), "node 1 starts the cluster")
	assert.Equal(t, []string{"-gc-percent", "50"}, first[len(first)-2:], "the daemon's own flags last")
	for i, d := range out[1:] {
		assert.Equal(t, nodeName(i+1), flag(d.Args, "node-name"))
		assert.Equal(t, flag(first, "cluster-bind"), flag(d.Args, "join"), "the others join node 1")
		assert.Equal(t, "7s", flag(d.Args, "join-timeout"))
		assert.Equal(t, "gossip", flag(d.Args, "replication"))
		assert.Equal(t, flag(first, "cluster-key"), flag(d.Args, "cluster-key"), "one key")
		assert.NotEqual(t, flag(first, "cluster-bind"), flag(d.Args, "cluster-bind"))
	}
	assert.Len(t, flag(first, "cluster-key"), 32)
	assert.Equal(t, []string{"-gc-percent", "50"}, dc.Args, "the caller's config untouched")
}

// TestE2EClusterBehindHAProxy runs Run with two nodes in a cluster behind
// HAProxy, subscribers through it and the publisher straight to the nodes
// in turn: every message reaches every subscriber once whichever node
// took it, HAProxy spread the subscribers over both, and every process is
// gone afterwards.
func TestE2EClusterBehindHAProxy(t *testing.T) {
	bin := testbed.HAProxyOrSkip(t)
	rc := balancedRun(2)
	for i := range rc.Server.Daemons {
		rc.Server.Daemons[i].Binary = pushupd.For(t)
	}
	rc.Server.HAProxy.Binary = bin
	rc.Server.PublishToNodes = true
	rc.Subscribers.Subscribers = 20
	rc.Subscribers.PollInterval = 30 * time.Second
	rc.Publishers[0].Messages = 4
	rc.Publishers[0].Interval = 100 * time.Millisecond
	rc.Drain, rc.Timeout = 10*time.Second, time.Minute
	quick(&rc.Settle, &rc.WarmUp)

	res, err := Run(context.Background(), rc)
	require.NoError(t, err)
	assert.Equal(t, Delivery{Published: 4, Expected: 80, Received: 80, RMP: 100}, res.Delivery)
	assert.Empty(t, res.Errors)
	require.Len(t, res.Servers, 2)
	require.Len(t, res.Waiting, 2)
	assert.Equal(t, int64(20), res.Waiting[0]+res.Waiting[1])
	assert.Positive(t, res.Waiting[0], "leastconn spread them: %v", res.Waiting)
	assert.Positive(t, res.Waiting[1], "leastconn spread them: %v", res.Waiting)
	targets := map[string]int{}
	for _, p := range res.Publishes {
		targets[p.Target]++
	}
	assert.Equal(t, map[string]int{res.Servers[0].URL: 2, res.Servers[1].URL: 2}, targets, "published to the nodes in turn")
	require.NotNil(t, res.Balancer)
	assert.Equal(t, "leastconn", res.Balancer.Balance)
	assert.Positive(t, res.Balancer.ParkedRSS)
	assert.GreaterOrEqual(t, res.Balancer.PublishCPUSeconds, 0.0)
	assert.True(t, gone(res.Balancer.PID), "haproxy stopped")
	for _, s := range res.Servers {
		assert.True(t, gone(s.PID), "%s stopped", s.Name)
		assert.True(t, strings.HasPrefix(s.Name, "n"))
	}
}
