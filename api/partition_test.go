package api

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"

	"github.com/pushuphq/pushup/cluster"
)

// fakeCluster is a cluster that is ready and may be partitioned.
type fakeCluster struct{ cut atomic.Bool }

func (c *fakeCluster) Ready() bool           { return true }
func (c *fakeCluster) Handler() http.Handler { return http.NotFoundHandler() }
func (c *fakeCluster) Collector() prometheus.Collector {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: "fake_cluster"})
}
func (c *fakeCluster) Status() cluster.Status {
	return cluster.Status{Partitioned: c.cut.Load()}
}
func (c *fakeCluster) Partitioned() bool { return c.cut.Load() }

// A partitioned node still serves (200) and its readiness check says it
// is partitioned, so a monitor can tell while a load balancer keeps it.
func TestReadyShowsPartition(t *testing.T) {
	c := &fakeCluster{}
	ts := startServer(t, options{api: func(ac *Config) { ac.Cluster = c }})
	r := ts.do(http.MethodGet, "/healthz/ready", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.NotContains(t, r.json(t), "partitioned")
	c.cut.Store(true)
	r = ts.do(http.MethodGet, "/healthz/ready", "")
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, true, r.json(t)["partitioned"])
}
