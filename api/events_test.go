package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/sse"
)

// stream is an open GET /v1/events, read as EventSource would.
type stream struct {
	t      testing.TB
	resp   *http.Response
	p      *sse.Reader
	cancel context.CancelFunc
}

func (ts *testServer) openStream(query string, header ...string) *stream {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.url+"/v1/events?"+query, nil)
	require.NoError(ts.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.client.Do(req)
	require.NoError(ts.t, err)
	s := &stream{t: ts.t, resp: resp, p: sse.NewReader(resp.Body), cancel: cancel}
	ts.t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

func (s *stream) next() sse.Event {
	s.t.Helper()
	ev, err := s.p.Next()
	require.NoError(s.t, err)
	return ev
}

// message reads the next event, which must be a message, and returns its
// id and payload.
func (s *stream) message() (id, data string) {
	s.t.Helper()
	ev := s.next()
	require.Equal(s.t, "", ev.Type, "a message event, got %+v", ev)
	var m struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	require.NoError(s.t, json.Unmarshal([]byte(ev.Data), &m), ev.Data)
	require.NotEmpty(s.t, m.ID, "the same object as in a long-poll answer")
	return ev.ID, string(m.Data)
}

func TestEventsDeliverEachMessageOnceAndResumeWithLastEventID(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.publish(`{"channels":["a"],"data":"before"}`)
		s := ts.openStream(q("channels", "a,b", "since", "now"), "Origin", "https://app.example")
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
		assert.Equal(t, "*", s.resp.Header.Get("Access-Control-Allow-Origin"), "same CORS as subscribe")
		first := s.next()
		assert.Equal(t, "cursor", first.Type, "the stream says where it starts")
		assert.Equal(t, 2*time.Second, s.p.Retry())
		require.Eventually(t, func() bool { return ts.srv.sse.open.Load() == 1 }, 5*time.Second, time.Millisecond)

		for i := range 3 {
			ts.publish(fmt.Sprintf(`{"channels":["a","b"],"data":%d}`, i))
		}
		var ids []string
		for i := range 3 {
			id, data := s.message()
			assert.Equal(t, fmt.Sprint(i), data, "in order, once, though published to both channels")
			ids = append(ids, id)
		}
		s.close()
		require.Eventually(t, func() bool { return ts.srv.sse.open.Load() == 0 }, 5*time.Second, time.Millisecond,
			"a client that goes ends its stream")

		// EventSource reconnects with the URL it had (since=now) and the
		// last id it saw: the id wins.
		ts.publish(`{"channels":["b"],"data":3}`)
		r := ts.openStream(q("channels", "a,b", "since", "now"), "Last-Event-ID", ids[1])
		assert.Equal(t, ids[1], r.next().ID, "the cursor event repeats the position")
		_, data := r.message()
		assert.Equal(t, "2", data)
		_, data = r.message()
		assert.Equal(t, "3", data)

		// since= an id works the same.
		u := ts.openStream(q("channels", "a,b", "since", ids[0]))
		u.next()
		_, data = u.message()
		assert.Equal(t, "1", data)
	})
}

func TestEventsRefuseBadRequestsWithJSON(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, broker: func(c *broker.Config) { c.ImplicitChannels = false }})
		for _, tc := range []struct {
			query, lastID, code string
			status              int
		}{
			{"", "", "no_channels", http.StatusBadRequest},
			{"channels=missing", "", "channel_not_found", http.StatusNotFound},
			{"channels=bad%20name", "", "invalid_channel", http.StatusBadRequest},
			{"channels=a&since=x", "", "invalid_since", http.StatusBadRequest},
			{"channels=a&until=5", "", "invalid_until", http.StatusBadRequest},
			{"channels=a", "nonsense", "invalid_last_event_id", http.StatusBadRequest},
		} {
			var h []string
			if tc.lastID != "" {
				h = []string{"Last-Event-ID", tc.lastID}
			}
			r := ts.do(http.MethodGet, "/v1/events?"+tc.query, "", h...)
			assert.Equal(t, tc.status, r.status, tc.query)
			assert.Equal(t, tc.code, r.code(t), tc.query)
		}
		assert.Zero(t, ts.srv.sse.started.Load(), "no stream opened")
	})
}

func TestEventsClosedChannelEndsTheStream(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		s := ts.openStream(q("channels", "a", "since", "now"))
		s.next()
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
		require.Equal(t, http.StatusOK, ts.do(http.MethodDelete, "/v1/channels/a", "").status)
		ev := s.next()
		assert.Equal(t, "closed", ev.Type)
		assert.Contains(t, ev.Data, `"error":"channel_closed"`)
		_, err := s.p.Next()
		assert.Error(t, err, "the stream ends after it")
		require.Eventually(t, func() bool { return ts.srv.sse.ended[1].Load() == 1 }, 5*time.Second, time.Millisecond)
	})
}

func TestEventsHeartbeatAndLifetimeOverHTTP(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) {
			c.SSE.Heartbeat = 20 * time.Millisecond
			c.SSE.MaxLifetime = 300 * time.Millisecond
		}})
		s := ts.openStream(q("channels", "a"))
		s.next()
		_, err := s.p.Next() // no events come: only heartbeats, then the end
		assert.Error(t, err)
		assert.Contains(t, s.p.Comments(), "hb", "idle streams get comment lines")
		assert.EqualValues(t, 1, ts.srv.sse.ended[0].Load(), "ended by its lifetime")
	})
}

func TestEventsSlowStreamIsClosedAndCounted(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model, api: func(c *Config) { c.WriteTimeout = 200 * time.Millisecond }})
		// A client that opens a stream and never reads, with a tiny
		// receive buffer so the server's socket fills soon.
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		conn, err := d.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "GET /v1/events?channels=a HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return ts.srv.sse.open.Load() == 1 }, 5*time.Second, time.Millisecond)

		big := `{"channels":["a"],"data":"` + strings.Repeat("x", 512<<10) + `"}`
		for i := 0; i < 100 && ts.srv.sse.ended[4].Load() == 0; i++ {
			require.Equal(t, http.StatusCreated, ts.publish(big).status)
		}
		require.Eventually(t, func() bool { return ts.srv.sse.ended[4].Load() == 1 }, 10*time.Second, 5*time.Millisecond,
			"a stream whose socket stays full past the write timeout is closed and counted")
		assert.Zero(t, ts.srv.sse.open.Load())
	})
}

func TestEventsEndAtShutdown(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		s := ts.openStream(q("channels", "a"))
		s.next()
		require.Eventually(t, func() bool { return ts.b.Stats().Waiters == 1 }, 5*time.Second, time.Millisecond)
		ts.shutdown()
		_, err := s.p.Next()
		assert.Error(t, err, "the stream ends; the client resumes elsewhere")
		assert.EqualValues(t, 1, ts.srv.sse.ended[2].Load())
	})
}

func TestPositionPinsNowForAPage(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		ts.publish(`{"channels":["a"],"data":"before"}`)
		r := ts.do(http.MethodGet, "/v1/position?channels=a,b", "", "Origin", "https://app.example")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
		pos := r.json(t)["cursor"].(string)
		ts.publish(`{"channels":["b"],"data":"after"}`)

		a, _ := ts.subscribe(q("channels", "a,b", "since", pos, "timeout", "0"))
		assert.Equal(t, []string{`"after"`}, a.data())
		s := ts.openStream(q("channels", "a,b", "since", pos))
		assert.Equal(t, pos, s.next().ID)
		_, data := s.message()
		assert.Equal(t, `"after"`, data)

		assert.Equal(t, "no_channels", ts.do(http.MethodGet, "/v1/position", "").code(t))
	})
}

// TestStreamHeartbeatAndLifetimeInFakeTime drives a stream over a broker
// in a synctest bubble: a heartbeat per idle interval, none while messages
// flow, and the end at the lifetime.
func TestStreamHeartbeatAndLifetimeInFakeTime(t *testing.T) {
	for _, jitter := range []float64{0, 0.1} {
		t.Run(fmt.Sprint("broker jitter ", jitter), func(t *testing.T) { testStreamInFakeTime(t, jitter) })
	}
}

func testStreamInFakeTime(t *testing.T, jitter float64) {
	synctest.Test(t, func(t *testing.T) {
		bc := broker.DefaultConfig()
		bc.TimeoutJitter = jitter
		b, err := broker.New(bc)
		require.NoError(t, err)
		defer b.Close()
		cfg := SSEConfig{Heartbeat: 15 * time.Second, MaxLifetime: 100 * time.Second, Retry: time.Second}
		s := &Server{b: b, sse: newSSEMetrics(), log: discardLogger(), cfg: Config{SSE: cfg}}
		start := time.Now()
		st := newSSEStream(cfg, []string{"a"}, broker.Cursor{}, start, 0)

		type write struct {
			at  time.Duration
			out string
		}
		var writes []write
		done := make(chan string)
		go func() {
			done <- s.driveStream(context.Background(), &st, func(p []byte) error {
				writes = append(writes, write{time.Since(start), string(p)})
				return nil
			})
		}()
		time.Sleep(40 * time.Second)
		_, err = b.Publish(broker.Publication{Channels: []string{"a"}, Data: []byte(`1`)})
		require.NoError(t, err)
		why := <-done
		assert.Equal(t, sseEndLifetime, why)
		assert.LessOrEqual(t, time.Since(start), 100*time.Second, "ends at its lifetime")
		assert.Greater(t, time.Since(start), 85*time.Second, "not more than a heartbeat early")

		var beats []time.Duration
		msgs := 0
		for _, w := range writes {
			switch {
			case w.out == ": hb\n\n":
				beats = append(beats, w.at)
			case strings.Contains(w.out, `"data":1`):
				msgs++
				assert.Equal(t, 40*time.Second, w.at)
			default:
				t.Errorf("unexpected write %q", w.out)
			}
		}
		assert.Equal(t, 1, msgs)
		if jitter == 0 {
			// 15, 30, (message at 40), 55, 70, 85, and the wait
			// from 85 is the last: its timeout at 100 ends the stream.
			assert.Equal(t, []time.Duration{15 * time.Second, 30 * time.Second, 55 * time.Second,
				70 * time.Second, 85 * time.Second}, beats)
			assert.Equal(t, 100*time.Second, time.Since(start))
			return
		}
		// Waits cut short by the broker: beats come a little early,
		// never late, and never in a burst before the end.
		assert.InDelta(t, 6, len(beats), 1)
		prev := time.Duration(0)
		for _, at := range beats {
			gap := at - prev
			if prev < 40*time.Second && at > 40*time.Second {
				gap = at - 40*time.Second
			}
			assert.LessOrEqual(t, gap, 15*time.Second)
			assert.Greater(t, gap, 13*time.Second)
			prev = at
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
