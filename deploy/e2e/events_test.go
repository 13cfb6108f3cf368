package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/internal/sse"
)

// TestEventsResumeThroughHAProxyAfterKill: event streams through haproxy
// to a three-node cluster, publishers on every node, and kill -9 of a
// node mid-stream: the streams it held end, reconnect through haproxy with
// Last-Event-ID as a browser's EventSource does, and every stream gets
// every message the survivors acknowledged exactly once.
func TestEventsResumeThroughHAProxyAfterKill(t *testing.T) {
	c := startCluster(t, "unicast")
	const ch = "sse-kill"
	const perPublisher = 300
	victim, survivors := c.nodes[2], c.nodes[:2]

	var streams []*subscriber
	for i := range 6 {
		streams = append(streams, c.streamFrom(fmt.Sprintf("stream%d", i), ch, "0", c.lb))
	}
	require.Eventually(t, func() bool {
		for _, s := range streams {
			s.mu.Lock()
			open := s.last != ""
			s.mu.Unlock()
			if !open {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "every stream open")
	onVictim := 0
	for _, s := range streams {
		s.mu.Lock()
		if s.last == victim.name {
			onVictim++
		}
		s.mu.Unlock()
	}
	require.Positive(t, onVictim, "haproxy (leastconn) put some streams on the victim")

	pubs, viaLB := c.killMidStream(t, ch, perPublisher, victim, streams)

	var keys []msgKey
	for i, n := range survivors {
		keys = append(keys, pubs[i].ackedBy(n.url)...)
	}
	keys = append(keys, viaLB.ackedBy("n1", "n2")...)
	requireExactlyOnce(t, streams, keys, 20*time.Second)
	for _, s := range streams {
		s.mu.Lock()
		assert.Positive(t, s.after["n1"]+s.after["n2"], "%s: events after the kill", s.name)
		assert.NotEqual(t, victim.name, s.last, "%s: still on the dead node", s.name)
		s.mu.Unlock()
		s.stop()
	}
	t.Logf("%d streams were on the victim; acknowledged by survivors: %d; stream reconnects: %d",
		onVictim, len(keys), errCount(streams))
}

// streamFrom starts a subscriber that reads GET /v1/events from base, as
// a browser's EventSource does: on the end of a stream it reconnects to
// base with the last event id in Last-Event-ID. Each stream's end is
// recorded in errs.
func (c *testCluster) streamFrom(name, channel, since, base string) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{name: name, channel: channel, next: fixed(base), cancel: cancel, done: make(chan struct{}),
		count: map[msgKey]int{}, servers: map[string]int{}, bases: map[string]int{}, after: map[string]int{}}
	// No client timeout: it would cut streams.
	client := &http.Client{Transport: c.client.Transport}
	go s.stream(ctx, client, base, since)
	c.t.Cleanup(s.stop)
	return s
}

func (s *subscriber) stream(ctx context.Context, client *http.Client, base, since string) {
	defer close(s.done)
	lastID := ""
	q := url.Values{"channels": {s.channel}, "since": {since}}
	for ctx.Err() == nil {
		err := s.readStream(ctx, client, base+"/v1/events?"+q.Encode(), &lastID)
		s.mu.Lock()
		if ctx.Err() == nil {
			s.errs = append(s.errs, err.Error())
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // EventSource's retry, shortened
		}
	}
}

// readStream reads one stream until it ends, recording its messages.
func (s *subscriber) readStream(ctx context.Context, client *http.Client, u string, lastID *string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events: %s", resp.Status)
	}
	server := resp.Header.Get("X-Pushup-Server")
	r := sse.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			return fmt.Errorf("stream from %s ended: %w", server, err)
		}
		s.mu.Lock()
		switch ev.Type {
		case "":
			var m message
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				s.mu.Unlock()
				return err
			}
			s.got = append(s.got, m.Data)
			s.count[m.Data]++
			if s.killed {
				s.after[server]++
			}
		case "truncated":
			s.truncated = true
		}
		s.last = server
		s.servers[server]++
		s.cursor = ev.ID
		*lastID = ev.ID
		s.mu.Unlock()
	}
}
