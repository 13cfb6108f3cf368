package api

import (
	"maps"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// brokerCollector exports the broker's figures. It reads one Stats
// snapshot per scrape instead of keeping a second set of counters in sync.
type brokerCollector struct {
	b *broker.Broker

	channels, messages, waiters, scheduled *prometheus.Desc
	published, delivered, answers          *prometheus.Desc
	cancelled, expired                     *prometheus.Desc
}

func newBrokerCollector(b *broker.Broker) *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pushup_"+name, help, labels, nil)
	}
	return &brokerCollector{
		b:         b,
		channels:  d("channels", "Open channels."),
		messages:  d("cached_messages", "Messages cached across channels (a message in two channels counts twice)."),
		waiters:   d("waiting_subscribers", "Subscriptions waiting, across channels (one waiting on two channels counts twice)."),
		scheduled: d("scheduled_channels", "Channels in the maintenance schedule."),
		published: d("publications_total", "Messages published."),
		delivered: d("deliveries_total", "Messages handed to subscribers in answers."),
		answers:   d("subscribe_answers_total", "Subscribe answers by reason.", "reason"),
		cancelled: d("subscriptions_cancelled_total", "Waiting subscriptions withdrawn because the client went away."),
		expired:   d("channels_expired_total", "Channels closed after their idle TTL."),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.channels, c.messages, c.waiters, c.scheduled,
		c.published, c.delivered, c.answers, c.cancelled, c.expired} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	k := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	g(c.channels, float64(st.Channels))
	g(c.messages, float64(st.Messages))
	g(c.waiters, float64(st.Waiters))
	g(c.scheduled, float64(st.Scheduled))
	k(c.published, float64(st.Published))
	k(c.delivered, float64(st.Delivered))
	for r, n := range st.Answered {
		k(c.answers, float64(n), r.String())
	}
	k(c.cancelled, float64(st.Cancelled))
	k(c.expired, float64(st.Expired))
}

// httpMetrics holds the request latency histogram. Every answer is
// observed, so the observer of each label set is looked up once and kept:
// WithLabelValues formats the status, hashes the labels and takes a lock
// on every call. It is safe for concurrent use.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	// observers maps label sets to their observers; copied on write, so
	// lookups take no lock. At most maxObservers entries: methods come
	// from clients.
	observers atomic.Pointer[map[observerKey]prometheus.Observer]
}

// observerKey is one label set of the latency histogram.
type observerKey struct {
	route, method string
	status        int
}

// maxObservers bounds the observer cache; label sets beyond it are
// observed through WithLabelValues each time.
const maxObservers = 256

func newMetrics(b *broker.Broker) (*prometheus.Registry, *httpMetrics) {
	reg := prometheus.NewRegistry()
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pushup_http_request_duration_seconds",
			Help: "HTTP request latency by route, method and status; subscribe includes the long-poll wait.",
			// From sub-millisecond publishes up to the longest holds.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(
		m.duration,
		newBrokerCollector(b),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg, m
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	m.observer(route, method, status).Observe(d.Seconds())
}

// observer returns the histogram's observer for a label set, cached.
func (m *httpMetrics) observer(route, method string, status int) prometheus.Observer {
	k := observerKey{route, method, status}
	cache := m.observers.Load()
	if cache != nil {
		if o, ok := (*cache)[k]; ok {
			return o
		}
	}
	o := m.duration.WithLabelValues(route, method, strconv.Itoa(status))
	for {
		var n int
		if cache != nil {
			n = len(*cache)
		}
		if n >= maxObservers {
			return o
		}
		next := make(map[observerKey]prometheus.Observer, n+1)
		if cache != nil {
			maps.Copy(next, *cache)
		}
		next[k] = o
		if m.observers.CompareAndSwap(cache, &next) {
			return o
		}
		cache = m.observers.Load() // another label set came in meanwhile
	}
}

// parkerCollector exports the event model's figures.
type parkerCollector struct {
	stats                                     func() evhttp.Stats
	conns, parked                             *prometheus.Desc
	vanished, failed, slow, handbacks, served *prometheus.Desc
}

func newParkerCollector(stats func() evhttp.Stats) *parkerCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("pushup_event_"+name, help, nil, nil)
	}
	return &parkerCollector{
		stats:     stats,
		conns:     d("connections", "Connections held by the event loop: parked, idle between requests, or being served."),
		parked:    d("parked", "Connections parked waiting for an answer."),
		vanished:  d("vanished_total", "Parked subscribers whose client went away before the answer."),
		failed:    d("write_failures_total", "Answers that could not be written (client gone)."),
		slow:      d("slow_clients_dropped_total", "Clients dropped because they did not take their answer within the write timeout."),
		handbacks: d("handbacks_total", "Connections handed back to the HTTP server for a request the event loop does not serve."),
		served:    d("requests_total", "Requests read and served by the event loop itself."),
	}
}

func (c *parkerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.parked, c.vanished, c.failed, c.slow, c.handbacks, c.served} {
		ch <- d
	}
}

func (c *parkerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	k := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.conns, float64(st.Connections))
	g(c.parked, float64(st.Parked))
	k(c.vanished, float64(st.Vanished))
	k(c.failed, float64(st.WriteFailed))
	k(c.slow, float64(st.Slow))
	k(c.handbacks, float64(st.Handbacks))
	k(c.served, float64(st.Served))
}
