package api

import (
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestZZProf(t *testing.T) {
	runtime.MemProfileRate = 1
	ts := startServer(t, options{model: ModelEvent})
	ts.do(http.MethodGet, "/healthz", "")
	const n = 2000
	path := "/v1/events?" + q("channels", "a", "since", "now")
	if os.Getenv("ZZPOLL") != "" {
		path = "/v1/subscribe?" + q("channels", "a", "since", "now", "timeout", "60")
	}
	conns := rawGets(t, ts, n, path)
	require.Eventually(t, func() bool { return ts.b.Stats().Waiters == n }, 30*time.Second, 5*time.Millisecond)
	runtime.GC()
	runtime.GC()
	f, _ := os.Create("/tmp/h13heap.prof")
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	for _, c := range conns {
		c.Close()
	}
}
