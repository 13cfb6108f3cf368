package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
// end-to-end test runs differs from the production one only where it
// must (addresses, static servers, check timings, global limits), so what
// the test shows holds for the production configuration.
func TestLocalConfigKeepsProductionDirectives(t *testing.T) {
	prod := sections(t, productionConfig)
	local := sections(t, localTemplate)
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
	assert.Contains(t, prod, "resolvers docker")
}

// TestHAProxyAcceptsBothConfigs runs haproxy -c on the production
// configuration and on the rendered local one.
func TestHAProxyAcceptsBothConfigs(t *testing.T) {
	bin := haproxyBinary(t)
	out, err := exec.Command(bin, "-c", "-f", productionConfig).CombinedOutput()
	require.NoError(t, err, "haproxy -c %s:\n%s", productionConfig, out)

	path := renderLocalConfig(t, t.TempDir(), localConfig{
		Listen: "127.0.0.1:1", Stats: "127.0.0.1:2",
		Servers: []localServer{{"n1", "127.0.0.1:3"}, {"n2", "127.0.0.1:4"}, {"n3", "127.0.0.1:5"}},
	})
	out, err = exec.Command(bin, "-c", "-f", path).CombinedOutput()
	require.NoError(t, err, "haproxy -c on the rendered %s:\n%s", localTemplate, out)
	assert.NotContains(t, string(out), "WARNING", "%s", out)
}
