package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireCase is raw bytes sent on one connection and what every model must
// answer: the statuses in order, a piece of each body, whether the
// connection is still usable afterwards, and whether a message reached
// channel "smug" (smuggled publishes must never be stored).
type wireCase struct {
	name string
	// send is written in pieces, one write each (a split head).
	send []string
	// fin half-closes the connection after sending.
	fin    bool
	status []int
	body   []string // a substring of each body ("" for any)
	head   []bool   // the request of that answer was a HEAD (no body)
	kept   bool
	stored bool
}

// publishSmug is a complete keyed publish to channel "smug".
func publishSmug() string {
	body := `{"channels":["smug"],"data":"smuggled"}`
	return fmt.Sprintf("POST /v1/publish HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

const subNow = "GET /v1/subscribe?channels=z&timeout=0 HTTP/1.1\r\n"

func wireCases() []wireCase {
	smug := publishSmug()
	big := strings.Repeat("x", 100<<10)
	return []wireCase{
		{name: "healthz", send: []string{"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"}, status: []int{200}, body: []string{`"ok"`}, kept: true},
		{name: "subscribe", send: []string{subNow + "Host: a\r\n\r\n"}, status: []int{200}, body: []string{`"cursor"`}, kept: true},
		{name: "publish", send: []string{smug}, status: []int{201}, kept: true, stored: true},
		{name: "split head", send: []string{"GET /v1/subscribe?chan", "nels=z&timeout=0 HTTP/1.1\r\nHo", "st: a\r\n", "\r\n"},
			status: []int{200}, body: []string{`"cursor"`}, kept: true},
		{name: "pipelined", send: []string{subNow + "Host: a\r\n\r\n" + "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" + subNow + "Host: a\r\n\r\n"},
			status: []int{200, 200, 200}, body: []string{`"cursor"`, `"ok"`, `"cursor"`}, kept: true},
		// Finding 1: a space before the colon is invalid (RFC 9112 §5.1);
		// the body must never run as a request.
		{name: "space before colon smuggles", send: []string{subNow + "Host: a\r\nContent-Length : " + fmt.Sprint(len(smug)) + "\r\n\r\n" + smug},
			status: []int{400}, kept: false},
		// Finding 1: a head that ends in a bare LF ends there, for every
		// parser: the POST after it is a request of its own.
		{name: "bare LF ends the head", send: []string{subNow + "Host: a\r\n\n" + smug},
			status: []int{200, 201}, body: []string{`"cursor"`, ""}, kept: true, stored: true},
		// Finding 3: bare-LF requests get an answer.
		{name: "bare LF healthz", send: []string{"GET /healthz HTTP/1.1\nHost: a\n\n"}, status: []int{200}, kept: true},
		{name: "bare LF subscribe", send: []string{"GET /v1/subscribe?channels=z&timeout=0 HTTP/1.1\nHost: a\n\n"},
			status: []int{200}, body: []string{`"cursor"`}, kept: true},
		// Finding 3: a request that arrives with the client's FIN is
		// answered, not reset.
		{name: "request with FIN", send: []string{subNow + "Host: a\r\n\r\n"}, fin: true, status: []int{200}, body: []string{`"cursor"`}},
		// Finding 4: Host rules (RFC 9112 §3.2) and Expect.
		{name: "no host", send: []string{subNow + "\r\n"}, status: []int{400}},
		{name: "bad host", send: []string{subNow + "Host: a b/c\r\n\r\n"}, status: []int{400}},
		{name: "two hosts", send: []string{subNow + "Host: a\r\nHost: b\r\n\r\n"}, status: []int{400}},
		{name: "expect teapot", send: []string{subNow + "Host: a\r\nExpect: teapot\r\n\r\n"}, status: []int{417}},
		// net/http accepts obs-fold (as RFC 9112 §5.2 allows): the event
		// loop leaves it to net/http.
		{name: "obs-fold", send: []string{subNow + "Host: a\r\nX-A: b\r\n c\r\n\r\n"}, status: []int{200}, kept: true},
		// Finding 5: Content-Length with Transfer-Encoding is answered 400
		// and the connection closed, so what follows never runs.
		{name: "CL and TE on publish", send: []string{"POST /v1/publish HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smug},
			status: []int{400}},
		{name: "CL and TE on subscribe", send: []string{subNow + "Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smug},
			status: []int{400}},
		{name: "HEAD", send: []string{"HEAD /pushup.js HTTP/1.1\r\nHost: a\r\n\r\n"}, status: []int{200}, head: []bool{true}, kept: true},
		{name: "HTTP/1.0", send: []string{"GET /v1/subscribe?channels=z&timeout=0 HTTP/1.0\r\n\r\n"}, status: []int{200}, body: []string{`"cursor"`}},
		{name: "HTTP/1.0 keep-alive", send: []string{"GET /v1/subscribe?channels=z&timeout=0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
			status: []int{200}, body: []string{`"cursor"`}, kept: true},
		{name: "connection close", send: []string{subNow + "Host: a\r\nConnection: close\r\n\r\n"}, status: []int{200}},
		{name: "absolute form", send: []string{"GET http://a/v1/subscribe?channels=z&timeout=0 HTTP/1.1\r\nHost: a\r\n\r\n"},
			status: []int{200}, body: []string{`"cursor"`}, kept: true},
		{name: "huge head", send: []string{subNow + "Host: a\r\nX-Big: " + big + "\r\n\r\n"}, status: []int{431}},
	}
}

// TestRawWire sends the same bytes to every model and expects the same
// answers: the models differ in how they hold a waiting request, never in
// what they answer.
func TestRawWire(t *testing.T) {
	eachModel(t, func(t *testing.T, model Model) {
		for _, tc := range wireCases() {
			t.Run(tc.name, func(t *testing.T) {
				ts := startServer(t, options{model: model})
				got := exchange(t, ts, tc)
				assert.Equal(t, tc.status, got.status, "statuses")
				for i, want := range tc.body {
					if i < len(got.body) && want != "" {
						assert.Contains(t, got.body[i], want, "body %d", i)
					}
				}
				assert.Equal(t, tc.kept, got.kept, "connection kept open")
				a, _ := ts.subscribe(q("channels", "smug", "timeout", "0"))
				assert.Equal(t, tc.stored, len(a.Messages) > 0, "a message was stored")
			})
		}
	})
}

type wireResult struct {
	status []int
	body   []string
	kept   bool
}

// exchange sends tc's bytes and reads the answers, then finds out whether
// the connection is still served: it sends one more request, which an
// open connection answers and a closed one cannot.
func exchange(t *testing.T, ts *testServer, tc wireCase) wireResult {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	for _, p := range tc.send {
		if _, err := io.WriteString(conn, p); err != nil {
			break // closed by the server mid-request: read what it said
		}
	}
	if tc.fin {
		require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	}
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	var res wireResult
	for i := range tc.status {
		var req *http.Request
		if i < len(tc.head) && tc.head[i] {
			req = &http.Request{Method: http.MethodHead}
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return res // closed early: the statuses show it
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.status = append(res.status, resp.StatusCode)
		res.body = append(res.body, string(b))
		if err != nil {
			return res // reset while reading: closed
		}
	}
	if tc.fin {
		_, err := br.ReadByte()
		assert.ErrorIs(t, err, io.EOF, "closed after answering a request sent with FIN")
		return res
	}
	// Whatever is still unread belongs to a request the server should not
	// have answered.
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n"); err != nil {
		return res
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the connection neither answered nor closed")
		return res
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res.kept = resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"ok"`)
	if !res.kept {
		res.status = append(res.status, resp.StatusCode) // an extra answer
	}
	return res
}
