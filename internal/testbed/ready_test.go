package testbed

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReady(t *testing.T) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ReadyPath || !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	assert.True(t, Ready(client), "no node: nothing to wait for")
	assert.False(t, Ready(client, srv.URL), "503 is not ready")
	up.Store(true)
	assert.True(t, Ready(client, srv.URL))
	assert.True(t, Ready(client, srv.URL, srv.URL))
	assert.False(t, Ready(client, srv.URL, closedURL), "one node not answering")
}
