//go:build linux

package netns

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// healBound is how long after a cut heals every node may take to hold
// every acknowledged publication. Measured on a loaded 2-core machine:
// see the README's "Partitions" figures; this leaves room for CI.
const healBound = 30 * time.Second

// TestFaults cuts node n3 off from the other two for 10 s and then for
// 30 s, under publishing on every node, in both replication modes, and
// checks after each heal that every acknowledged publication reaches
// every node, and that a subscriber pinned to each node gets each message
// exactly once. In gossip mode it then runs 20% node-to-node packet loss,
// and under it kills n1 with SIGKILL: the survivors must hold each other's
// copies of n1's events within seconds.
func TestFaults(t *testing.T) {
	for _, mode := range []string{"unicast", "gossip"} {
		t.Run(mode, func(t *testing.T) {
			f := startFleet(t, mode)
			f.startTraffic()
			time.Sleep(2 * time.Second) // traffic flowing before the first fault
			f.partition(2, 10*time.Second, false)
			f.partition(2, 30*time.Second, true)
			var skip *pnode
			if mode == "gossip" {
				// The kill happens under the loss too: the survivors
				// then miss different parts of n1's last events.
				f.lab.loss(20)
				f.lossFor(20, 15*time.Second)
				f.kill(0)
				f.lab.noLoss()
				skip = f.nodes[0]
			}
			f.stopPublishing()
			f.waitDelivered("at the end", f.ackedSnapshot(), skip, healBound)
			f.checkExactlyOnce(skip)
		})
	}
}

// partition cuts node i off from the others for d, under traffic, then
// heals and waits until every acknowledged publication is everywhere.
// With check, it requires /v1/cluster and /healthz/ready to show the cut
// while it lasts, and the rejoin to be counted after.
func (f *fleet) partition(i int, d time.Duration, check bool) {
	f.t.Helper()
	n := f.nodes[i]
	f.t.Logf("cutting %s off for %s", n.name, d)
	at := time.Now()
	f.lab.cut(i)
	if check {
		var seen string
		ok := waitFor(d, func() bool {
			v, err := f.view(n)
			if err != nil || !v.Partitioned || len(v.Unreachable) != 2 {
				seen = fmt.Sprintf("%+v %v", v, err)
				return false
			}
			other, err := f.view(f.nodes[(i+1)%3])
			if err != nil || other.Partitioned || !slices.Equal(other.Unreachable, []string{n.name}) {
				seen = fmt.Sprintf("%+v %v", other, err)
				return false
			}
			return strings.Contains(f.ready(n), `"partitioned":true`)
		})
		require.True(f.t, ok, "the cut never showed in /v1/cluster and /healthz/ready: %s", seen)
		f.t.Logf("%s saw itself partitioned %.1f s into the cut", n.name, time.Since(at).Seconds())
	}
	time.Sleep(time.Until(at.Add(d)))
	acked := f.ackedSnapshot()
	f.lab.heal(i)
	healed := time.Now()
	f.waitDelivered(fmt.Sprintf("%s cut for %s, healed", n.name, d), acked, nil, healBound)
	f.waitCluster(nil)
	f.t.Logf("membership whole again %.1f s after the heal", time.Since(healed).Seconds())
	if check {
		assert.NotZero(f.t, f.metric(n, "pushup_cluster_rejoins_total"), "%s counts its rejoins", n.name)
		assert.NotContains(f.t, f.ready(n), `"partitioned"`)
	}
}

// lossFor runs traffic for d while the lab drops percent of node-to-node
// packets, and waits, with the loss still on, until every acknowledged
// publication is everywhere.
func (f *fleet) lossFor(percent int, d time.Duration) {
	f.t.Helper()
	f.t.Logf("dropping %d%% of node-to-node packets for %s", percent, d)
	time.Sleep(d)
	f.waitDelivered(fmt.Sprintf("%d%% loss for %s", percent, d), f.ackedSnapshot(), nil, healBound)
}

// kill ends node i with SIGKILL under traffic and waits until the
// survivors hold the same set of its events.
func (f *fleet) kill(i int) {
	f.t.Helper()
	n := f.nodes[i]
	f.t.Logf("killing %s (SIGKILL)", n.name)
	n.d.Kill()
	killed := time.Now()
	prefix := n.name + "-"
	var a, b []string
	var agreed time.Time
	ok := waitFor(30*time.Second, func() bool {
		var live []*subscriber
		for _, s := range f.subs {
			if s.node != i {
				live = append(live, s)
			}
		}
		a, b = live[0].tokens(prefix), live[1].tokens(prefix)
		if !slices.Equal(a, b) {
			agreed = time.Time{}
			return false
		}
		if agreed.IsZero() {
			agreed = time.Now()
		}
		// Equal and stable: nobody holds more of it to pass on.
		return time.Since(agreed) > 3*time.Second
	})
	require.True(f.t, ok, "the survivors never agreed on %s's events: %d vs %d", n.name, len(a), len(b))
	lost := 0
	for tok, from := range f.ackedSnapshot() {
		if from == i && !slices.Contains(a, tok) {
			lost++
		}
	}
	f.t.Logf("survivors hold the same %d events of %s %.1f s after the kill; %d it had acknowledged were lost with it",
		len(a), n.name, agreed.Sub(killed).Seconds(), lost)
	f.waitCluster(n)
}

// ready returns node n's /healthz/ready body.
func (f *fleet) ready(n *pnode) string {
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/healthz/ready", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		sb.WriteString(sc.Text())
	}
	return sb.String()
}

// metric reads one unlabelled metric from node n's /metrics.
func (f *fleet) metric(n *pnode, name string) float64 {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/metrics", nil)
	resp, err := f.client.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			x, err := strconv.ParseFloat(v, 64)
			require.NoError(f.t, err)
			return x
		}
	}
	f.t.Fatalf("%s has no metric %s", n.name, name)
	return 0
}
