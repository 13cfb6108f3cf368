package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/loadtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDispatch(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx := context.Background()
	assert.ErrorIs(t, dispatch(ctx, nil, &out, &errOut), errUsage)
	assert.Contains(t, errOut.String(), "fanout")
	assert.Contains(t, errOut.String(), "event-vs-thread")

	errOut.Reset()
	assert.ErrorIs(t, dispatch(ctx, []string{"-h"}, &out, &errOut), flag.ErrHelp)
	assert.ErrorIs(t, dispatch(ctx, []string{"fanout", "-h"}, &out, &errOut), flag.ErrHelp)
	assert.Contains(t, errOut.String(), "-pushupd-args")

	errOut.Reset()
	assert.ErrorIs(t, dispatch(ctx, []string{"fanout-typo"}, &out, &errOut), errUsage)
	assert.Contains(t, errOut.String(), `unknown experiment "fanout-typo"`)

	errOut.Reset()
	assert.ErrorIs(t, dispatch(ctx, []string{"scale-out", "-h"}, &out, &errOut), flag.ErrHelp)
	assert.Contains(t, errOut.String(), "Figures 12 and 13")
	assert.Contains(t, errOut.String(), "share this machine's cores")
	assert.Contains(t, errOut.String(), "-haproxy")

	errOut.Reset()
	assert.ErrorIs(t, dispatch(ctx, []string{"compare", "-h"}, &out, &errOut), flag.ErrHelp)
	assert.Contains(t, errOut.String(), "libnginx-mod-nchan")
	assert.Error(t, dispatch(ctx, []string{"compare", "-brokers", "pushpin"}, &out, &errOut), "an unknown broker is refused before anything runs")

	err := dispatch(ctx, []string{"fanout", "stray"}, &out, &errOut)
	require.Error(t, err)
	assert.False(t, errors.Is(err, flag.ErrHelp))
}

func TestParseFanout(t *testing.T) {
	var errOut bytes.Buffer
	cfg, jsonPath, cpuProfile, err := parseFanout([]string{
		"-n", "200", "-channel", "c", "-messages", "3", "-interval", "500ms", "-payload", "100",
		"-hold", "60s", "-pushupd", "/bin/pushupd", "-model", "goroutine",
		"-pushupd-args", "-max-timeout 3m  -log-level warn", "-json", "out.json", "-quiet", "-cpuprofile", "cpu.out",
	}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, 200, cfg.Subscribers)
	assert.Equal(t, "c", cfg.Channel)
	assert.Equal(t, 3, cfg.Messages)
	assert.Equal(t, 500*time.Millisecond, cfg.Interval)
	assert.Equal(t, 100, cfg.PayloadSize)
	assert.Equal(t, 60*time.Second, cfg.Hold)
	assert.Equal(t, "/bin/pushupd", cfg.Pushupd)
	assert.Equal(t, "goroutine", cfg.Model)
	assert.Equal(t, []string{"-max-timeout", "3m", "-log-level", "warn"}, cfg.ServerArgs)
	assert.Equal(t, "out.json", jsonPath)
	assert.Equal(t, "cpu.out", cpuProfile)
	assert.Nil(t, cfg.Progress, "-quiet")

	cfg, _, _, err = parseFanout(nil, &errOut)
	require.NoError(t, err)
	assert.Equal(t, 15_000, cfg.Subscribers, "issue 3's default")
	assert.Empty(t, cfg.Model, "pass no -model unless asked")
	assert.NotNil(t, cfg.Progress)
}

func TestParseCompare(t *testing.T) {
	var errOut bytes.Buffer
	cfg, jsonPath, err := parseCompare("compare", []string{
		"-targets", "pushup,nchan", "-n", "300", "-parked-wait", "3s", "-settle", "2s", "-settle-timeout", "20s",
		"-syscalls=false", "-cached-duration", "5s", "-cached-connections", "32", "-cached-threads", "4",
		"-wrk", "/bin/wrk", "-require-wrk", "-json", "c.json", "-quiet",
	}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []string{"pushup", "nchan"}, cfg.Targets)
	assert.Equal(t, 300, cfg.Subscribers)
	assert.Equal(t, 3*time.Second, cfg.ParkedWait)
	assert.Equal(t, 2*time.Second, cfg.Settle.Window)
	assert.Equal(t, 20*time.Second, cfg.Settle.Timeout)
	assert.False(t, cfg.Syscalls)
	assert.Equal(t, loadtest.CachedConfig{Wrk: "/bin/wrk", Connections: 32, Threads: 4, Duration: 5 * time.Second, Require: true}, cfg.Cached)
	assert.Equal(t, "c.json", jsonPath)
	assert.Nil(t, cfg.Log, "-quiet")

	cfg, _, err = parseCompare("compare", nil, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []string{"floor", "pushup", "nchan"}, cfg.Targets, "issue 12's three targets")
	assert.Equal(t, 10*time.Second, cfg.Cached.Duration, "wrk runs by default")
	cfg, _, err = parseCompare("floor", nil, &errOut)
	require.NoError(t, err)
	assert.Zero(t, cfg.Cached.Duration, "floor is compare without wrk")
	cfg, _, err = parseCompare("compare", []string{"-transport", "sse"}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []string{"pushup", "nchan"}, cfg.Targets, "no floor on event streams")
	cfg, _, err = parseCompare("compare", []string{"-brokers", "pushup"}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []string{"pushup"}, cfg.Targets, "-brokers is -targets' older name")
	_, _, err = parseCompare("compare", []string{"-transport", "sse", "-targets", "floor"}, &errOut)
	assert.ErrorIs(t, err, loadtest.ErrInvalidConfig)
}

func TestParsePushVsPull(t *testing.T) {
	var errOut bytes.Buffer
	cfg, f, err := parsePushVsPull([]string{
		"-cc", "10,100", "-intervals", "10s,20,1m", "-methods", "CP,ELP", "-time-scale", "0.1",
		"-messages", "3", "-payload", "100", "-pull-interval", "2s", "-hold", "40s",
		"-pushupd", "/bin/pushupd", "-pushupd-args", "-gc-percent 100", "-out", "out", "-formats", "png", "-quiet",
	}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 100}, cfg.CCs)
	assert.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, time.Minute}, cfg.Intervals)
	assert.Equal(t, []string{"CP", "ELP"}, cfg.Methods)
	assert.Equal(t, 0.1, cfg.TimeScale)
	assert.Equal(t, 3, cfg.Messages)
	assert.Equal(t, 100, cfg.PayloadSize)
	assert.Equal(t, 2*time.Second, cfg.PullInterval)
	assert.Equal(t, 40*time.Second, cfg.Hold)
	assert.Equal(t, "/bin/pushupd", cfg.Pushupd)
	assert.Equal(t, []string{"-gc-percent", "100"}, cfg.ServerArgs)
	assert.Equal(t, "out", f.out)
	assert.Equal(t, []string{"png"}, f.plots)
	assert.Nil(t, cfg.Log, "-quiet")

	cfg, f, err = parsePushVsPull(nil, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 100, 1000}, cfg.CCs, "the paper's grid")
	assert.Len(t, cfg.Intervals, 5)
	assert.Equal(t, 1.0, cfg.TimeScale)
	assert.Equal(t, []string{"svg", "png"}, f.plots)
	assert.NotNil(t, cfg.Log)

	for _, bad := range [][]string{
		{"-cc", "10,x"}, {"-intervals", "soon"}, {"-methods", "CP,push"}, {"-time-scale", "2"}, {"-formats", "gif"}, {"stray"},
	} {
		_, _, err := parsePushVsPull(bad, &errOut)
		assert.Error(t, err, "%v", bad)
	}
}

func TestParseEventVsThread(t *testing.T) {
	var errOut bytes.Buffer
	cfg, _, err := parseEventVsThread([]string{"-cc", "500,1000", "-models", "event,thread", "-hold", "30s", "-interval", "5s", "-time-scale", "0.5"}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{500, 1000}, cfg.CCs)
	assert.Equal(t, []string{"event", "thread"}, cfg.Models)
	assert.Equal(t, 30*time.Second, cfg.Hold)
	assert.Equal(t, 5*time.Second, cfg.Interval)
	assert.Equal(t, 0.5, cfg.TimeScale)

	cfg, _, err = parseEventVsThread(nil, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{500, 1000, 2000, 4000, 8000, 16000}, cfg.CCs)
	assert.Equal(t, []string{"event", "goroutine", "thread"}, cfg.Models)

	_, _, err = parseEventVsThread([]string{"-models", "threads"}, &errOut)
	assert.ErrorContains(t, err, "-models")
}

func TestParseCluster(t *testing.T) {
	var errOut bytes.Buffer
	cfg, jsonPath, err := parseCluster([]string{
		"-nodes", "4", "-modes", "gossip, unicast", "-n", "50", "-messages", "7", "-interval", "5ms",
		"-publishers", "3", "-publish", "99", "-same-node=false", "-pushupd-args", "-gossip-interval 20ms",
		"-json", "c.json", "-quiet",
	}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, 4, cfg.Nodes)
	assert.Equal(t, []string{"gossip", "unicast"}, cfg.Modes)
	assert.Equal(t, 50, cfg.Subscribers)
	assert.Equal(t, 7, cfg.Messages)
	assert.Equal(t, 5*time.Millisecond, cfg.Interval)
	assert.Equal(t, 3, cfg.ThroughputPublishers)
	assert.Equal(t, 99, cfg.ThroughputMessages)
	assert.False(t, cfg.SameNode)
	assert.Equal(t, []string{"-gossip-interval", "20ms"}, cfg.ServerArgs)
	assert.Equal(t, "c.json", jsonPath)
	assert.Nil(t, cfg.Progress)

	_, _, err = parseCluster([]string{"-modes", "multicast"}, &errOut)
	assert.Error(t, err)
	assert.ErrorIs(t, dispatch(context.Background(), []string{"cluster", "-h"}, &errOut, &errOut), flag.ErrHelp)
	assert.Contains(t, errOut.String(), "-publishers")
}

func TestParseScaleOut(t *testing.T) {
	var errOut bytes.Buffer
	cfg, f, err := parseScaleOut([]string{
		"-nodes", "1,3", "-cc", "100,200", "-replication", "gossip", "-balance", "roundrobin", "-publish-to", "nodes",
		"-haproxy", "/opt/haproxy", "-hold", "30s", "-interval", "5s", "-form-timeout", "9s", "-time-scale", "0.5",
		"-messages", "3", "-pushupd", "/bin/pushupd", "-pushupd-args", "-gc-percent 100", "-out", "o", "-quiet", "-server-log",
	}, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, cfg.Nodes)
	assert.Equal(t, []int{100, 200}, cfg.CCs)
	assert.Equal(t, "gossip", cfg.Replication)
	assert.Equal(t, "roundrobin", cfg.Balance)
	assert.Equal(t, "nodes", cfg.PublishTo)
	assert.Equal(t, "/opt/haproxy", cfg.HAProxy)
	assert.Equal(t, 30*time.Second, cfg.Hold)
	assert.Equal(t, 5*time.Second, cfg.Interval)
	assert.Equal(t, 9*time.Second, cfg.FormTimeout)
	assert.Equal(t, 0.5, cfg.TimeScale)
	assert.Equal(t, 3, cfg.Messages)
	assert.Equal(t, "/bin/pushupd", cfg.Pushupd)
	assert.Equal(t, []string{"-gc-percent", "100"}, cfg.ServerArgs)
	assert.Equal(t, "o", f.out)
	assert.Nil(t, cfg.Log, "-quiet")
	assert.NotNil(t, cfg.DaemonLog, "-server-log")

	cfg, _, err = parseScaleOut(nil, &errOut)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3, 4}, cfg.Nodes, "the paper's")
	assert.Equal(t, []int{500, 1000, 2000, 4000, 8000}, cfg.CCs)
	assert.Equal(t, "unicast", cfg.Replication)
	assert.Equal(t, "leastconn", cfg.Balance)
	assert.Equal(t, "haproxy", cfg.PublishTo)
	assert.Empty(t, cfg.HAProxy, "found at run time")

	for _, bad := range [][]string{
		{"-nodes", "1,x"}, {"-nodes", "0"}, {"-cc", "a"}, {"-replication", "multicast"}, {"-balance", "source"},
		{"-publish-to", "n1"}, {"-pushupd-args", "-join 127.0.0.1:1"}, {"-time-scale", "0"}, {"stray"},
	} {
		_, _, err := parseScaleOut(bad, &errOut)
		assert.Error(t, err, "%v", bad)
	}
}
