package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/loadtest"
)

// requireHAProxyEnv, when "1", turns a missing haproxy into a failure.
const requireHAProxyEnv = "PUSHUP_REQUIRE_HAPROXY"

// haproxyBinary finds haproxy as the load tester does
// (loadtest.FindHAProxy: $PUSHUP_HAPROXY, else Debian's
// /usr/sbin/haproxy, else the PATH). Without one the test skips, or fails
// under PUSHUP_REQUIRE_HAPROXY=1.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := loadtest.FindHAProxy()
	if err == nil {
		return bin
	}
	msg := fmt.Sprintf("%v (.ci/run installs it)", err)
	if os.Getenv(requireHAProxyEnv) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", msg, requireHAProxyEnv)
	}
	t.Skip(msg)
	return ""
}

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
func startHAProxy(t *testing.T, bin string, servers []haproxycfg.Server) *loadtest.HAProxy {
	t.Helper()
	cfg := loadtest.DefaultHAProxyConfig()
	cfg.Binary = bin
	h, err := loadtest.StartHAProxy(context.Background(), cfg, servers)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Stop() })
	return h
}
