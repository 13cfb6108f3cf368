package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/api"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, ":8080", c.Listen)
	assert.Equal(t, 30*time.Second, c.API.DefaultTimeout)
	assert.Equal(t, 64, c.Broker.MaxChannelsPerRequest)
	assert.True(t, c.Broker.ImplicitChannels)
	assert.Equal(t, []string{"*"}, c.API.CORSOrigins)
	assert.Equal(t, api.ModelEvent, c.API.Model)
	assert.False(t, c.API.Demo, "the demo lets anyone post: off unless asked for")
	assert.Equal(t, 10_000, c.API.MaxThreads, "Go's own default")
}

func TestThreadModelFlags(t *testing.T) {
	c, err := parseConfig([]string{"-model", "thread", "-max-threads", "20000"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, api.ModelThread, c.API.Model)
	assert.Equal(t, 20_000, c.API.MaxThreads)
	c, err = parseConfig(nil, env(map[string]string{"PUSHUP_MODEL": "thread", "PUSHUP_MAX_THREADS": "12000"}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, api.ModelThread, c.API.Model)
	assert.Equal(t, 12_000, c.API.MaxThreads)
}

func TestEnvAndFlagPrecedence(t *testing.T) {
	e := env(map[string]string{
		"PUSHUP_LISTEN":            "127.0.0.1:9000",
		"PUSHUP_MESSAGE_TTL":       "2m",
		"PUSHUP_IMPLICIT_CHANNELS": "false",
		"PUSHUP_PUBLISHER_KEY":     "k",
		"PUSHUP_CORS_ORIGINS":      "https://a.example, https://b.example",
		"PUSHUP_LOG_LEVEL":         "debug",
		"PUSHUP_DEMO":              "true",
	})
	c, err := parseConfig([]string{"-listen", ":7000"}, e, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, ":7000", c.Listen, "the flag wins over the environment")
	assert.Equal(t, 2*time.Minute, c.Broker.Channel.MessageTTL)
	assert.False(t, c.Broker.ImplicitChannels)
	assert.Equal(t, "k", c.API.PublisherKey)
	assert.Equal(t, []string{"https://a.example", "https://b.example"}, c.API.CORSOrigins)
	assert.Equal(t, "DEBUG", c.LogLevel.String())
	assert.True(t, c.API.Demo)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-max-timeout", "soon"}, nil, "invalid value"},
		{nil, map[string]string{"PUSHUP_MAX_MESSAGES": "many"}, "$PUSHUP_MAX_MESSAGES"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-max-messages", "0"}, nil, "MaxMessages"},
		{[]string{"-default-timeout", "5m"}, nil, "DefaultTimeout"},
		{[]string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"-nope"}, nil, "not defined"},
		{[]string{"-model", "threads"}, nil, "-model"},
		{[]string{"-gc-percent", "-5"}, nil, "-gc-percent"},
		{[]string{"-model", "thread", "-max-threads", "10"}, nil, "MaxThreads"},
		{[]string{"-tls-cert", "c.pem"}, nil, "go together"},
	} {
		_, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
		require.Error(t, err, "%v %v", tc.args, tc.env)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestHelpListsEveryFlagWithDefaultAndEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := out.String()
	for _, name := range []string{
		"listen", "message-ttl", "max-messages", "channel-ttl", "max-channel-ttl", "implicit-channels",
		"max-channels", "max-channels-per-request", "max-batch", "max-response-messages",
		"default-timeout", "max-timeout", "max-body", "publisher-key", "cors-origins",
		"read-header-timeout", "read-timeout", "write-timeout", "idle-timeout", "demo",
		"shutdown-timeout", "log-level", "log-format", "model", "tls-cert", "tls-key", "pprof", "gc-percent",
		"node-name", "cluster-bind", "cluster-advertise", "join", "replication", "cluster-key", "advertise-http", "join-timeout", "gossip-interval",
		"rejoin-max-interval", "reconnect-timeout",
		"max-threads",
		"healthcheck",
	} {
		line := "  -" + name + "  (default "
		assert.Contains(t, help, line, name)
		assert.Contains(t, help, "[$"+envName(name)+"]", name)
	}
	assert.Equal(t, strings.Count(help, "  -"), 41, "no flag left undocumented here")
}
