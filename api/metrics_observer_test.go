package api

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// histogramCount is how many observations the histogram holds for one
// label set.
func histogramCount(t *testing.T, m *httpMetrics, route, method, code string) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(m.duration))
	families, err := reg.Gather()
	require.NoError(t, err)
	want := map[string]string{"route": route, "method": method, "code": code}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range metric.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if assert.ObjectsAreEqual(want, got) {
				return metric.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// TestObserverCache checks that cached observers record into the right
// label set, from many goroutines, and that the cache stops growing at
// its bound while every observation is still counted.
func TestObserverCache(t *testing.T) {
	_, m := newMetrics(nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.observe(subscribeRoute, http.MethodGet, http.StatusOK, time.Millisecond)
				m.observe("/v1/publish", http.MethodPost, http.StatusCreated, time.Millisecond)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, uint64(800), histogramCount(t, m, subscribeRoute, http.MethodGet, "200"))
	assert.Equal(t, uint64(800), histogramCount(t, m, "/v1/publish", http.MethodPost, "201"))
	assert.Len(t, *m.observers.Load(), 2)

	for i := range maxObservers + 50 {
		m.observe("/x", "M"+strconv.Itoa(i), http.StatusNotFound, time.Millisecond)
	}
	assert.Len(t, *m.observers.Load(), maxObservers, "methods come from clients: the cache is bounded")
	m.observe("/x", "M"+strconv.Itoa(maxObservers+10), http.StatusNotFound, time.Millisecond)
	assert.Equal(t, uint64(2), histogramCount(t, m, "/x", "M"+strconv.Itoa(maxObservers+10), "404"),
		"a label set past the bound is still observed")
}
