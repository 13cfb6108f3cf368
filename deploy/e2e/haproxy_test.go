package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

const productionConfig = "../haproxy/haproxy.cfg"

// renderLocalConfig writes deploy/haproxy/local.cfg.tmpl, filled in with
// cfg, into dir.
func renderLocalConfig(t *testing.T, dir string, cfg haproxycfg.LocalConfig) string {
	t.Helper()
	b, err := haproxycfg.RenderLocal(cfg)
	require.NoError(t, err)
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// startHAProxy runs haproxy in the foreground on the local configuration
// (the template's defaults: leastconn, maxconn 4000) in front of servers;
// the test's cleanup stops it.
func startHAProxy(t *testing.T, bin string, servers []haproxycfg.Server) *testbed.HAProxy {
	t.Helper()
	cfg := testbed.DefaultHAProxyConfig()
	cfg.Binary = bin
	h, err := testbed.StartHAProxy(context.Background(), cfg, servers)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Stop() })
	return h
}
