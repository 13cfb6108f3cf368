package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChurnNeverCrossesAnswers (finding 6): while many short connections
// come and go (parking on a fanned-out channel and vanishing, asking for
// /healthz) and descriptor numbers are reused, every answer reaches the
// connection that asked for it: each waiter sees only its own channel's
// messages, each health check a health answer. Run it under -race.
func TestChurnNeverCrossesAnswers(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		ts := startServer(t, options{model: model})
		addr := strings.TrimPrefix(ts.url, "http://")
		const waiters, rounds, churners, churns = 40, 3, 4, 60
		var wg sync.WaitGroup
		stop := make(chan struct{})

		for w := range waiters {
			wg.Go(func() {
				conn, err := net.Dial("tcp", addr)
				if !assert.NoError(t, err) {
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(60 * time.Second))
				br := bufio.NewReader(conn)
				cursor, seen := "0", 0
				for seen < rounds {
					fmt.Fprintf(conn, "GET /v1/subscribe?channels=w%d&timeout=30&since=%s HTTP/1.1\r\nHost: a\r\n\r\n", w, cursor)
					resp, err := http.ReadResponse(br, nil)
					if !assert.NoError(t, err, "waiter %d", w) {
						return
					}
					var a subAnswer
					err = json.NewDecoder(resp.Body).Decode(&a)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if !assert.NoError(t, err, "waiter %d got a body that is no subscribe answer", w) {
						return
					}
					for _, d := range a.data() {
						assert.True(t, strings.HasPrefix(d, fmt.Sprintf(`"%d-`, w)), "waiter %d got %s", w, d)
					}
					seen += len(a.Messages)
					cursor = a.Cursor
				}
			})
		}
		for range churners {
			wg.Go(func() {
				for i := range churns {
					conn, err := net.Dial("tcp", addr)
					if !assert.NoError(t, err) {
						return
					}
					conn.SetDeadline(time.Now().Add(30 * time.Second))
					if i%2 == 0 {
						// Park on the fanned-out channel, then vanish.
						io.WriteString(conn, "GET /v1/subscribe?channels=churn&since=now&timeout=30 HTTP/1.1\r\nHost: a\r\n\r\n")
						conn.Close()
						continue
					}
					io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
					resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if assert.NoError(t, err) {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						assert.Contains(t, string(b), `"status":"ok"`, "a health check got someone else's answer")
					}
					conn.Close()
				}
			})
		}
		var pub sync.WaitGroup
		pub.Go(func() { // fan-out to whoever is parked on churn meanwhile
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				ts.publish(fmt.Sprintf(`{"channels":["churn"],"data":"churn %d"}`, i))
			}
		})
		for r := range rounds {
			for w := range waiters {
				rsp := ts.publish(fmt.Sprintf(`{"channels":["w%d"],"data":"%d-%d"}`, w, w, r))
				require.Equal(t, http.StatusCreated, rsp.status)
			}
		}
		wg.Wait()
		close(stop)
		pub.Wait()
	})
}
