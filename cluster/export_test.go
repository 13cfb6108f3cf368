package cluster

import (
	"testing"

	"github.com/pushuphq/pushup/broker"
)

// ExtCluster lends the in-memory test cluster to the external test package
// cluster_test, whose tests put package api in front of the nodes: api
// imports cluster, so those tests cannot live in package cluster itself.
type ExtCluster struct{ c *testCluster }

// NewExtCluster is newTestCluster for cluster_test.
func NewExtCluster(t *testing.T, mode Mode) *ExtCluster {
	return &ExtCluster{c: newTestCluster(t, mode)}
}

// Start starts a node that joins the named ones.
func (e *ExtCluster) Start(name string, join ...string) { e.c.start(name, join...) }

// AllAlive waits until every named node sees every other alive.
func (e *ExtCluster) AllAlive(names ...string) { e.c.allAlive(names...) }

// Converged waits until every named node holds want messages in ch.
func (e *ExtCluster) Converged(ch string, want int, names ...string) {
	e.c.converged(ch, want, names...)
}

// Node returns a started node's cluster node and broker.
func (e *ExtCluster) Node(name string) (*Node, *broker.Broker) {
	n := e.c.nodes[name]
	return n.n, n.b
}
