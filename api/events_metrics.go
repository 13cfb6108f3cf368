package api

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// sseEndReasons are the values of pushup_sse_ended_total's reason label.
var sseEndReasons = []string{sseEndLifetime, sseEndClosed, sseEndShutdown, sseEndClient, sseEndSlow, sseEndError}

// sseMetrics counts event streams. Counters are atomics, read once per
// scrape, so the streams' hot path takes no lock.
type sseMetrics struct {
	open     atomic.Int64
	started  atomic.Uint64
	messages atomic.Uint64
	ended    [6]atomic.Uint64 // by index in sseEndReasons

	openDesc, startedDesc, messagesDesc, endedDesc *prometheus.Desc
}

func newSSEMetrics() *sseMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pushup_sse_"+name, help, labels, nil)
	}
	return &sseMetrics{
		openDesc:     d("streams", "Server-sent event streams open now (GET /v1/events)."),
		startedDesc:  d("streams_started_total", "Server-sent event streams opened."),
		messagesDesc: d("messages_total", "Messages written to event streams."),
		endedDesc: d("streams_ended_total", "Event streams ended, by reason: lifetime (-sse-max-lifetime), closed "+
			"(channels closed), shutdown, client (went away), slow (socket full past -write-timeout), error.", "reason"),
	}
}

func (m *sseMetrics) opened() {
	m.open.Add(1)
	m.started.Add(1)
}

func (m *sseMetrics) wrote(messages int) { m.messages.Add(uint64(messages)) }

func (m *sseMetrics) closed(why string) {
	m.open.Add(-1)
	for i, r := range sseEndReasons {
		if r == why {
			m.ended[i].Add(1)
			return
		}
	}
}

func (m *sseMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.openDesc
	ch <- m.startedDesc
	ch <- m.messagesDesc
	ch <- m.endedDesc
}

func (m *sseMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.openDesc, prometheus.GaugeValue, float64(m.open.Load()))
	ch <- prometheus.MustNewConstMetric(m.startedDesc, prometheus.CounterValue, float64(m.started.Load()))
	ch <- prometheus.MustNewConstMetric(m.messagesDesc, prometheus.CounterValue, float64(m.messages.Load()))
	for i, r := range sseEndReasons {
		ch <- prometheus.MustNewConstMetric(m.endedDesc, prometheus.CounterValue, float64(m.ended[i].Load()), r)
	}
}
