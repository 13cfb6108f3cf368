package evhttp

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseFastHead(t *testing.T) {
	const base = "GET /v1/subscribe?channels=a,b&since=now HTTP/1.1\r\nHost: x\r\n"
	for _, tc := range []struct {
		name  string
		head  string
		ok    bool
		want  Head
		extra string
	}{
		{"plain", base + "\r\n", true, Head{Query: "channels=a,b&since=now", KeepAlive: true}, ""},
		{"origin and close", base + "Origin: https://a.example\r\nConnection: keep-alive, Close\r\n\r\n", true,
			Head{Query: "channels=a,b&since=now", Origin: "https://a.example"}, ""},
		{"no query", "GET /v1/subscribe HTTP/1.1\r\nHost: x\r\n\r\n", true, Head{KeepAlive: true}, ""},
		{"header case and spaces", "GET /v1/subscribe?c HTTP/1.1\r\nhOsT:   x  \r\nORIGIN:\to\t\r\n\r\n", true,
			Head{Query: "c", Origin: "o", KeepAlive: true}, ""},
		{"content length, even 0, is net/http's", base + "Content-Length: 0\r\n\r\n", false, Head{}, ""},
		{"no host", "GET /v1/subscribe?x HTTP/1.1\r\n\r\n", false, Head{}, ""},
		{"two hosts", base + "Host: y\r\n\r\n", false, Head{}, ""},
		{"two origins", base + "Origin: a\r\nOrigin: b\r\n\r\n", false, Head{}, ""},
		{"HTTP/1.0", "GET /v1/subscribe?x HTTP/1.0\r\nHost: x\r\n\r\n", false, Head{}, ""},
		{"other path", "GET /v1/subscribers HTTP/1.1\r\nHost: x\r\n\r\n", false, Head{}, ""},
		{"POST", "POST /v1/subscribe HTTP/1.1\r\nHost: x\r\n\r\n", false, Head{}, ""},
		{"body", base + "Content-Length: 5\r\n\r\n", false, Head{}, ""},
		{"chunked", base + "Transfer-Encoding: chunked\r\n\r\n", false, Head{}, ""},
		{"upgrade", base + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, Head{}, ""},
		{"expect", base + "Expect: 100-continue\r\n\r\n", false, Head{}, ""},
		{"folded header", base + "X-A: 1\r\n  continued\r\n\r\n", false, Head{}, ""},
		{"bad header name", base + "X A: 1\r\n\r\n", false, Head{}, ""},
		{"control char in value", base + "X-A: a\x01b\r\n\r\n", false, Head{}, ""},
		{"space in target", "GET /v1/subscribe?a b HTTP/1.1\r\nHost: x\r\n\r\n", false, Head{}, ""},
		{"fragment", "GET /v1/subscribe?a#b HTTP/1.1\r\nHost: x\r\n\r\n", false, Head{}, ""},
		{"bare LF", "GET /v1/subscribe?a HTTP/1.1\nHost: x\n\n", false, Head{}, ""},
		{"last event id", base + "Last-Event-ID: c1\r\n\r\n", true,
			Head{Query: "channels=a,b&since=now", KeepAlive: true, LastEventID: "c1"}, ""},
		{"two last event ids", base + "Last-Event-ID: c1\r\nLast-Event-Id: c2\r\n\r\n", false, Head{}, ""},
		{"credentials and forwarding", base + "authorization:  Bearer t.k.n \r\nCookie: a=1; pushup_token=x\r\nX-Forwarded-For: 203.0.113.1, 10.0.0.1\r\n\r\n", true,
			Head{Query: "channels=a,b&since=now", KeepAlive: true, Authorization: []byte("Bearer t.k.n"),
				Cookie: []byte("a=1; pushup_token=x"), XForwardedFor: []byte("203.0.113.1, 10.0.0.1")}, ""},
		{"empty authorization is present", base + "Authorization:\r\n\r\n", true,
			Head{Query: "channels=a,b&since=now", KeepAlive: true, Authorization: []byte{}}, ""},
		{"two authorizations", base + "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", false, Head{}, ""},
		{"empty then another authorization", base + "Authorization:\r\nAuthorization: Bearer b\r\n\r\n", false, Head{}, ""},
		{"two cookies", base + "Cookie: a=1\r\nCookie: b=2\r\n\r\n", false, Head{}, ""},
		{"two forwarded-for", base + "X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n", false, Head{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := parseFastHead([]byte(tc.head), "/v1/subscribe")
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Equal(t, tc.want, h)
			}
		})
	}
}

// The engine serves its stream path too, and says which path a head is
// for; a head for neither goes to net/http.
func TestEngineTellsStreamHeads(t *testing.T) {
	p := &Engine[int]{cfg: Config{FastPath: "/v1/subscribe", StreamPath: "/v1/events"},
		fast: []byte("GET /v1/subscribe"), fast2: []byte("GET /v1/events")}
	for _, tc := range []struct {
		head       string
		ok, stream bool
		mayBe      string
	}{
		{"GET /v1/subscribe?a HTTP/1.1\r\nHost: x\r\n\r\n", true, false, "GET /v1/su"},
		{"GET /v1/events?a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: c\r\n\r\n", true, true, "GET /v1/ev"},
		{"GET /v1/position?a HTTP/1.1\r\nHost: x\r\n\r\n", false, false, ""},
	} {
		h, ok := p.parseFastHead([]byte(tc.head))
		assert.Equal(t, tc.ok, ok, tc.head)
		assert.Equal(t, tc.stream, ok && h.Stream, tc.head)
		assert.Equal(t, tc.mayBe != "", p.mayBeFast([]byte(tc.head[:10])), tc.head)
	}
	p.cfg.StreamPath = ""
	_, ok := p.parseFastHead([]byte("GET /v1/events?a HTTP/1.1\r\nHost: x\r\n\r\n"))
	assert.False(t, ok, "no stream path: not served here")
	assert.False(t, p.mayBeFast([]byte("GET /v1/ev")))
}

// seen is what net/http's server handed its handler.
type seen struct {
	method, path, query, origin string
	authorization, cookie, xff  string
	close                       bool
}

// netHTTPServer is an http.Server on an in-memory listener that reports
// every request it serves: the reference the fast path is held to.
type netHTTPServer struct {
	ln   *pipeListener
	reqs chan seen
}

func startNetHTTP(t testing.TB) *netHTTPServer {
	ns := &netHTTPServer{ln: newPipeListener(), reqs: make(chan seen, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns.reqs <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Origin"),
			r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("X-Forwarded-For"), r.Close}
	}), MaxHeaderBytes: maxRequestHead}
	done := make(chan struct{})
	go func() { srv.Serve(ns.ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ns
}

// serve sends raw to the server on a fresh connection and returns the
// requests it served, in order, and the statuses it answered.
func (ns *netHTTPServer) serve(t testing.TB, raw []byte) (got []seen, statuses []int) {
	client := ns.ln.dial()
	defer client.Close()
	go func() { client.Write(raw) }()
	br := bufio.NewReader(client)
	for {
		client.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return got, statuses
		}
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusOK {
			got = append(got, <-ns.reqs)
		}
		resp.Body.Close()
		if resp.Close {
			return got, statuses
		}
	}
}

// FuzzParseFastHeadAgainstNetHTTP is a differential test: whatever head
// the fast path accepts, net/http's server accepts too, reads the same way
// (method, path, query, Origin, keep-alive), and ends at the same byte: a
// request sent right behind it is the server's next request. Authorization,
// Cookie and X-Forwarded-For, which tokens and per-client caps read, are
// read the same way too. The seeds run
// in every go test; go test -fuzz explores further.
func FuzzParseFastHeadAgainstNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET /v1/subscribe?channels=a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/subscribe?channels=a HTTP/1.1\r\nHost: x\r\nOrigin: o\r\nConnection: close\r\n\r\n",
		"GET /v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: x:80\r\nX-A: b\r\n c\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: x\r\n\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: a b/c\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nhost: x\r\nConnection: keep-alive, close\r\n\r\n",
		"GET /v1/subscribe?c=%zz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c \r\nCookie: t=1;u=2\r\nX-Forwarded-For: 1.2.3.4,\t5.6.7.8\r\n\r\n",
		"GET /v1/subscribe?c=1 HTTP/1.1\r\nHost: x\r\nAuthorization: \t\r\nAUTHORIZATION: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	ns := startNetHTTP(f)
	const next = "GET /next HTTP/1.1\r\nHost: n\r\n\r\n"
	f.Fuzz(func(t *testing.T, data []byte) {
		end := headEnd(data)
		if end < 0 {
			return
		}
		head := data[:end]
		h, ok := parseFastHead(head, "/v1/subscribe")
		if !ok {
			return
		}
		got, statuses := ns.serve(t, append(bytes.Clone(head), next...))
		if len(got) == 0 {
			t.Fatalf("fast path accepted what net/http's server answers %v: %q", statuses, head)
		}
		want := seen{http.MethodGet, "/v1/subscribe", h.Query, h.Origin,
			string(h.Authorization), string(h.Cookie), string(h.XForwardedFor), !h.KeepAlive}
		if got[0] != want {
			t.Fatalf("read differently:\n net/http %+v\n fast     %+v\n head %q", got[0], want, head)
		}
		if h.KeepAlive && (len(got) != 2 || got[1].path != "/next") {
			t.Fatalf("net/http's server did not find the next request right after the head (%+v, %v): %q", got, statuses, head)
		}
	})
}

// pipeListener is a net.Listener of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial() net.Conn {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
	case <-l.done:
		b.Close()
	}
	return a
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
