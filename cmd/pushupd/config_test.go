package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
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
	assert.Equal(t, "127.0.0.1:8080", c.Listen, "loopback unless asked: no open server by accident")
	assert.Empty(t, c.API.PrivateChannels)
	assert.Zero(t, c.API.MaxConnsPerIP)
	assert.EqualValues(t, 1<<30, c.Broker.MaxCacheBytes)
	assert.Equal(t, 30*time.Second, c.API.DefaultTimeout)
	assert.Equal(t, 64, c.Broker.MaxChannelsPerRequest)
	assert.True(t, c.Broker.ImplicitChannels)
	assert.Equal(t, []string{"*"}, c.API.CORSOrigins)
	assert.Equal(t, api.ModelEvent, c.API.Model)
	assert.False(t, c.Demo, "the demo lets anyone post: off unless asked for")
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
	assert.Equal(t, []string{"k"}, c.API.PublisherKeys)
	assert.Equal(t, []string{"https://a.example", "https://b.example"}, c.API.CORSOrigins)
	assert.Equal(t, "DEBUG", c.LogLevel.String())
	assert.True(t, c.Demo)
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
		{[]string{"-max-messages", "0"}, nil, "-max-messages must be at least 1, got 0"},
		{[]string{"-default-timeout", "5m"}, nil, "-default-timeout (5m0s) must be between 0 and -max-timeout (2m0s)"},
		{[]string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"-nope"}, nil, "not defined"},
		{[]string{"-model", "threads"}, nil, "-model"},
		{[]string{"-gc-percent", "-5"}, nil, "-gc-percent"},
		{[]string{"-model", "thread", "-max-threads", "10"}, nil, "-max-threads (10) leaves no thread"},
		{[]string{"-tls-cert", "c.pem"}, nil, "go together"},
	} {
		_, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
		require.Error(t, err, "%v %v", tc.args, tc.env)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// TestConfigErrorsNameFlags: a library's configuration error reaches the
// person who ran pushupd in flag terms, without Go field names or package
// prefixes, and still wraps the library's error.
func TestConfigErrorsNameFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-max-messages", "0"}, {"-max-batch", "0"}, {"-default-timeout", "5m"}, {"-max-body", "0"},
		{"-channel-ttl", "0s"}, {"-idle-timeout", "0s"},
	} {
		_, err := parseConfig(args, env(nil), &bytes.Buffer{})
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), args[0], "names the flag")
		assert.NotRegexp(t, `\b(api|broker|channel): |\b[A-Z][a-z]+[A-Z]\w*`, err.Error(), "no package prefix or Go field name")
		assert.NotNil(t, errors.Unwrap(err), "wraps the library's error")
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
		"read-header-timeout", "read-timeout", "write-timeout", "idle-timeout", "max-conns", "demo",
		"shutdown-timeout", "log-level", "log-format", "model", "tls-cert", "tls-key", "pprof", "gc-percent",
		"node-name", "cluster-bind", "cluster-advertise", "join", "replication", "cluster-key", "advertise-http", "join-timeout", "gossip-interval",
		"rejoin-max-interval", "reconnect-timeout",
		"max-threads",
		"healthcheck",
		"data-dir", "fsync", "drain-spread",
		"subscriber-key", "subscriber-public-key", "private-channels", "subscriber-cookie", "max-conns-per-ip", "trusted-proxies",
		"max-cache-bytes", "max-answer-bytes",
		"sse-heartbeat", "sse-max-lifetime", "sse-retry",
	} {
		line := "  -" + name + "  (default "
		assert.Contains(t, help, line, name)
		assert.Contains(t, help, "[$"+envName(name)+"]", name)
	}
	assert.Equal(t, strings.Count(help, "  -"), 56, "no flag left undocumented here")
}

func TestAccessFlags(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	require.NoError(t, err)
	pubFile := filepath.Join(dir, "pub.pem")
	require.NoError(t, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	e := env(map[string]string{
		"PUSHUP_SUBSCRIBER_KEY":   "new-secret-new-secret-new-secret-1, old-secret-old-secret-old-secret-2",
		"PUSHUP_PUBLISHER_KEY":    "p1,p2",
		"PUSHUP_PRIVATE_CHANNELS": "user:*, private:*",
	})
	c, err := parseConfig([]string{"-subscriber-public-key", pubFile, "-subscriber-cookie", "tok",
		"-max-conns-per-ip", "50", "-trusted-proxies", "10.0.0.0/8,192.0.2.7"}, e, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Len(t, c.API.SubscriberKeys, 2)
	assert.Equal(t, []string{"p1", "p2"}, c.API.PublisherKeys)
	assert.Equal(t, []string{"user:*", "private:*"}, c.API.PrivateChannels)
	assert.Len(t, c.API.SubscriberPublicKeys, 1)
	assert.Equal(t, "tok", c.API.SubscriberCookie)
	assert.Equal(t, 50, c.API.MaxConnsPerIP)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}, c.API.TrustedProxies)

	_, err = parseConfig([]string{"-private-channels", "user:*"}, env(nil), &bytes.Buffer{})
	assert.ErrorContains(t, err, "subscriber key", "private channels with no key to verify tokens")
	_, err = parseConfig([]string{"-subscriber-key", "short", "-private-channels", "*"}, env(nil), &bytes.Buffer{})
	require.NoError(t, err, "parsing passes; api.New refuses the short key")
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	privFile := filepath.Join(dir, "priv.pem")
	require.NoError(t, os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600))
	_, err = parseConfig([]string{"-subscriber-public-key", privFile}, env(nil), &bytes.Buffer{})
	assert.ErrorContains(t, err, "not a public key")
}
