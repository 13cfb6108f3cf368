package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

// sections parses an HAProxy configuration into its sections ("defaults",
// "backend pushupd", ...), each a list of directives without comments.
func sections(t *testing.T, path string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string][]string{}
	cur := ""
	for line := range strings.SplitSeq(string(raw), "\n") {
		if i := strings.Index(line, "#"); i >= 0 && !strings.Contains(line[:i], "{") {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "{{") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			cur = strings.Join(strings.Fields(line), " ")
			out[cur] = nil
			continue
		}
		out[cur] = append(out[cur], strings.Join(strings.Fields(line), " "))
	}
	return out
}

// TestLocalConfigKeepsProductionDirectives: the configuration the
// end-to-end test runs (local.cfg.tmpl with its default settings) differs from the production one only where it
// must (addresses, static servers, check timings, global limits), so what
// the test shows holds for the production configuration.
func TestLocalConfigKeepsProductionDirectives(t *testing.T) {
	prod := sections(t, productionConfig)
	local := sections(t, renderLocalConfig(t, t.TempDir(), localConfig(
		haproxycfg.Server{Name: "n1", Addr: "127.0.0.1:3"})))
	// Directives that differ on purpose, by prefix.
	differ := []string{"bind ", "server-template ", "default-server "}
	for _, name := range []string{"defaults", "frontend pushup", "backend pushupd", "frontend stats"} {
		require.Contains(t, prod, name)
		require.Contains(t, local, name)
	next:
		for _, d := range prod[name] {
			for _, p := range differ {
				if strings.HasPrefix(d, p) {
					continue next
				}
			}
			assert.Contains(t, local[name], d, "%s: %q is in haproxy.cfg but not in local.cfg.tmpl", name, d)
		}
	}
	// The timing the test changes keeps the production behaviour.
	assert.Contains(t, prod["backend pushupd"], "default-server inter 2s fall 2 rise 2 slowstart 10s on-marked-down shutdown-sessions")
	assert.Contains(t, local["backend pushupd"], "default-server inter 200ms fall 2 rise 2 on-marked-down shutdown-sessions")
	// So does the algorithm the template's defaults choose.
	assert.Contains(t, local["backend pushupd"], "balance leastconn")
	assert.Contains(t, prod, "resolvers docker")
}

// TestHAProxyAcceptsBothConfigs runs haproxy -c on the production
// configuration and on the rendered local one, with each algorithm.
func TestHAProxyAcceptsBothConfigs(t *testing.T) {
	bin := testbed.HAProxyOrSkip(t)
	out, err := exec.Command(bin, "-c", "-f", productionConfig).CombinedOutput()
	require.NoError(t, err, "haproxy -c %s:\n%s", productionConfig, out)

	for _, balance := range haproxycfg.Balances {
		cfg := localConfig(haproxycfg.Server{Name: "n1", Addr: "127.0.0.1:3"},
			haproxycfg.Server{Name: "n2", Addr: "127.0.0.1:4"}, haproxycfg.Server{Name: "n3", Addr: "127.0.0.1:5"})
		cfg.Balance = balance
		path := renderLocalConfig(t, t.TempDir(), cfg)
		out, err = exec.Command(bin, "-c", "-f", path).CombinedOutput()
		require.NoError(t, err, "haproxy -c on local.cfg.tmpl rendered with balance %s:\n%s", balance, out)
		assert.NotContains(t, string(out), "WARNING", "%s", out)
	}
}

// localConfig is the template's default settings with dummy addresses.
func localConfig(servers ...haproxycfg.Server) haproxycfg.LocalConfig {
	cfg := haproxycfg.DefaultLocalConfig()
	cfg.Listen, cfg.Stats, cfg.Servers = "127.0.0.1:1", "127.0.0.1:2", servers
	return cfg
}
