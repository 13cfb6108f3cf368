package loadtest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/testbed"
)

// testPopulation starts a population against url and stops it at the end
// of the test.
func testPopulation(t *testing.T, url string, n int, edit func(*PopulationConfig)) *Population {
	t.Helper()
	cfg := DefaultPopulationConfig()
	cfg.Subscribers = n
	cfg.Targets = []string{url}
	cfg.PollInterval = 30 * time.Second
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = 10 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	p, err := NewPopulation(cfg)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(p.Stop)
	return p
}

// publishN publishes n messages through a Publisher, as a run does.
func publishN(t *testing.T, url string, n int) []PublishRecord {
	t.Helper()
	cfg := DefaultPublisherConfig()
	cfg.Targets = []string{url}
	cfg.Messages = n
	cfg.Interval = 5 * time.Millisecond
	pub, err := NewPublisher(cfg)
	require.NoError(t, err)
	recs := pub.Run(context.Background())
	require.Len(t, recs, n)
	for _, r := range recs {
		require.True(t, r.OK(), "%+v", r)
	}
	return recs
}

func waitAllParked(t *testing.T, p *Population) {
	t.Helper()
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Started == int64(p.Size()) && st.InFlight == int64(p.Size())
	}, 10*time.Second, time.Millisecond)
}

func TestPopulationLongPollGetsEveryMessageOnce(t *testing.T) {
	f := newFakeBroker(t, nil)
	p := testPopulation(t, f.srv.URL, 20, nil)
	waitAllParked(t, p)
	recs := publishN(t, f.srv.URL, 3)
	require.Eventually(t, func() bool { return p.Stats().Fresh == 60 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, int64(60), p.Expected(recs))
	waitAllParked(t, p) // again, after the last message
	require.Eventually(t, func() bool {
		requests, _, _ := f.stats()
		return int64(requests) == p.Traffic().Requests
	}, 10*time.Second, time.Millisecond, "every request written reaches the server")
	p.Stop()

	d := p.Tally(recs)
	assert.Equal(t, Delivery{Published: 3, Expected: 60, Received: 60, RMP: 100}, d)
	assert.Empty(t, p.Errors())
	assert.Len(t, p.TripTimes(), 60)
	tr := p.Traffic()
	assert.Equal(t, int64(20), tr.Connections, "one keep-alive connection each")
	assert.GreaterOrEqual(t, tr.Requests, int64(20*2), "a first poll and at least one long poll each")
	assert.Equal(t, tr.Sent+tr.Received, tr.Total)
	assert.Positive(t, tr.EstimatedTCPIPBytes)
	_, timeouts, sources := f.stats()
	assert.Equal(t, 20, timeouts["0"], "the first poll takes the position at once")
	assert.Greater(t, len(sources), 1, "connections come from several 127.0.0.x")
	for s := range sources {
		a, err := netip.ParseAddr(s)
		require.NoError(t, err)
		assert.True(t, a.IsLoopback(), s)
	}
}

// TestPopulationReconnectsOnConnectionClose: a server that closes after
// every answer (as pushupd does at shutdown) costs a reconnect, not a
// message and not an error.
func TestPopulationReconnectsOnConnectionClose(t *testing.T) {
	f := newFakeBroker(t, func(f *fakeBroker) { f.closeEvery = true })
	p := testPopulation(t, f.srv.URL, 5, nil)
	waitAllParked(t, p)
	recs := publishN(t, f.srv.URL, 4)
	require.Eventually(t, func() bool { return p.Stats().Fresh == 20 }, 10*time.Second, time.Millisecond)
	p.Stop()
	assert.Equal(t, Delivery{Published: 4, Expected: 20, Received: 20, RMP: 100}, p.Tally(recs))
	assert.Empty(t, p.Errors())
	// A connection is counted when dialled and a request when written, so
	// Stop can fall between the two for each of the 5 subscribers.
	tr := p.Traffic()
	assert.GreaterOrEqual(t, tr.Connections, tr.Requests, "a new connection for every request")
	assert.LessOrEqual(t, tr.Connections, tr.Requests+5, "a new connection for every request")
	assert.Greater(t, tr.Connections, int64(5), "every subscriber reconnected at least once")
}

func TestPopulationCountsUnexpectedStatuses(t *testing.T) {
	f := newFakeBroker(t, func(f *fakeBroker) { f.failFirst = 5 })
	p := testPopulation(t, f.srv.URL, 3, nil)
	require.Eventually(t, func() bool { return p.Stats().Started == 3 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, map[string]int64{"status": 5, "status_503": 5}, p.Errors())
}

func TestPopulationPull(t *testing.T) {
	f := newFakeBroker(t, nil)
	p := testPopulation(t, f.srv.URL, 4, func(c *PopulationConfig) {
		c.Mode = ModePull
		c.PollInterval = 20 * time.Millisecond
	})
	require.Eventually(t, func() bool { return p.Stats().Started == 4 }, 10*time.Second, time.Millisecond)
	recs := publishN(t, f.srv.URL, 3)
	require.Eventually(t, func() bool { return p.Stats().Fresh == 12 }, 10*time.Second, time.Millisecond)
	// Polls go on at the interval whether or not anything was published.
	before := p.Traffic().Requests
	require.Eventually(t, func() bool { return p.Traffic().Requests >= before+8 }, 10*time.Second, time.Millisecond)
	p.Stop()
	assert.Equal(t, Delivery{Published: 3, Expected: 12, Received: 12, RMP: 100}, p.Tally(recs))
	_, timeouts, _ := f.stats()
	assert.Len(t, timeouts, 1, "client pull never waits on the server")
	assert.Positive(t, timeouts["0"])
	assert.Equal(t, int64(4), p.Traffic().Connections)
}

// TestPopulationStopEndsParkedPolls: Stop must not wait out a long hold,
// and what it interrupts is not a server error.
func TestPopulationStopEndsParkedPolls(t *testing.T) {
	f := newFakeBroker(t, nil)
	p := testPopulation(t, f.srv.URL, 10, func(c *PopulationConfig) { c.PollInterval = 100 * time.Second })
	waitAllParked(t, p)
	stopped := make(chan struct{})
	go func() {
		p.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for parked polls")
	}
	assert.Empty(t, p.Errors())
	st := p.Stats()
	assert.Zero(t, st.Connected)
	assert.Zero(t, st.InFlight)
}

func TestPopulationCountsDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	p := testPopulation(t, closed, 2, nil)
	require.Eventually(t, func() bool { return p.Errors()["dial"] >= 4 }, 10*time.Second, time.Millisecond)
	assert.Zero(t, p.Stats().Started)
}

func TestPopulationRefusesMoreConnectionsThanFiles(t *testing.T) {
	limit, err := testbed.RaiseFileLimit()
	require.NoError(t, err)
	if limit > 1<<24 {
		t.Skipf("open-file limit %d too high to exceed in a test", limit)
	}
	cfg := DefaultPopulationConfig()
	cfg.Subscribers = int(limit) - testbed.FileMargin + 1
	cfg.Targets = []string{"http://127.0.0.1:1"}
	p, err := NewPopulation(cfg)
	require.NoError(t, err)
	err = p.Start(context.Background())
	require.ErrorIs(t, err, ErrTooManyConnections)
	assert.Contains(t, err.Error(), "asked for")
	assert.Zero(t, p.Stats().Connected, "nothing dialed")
	p.Stop()
}

func TestPopulationConfigValidate(t *testing.T) {
	for name, edit := range map[string]func(*PopulationConfig){
		"no subscribers":      func(c *PopulationConfig) { c.Subscribers = 0 },
		"no channels":         func(c *PopulationConfig) { c.Channels = nil },
		"too many per sub":    func(c *PopulationConfig) { c.ChannelsPerSubscriber = 2 },
		"unknown mode":        func(c *PopulationConfig) { c.Mode = "push" },
		"no interval":         func(c *PopulationConfig) { c.PollInterval = 0 },
		"no dial bound":       func(c *PopulationConfig) { c.DialConcurrency = 0 },
		"backoff upside down": func(c *PopulationConfig) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond },
	} {
		cfg := DefaultPopulationConfig()
		edit(&cfg)
		assert.ErrorIs(t, cfg.Validate(), ErrInvalidConfig, name)
	}
	assert.NoError(t, DefaultPopulationConfig().Validate())
}

func TestChannelsOf(t *testing.T) {
	cfg := DefaultPopulationConfig()
	cfg.Channels = []string{"a", "b", "c"}
	assert.Equal(t, []string{"a", "b", "c"}, cfg.channelsOf(1))
	cfg.ChannelsPerSubscriber = 2
	assert.Equal(t, []string{"a", "b"}, cfg.channelsOf(0))
	assert.Equal(t, []string{"c", "a"}, cfg.channelsOf(2))
	assert.Equal(t, []string{"a", "b"}, cfg.channelsOf(3))
}
