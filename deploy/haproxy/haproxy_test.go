package haproxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sample() LocalConfig {
	c := DefaultLocalConfig()
	c.Listen, c.Stats = "127.0.0.1:8080", "127.0.0.1:8404"
	c.Servers = []Server{{"n1", "127.0.0.1:18201"}, {"n2", "127.0.0.1:18202"}}
	return c
}

func TestRenderLocal(t *testing.T) {
	out, err := RenderLocal(sample())
	require.NoError(t, err)
	s := string(out)
	for _, want := range []string{
		"    maxconn 4000\n",
		"    bind 127.0.0.1:8080\n",
		"    bind 127.0.0.1:8404\n",
		"    balance leastconn\n",
		"    server n1 127.0.0.1:18201 check\n    server n2 127.0.0.1:18202 check\n",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "{{", "every field filled in")

	c := sample()
	c.MaxConn, c.Balance = 9000, "roundrobin"
	out, err = RenderLocal(c)
	require.NoError(t, err)
	assert.Contains(t, string(out), "    maxconn 9000\n")
	assert.Contains(t, string(out), "    balance roundrobin\n")
	assert.Equal(t, 1, strings.Count(string(out), "balance "), "one algorithm")
}

func TestRenderLocalRefusesBadConfigs(t *testing.T) {
	for name, mutate := range map[string]func(*LocalConfig){
		"no listen":      func(c *LocalConfig) { c.Listen = "" },
		"bad stats":      func(c *LocalConfig) { c.Stats = "8404" },
		"no servers":     func(c *LocalConfig) { c.Servers = nil },
		"duplicate name": func(c *LocalConfig) { c.Servers[1].Name = "n1" },
		"name with space": func(c *LocalConfig) {
			c.Servers[0].Name = "n1 backup"
		},
		"bad server addr": func(c *LocalConfig) { c.Servers[0].Addr = "localhost" },
		"zero maxconn":    func(c *LocalConfig) { c.MaxConn = 0 },
		"unknown balance": func(c *LocalConfig) { c.Balance = "random" },
	} {
		c := sample()
		mutate(&c)
		_, err := RenderLocal(c)
		assert.ErrorIs(t, err, ErrInvalidConfig, name)
	}
}
