package testbed

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
)

func TestParseStatsCSV(t *testing.T) {
	csv := "# pxname,svname,qcur,status,weight\n" +
		"pushup,FRONTEND,,OPEN,\n" +
		"pushupd,n1,0,UP,1\n" +
		"pushupd,n2,0,DOWN,1\n" +
		"pushupd,n3,0,UP 1/2,1\n" +
		"pushupd,BACKEND,0,UP,2\n" +
		"stats,FRONTEND,,OPEN,\n"
	got, err := parseStatsCSV([]byte(csv))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"n1": "UP", "n2": "DOWN", "n3": "UP 1/2"}, got)

	_, err = parseStatsCSV([]byte("# a,b\n1,2\n"))
	assert.ErrorIs(t, err, ErrHAProxy, "no status column")
}

func TestLogTailKeepsLastLines(t *testing.T) {
	var copied strings.Builder
	l := newLogTail(2, &copied)
	_, _ = l.Write([]byte("one\ntw"))
	_, _ = l.Write([]byte("o\nthree\npart"))
	assert.Equal(t, "two\nthree", l.String(), "the last two whole lines")
	assert.Equal(t, "one\ntwo\nthree\n", copied.String(), "every whole line copied")
	l.add("four")
	assert.Equal(t, "three\nfour", l.String())
}

func TestFindHAProxy(t *testing.T) {
	t.Setenv(HAProxyEnv, "/nonexistent/haproxy")
	_, err := FindHAProxy()
	require.ErrorIs(t, err, ErrHAProxy)
	assert.Contains(t, err.Error(), "/nonexistent/haproxy")
	assert.Contains(t, err.Error(), "apt-get install -y haproxy")

	fake := filepath.Join(t.TempDir(), "haproxy")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv(HAProxyEnv, fake)
	bin, err := FindHAProxy()
	require.NoError(t, err)
	assert.Equal(t, fake, bin, "$PUSHUP_HAPROXY wins")
}

func TestStartHAProxyRefusesBeforeStarting(t *testing.T) {
	servers := []haproxycfg.Server{{Name: "n1", Addr: "127.0.0.1:1"}}
	limit, err := RaiseFileLimit()
	require.NoError(t, err)
	cfg := DefaultHAProxyConfig()
	cfg.Binary = "/nonexistent/haproxy" // never reached
	cfg.MaxConn = int(limit/2) + 1
	_, err = StartHAProxy(context.Background(), cfg, servers)
	require.ErrorIs(t, err, ErrTooManyConnections)
	assert.Contains(t, err.Error(), "two files per connection")

	cfg = DefaultHAProxyConfig()
	cfg.Binary = "/nonexistent/haproxy"
	cfg.Balance = "random"
	_, err = StartHAProxy(context.Background(), cfg, servers)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorIs(t, err, haproxycfg.ErrInvalidConfig)
}

// TestE2EHAProxy puts haproxy in front of two pushupd processes: both come
// up, polls through it are answered by both (leastconn over fresh
// connections), and Stop and Kill leave no process behind.
func TestE2EHAProxy(t *testing.T) {
	bin := HAProxyOrSkip(t)
	var servers []haproxycfg.Server
	for i := range 2 {
		dc := DefaultDaemonConfig()
		dc.Binary = pushupd.For(t)
		d, err := StartDaemon(dc)
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Stop() })
		servers = append(servers, haproxycfg.Server{Name: fmt.Sprintf("n%d", i+1), Addr: strings.TrimPrefix(d.URL, "http://")})
	}
	cfg := DefaultHAProxyConfig()
	cfg.Binary = bin
	ctx := context.Background()
	h, err := StartHAProxy(ctx, cfg, servers)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Stop() })
	require.NoError(t, h.WaitUp(ctx, 10*time.Second))
	assert.Equal(t, "leastconn", h.Config.Balance)

	answered := map[string]int{}
	for range 10 {
		// A new connection each time: leastconn with nothing held
		// alternates.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := client.Get(h.URL + "/v1/subscribe?channels=haproxy-test&timeout=0")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		answered[resp.Header.Get("X-Pushup-Server")]++
	}
	assert.Len(t, answered, 2, "both nodes answered: %v", answered)

	require.NoError(t, h.Stop())
	assert.True(t, gone(h.PID), "haproxy stopped")
	_, err = os.Stat(h.dir)
	assert.True(t, os.IsNotExist(err), "its configuration removed")

	h2, err := StartHAProxy(ctx, cfg, servers)
	require.NoError(t, err)
	h2.child.kill() // as a crash would: Stop must still clean up
	assert.True(t, gone(h2.PID))
	err = h2.Stop()
	require.ErrorIs(t, err, ErrHAProxy)
	assert.Contains(t, err.Error(), "had already exited")
}
