package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the store's running
// figures; pushupd registers it on /metrics. Collecting is cheap: no disk
// access.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

var (
	descCommits = prometheus.NewDesc("pushup_store_commits_total", "Group commits to the data directory.", nil, nil)
	descWritten = prometheus.NewDesc("pushup_store_events_written_total", "Events and channel changes written to the data directory.", nil, nil)
	descSeconds = prometheus.NewDesc("pushup_store_commit_seconds_total", "Time spent in group commits, fsync included.", nil, nil)
	descPruned  = prometheus.NewDesc("pushup_store_events_pruned_total", "Events deleted from the data directory because no cache or repair log held them any more.", nil, nil)
	descBacklog = prometheus.NewDesc("pushup_store_backlog_events", "Events committed in memory and not yet written to the data directory.", nil, nil)
	descFailed  = prometheus.NewDesc("pushup_store_failed", "1 once a write to the data directory failed: publications are then answered 500 and not persisted.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommits, descWritten, descSeconds, descPruned, descBacklog, descFailed} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.Lock()
	backlog := len(s.queue)
	failed := 0.0
	if s.err != nil && s.err != ErrClosed {
		failed = 1
	}
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(s.stats.commits.Load()))
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(s.stats.written.Load()))
	ch <- prometheus.MustNewConstMetric(descSeconds, prometheus.CounterValue, time.Duration(s.stats.commitNanos.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(descPruned, prometheus.CounterValue, float64(s.stats.pruned.Load()))
	ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(backlog))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, failed)
}
