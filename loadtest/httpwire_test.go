package loadtest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int
		close  bool
		body   string
		err    error // matched with errors.Is; nil means success
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
			status: 200, body: "{}"},
		{name: "header names are case-insensitive", in: "HTTP/1.1 200 OK\r\ncontent-LENGTH: 3\r\n\r\nabc",
			status: 200, body: "abc"},
		{name: "empty body", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200},
		{name: "bare LF line ends", in: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, body: "x"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0a\r\n0123456789\r\n0\r\n\r\n",
			status: 200, body: "abc0123456789"},
		{name: "chunked with extension and trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, body: "ab"},
		{name: "chunked wins over content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
			status: 200, body: "z"},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			status: 200, close: true, body: "ok"},
		{name: "connection token list", in: "HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n",
			status: 200, close: true},
		{name: "http/1.0 closes by default", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, close: true, body: "x"},
		{name: "http/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x"},
		{name: "body delimited by close", in: "HTTP/1.1 200 OK\r\n\r\nuntil the end", status: 200, close: true, body: "until the end"},
		{name: "interim 100 skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny", status: 200, body: "y"},
		{name: "204 has no body", in: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", status: 204},
		{name: "410 with its body", in: "HTTP/1.1 410 Gone\r\nContent-Length: 26\r\n\r\n{\"error\":\"channel_closed\"}",
			status: 410, body: `{"error":"channel_closed"}`},
		{name: "503 closing", in: "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
			status: 503, close: true},
		{name: "status without reason", in: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", status: 200},

		{name: "clean EOF before a response", in: "", err: io.EOF},
		{name: "EOF in the status line", in: "HTTP/1.1 2", err: io.ErrUnexpectedEOF},
		{name: "EOF in headers", in: "HTTP/1.1 200 OK\r\nContent-Len", err: io.ErrUnexpectedEOF},
		{name: "EOF in body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", err: io.ErrUnexpectedEOF},
		{name: "EOF in chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", err: io.ErrUnexpectedEOF},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH\r\n", err: ErrMalformedResponse},
		{name: "HTTP/2 status line", in: "HTTP/2 200\r\n\r\n", err: ErrMalformedResponse},
		{name: "bad status code", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: ErrMalformedResponse},
		{name: "101 switch", in: "HTTP/1.1 101 Switching Protocols\r\n\r\n", err: ErrMalformedResponse},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", err: ErrMalformedResponse},
		{name: "negative content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: ErrMalformedResponse},
		{name: "conflicting content-lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", err: ErrMalformedResponse},
		{name: "unknown transfer-encoding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", err: ErrMalformedResponse},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: ErrMalformedResponse},
		{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", err: ErrMalformedResponse},
		{name: "body over the limit", in: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", err: ErrMalformedResponse},
		{name: "chunked body over the limit", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n", err: ErrMalformedResponse},
		{name: "headers over the limit", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", err: ErrMalformedResponse},
	}
	// Every input is also read one byte per Read and split at every
	// possible point, so no answer depends on how TCP segments it.
	readers := map[string]func(s string, i int) io.Reader{
		"whole":    func(s string, _ int) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string, _ int) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"split": func(s string, i int) io.Reader {
			return io.MultiReader(strings.NewReader(s[:i]), strings.NewReader(s[i:]))
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for how, mk := range readers {
				splits := []int{0}
				if how == "split" && len(tt.in) < 400 {
					splits = make([]int, len(tt.in)+1)
					for i := range splits {
						splits[i] = i
					}
				}
				for _, i := range splits {
					// A 16-byte buffer makes most lines longer than it.
					rr := newResponseReader(mk(tt.in, i), 16, 1<<16)
					resp, err := rr.read()
					if tt.err != nil {
						require.ErrorIs(t, err, tt.err, "%s at %d", how, i)
						continue
					}
					require.NoError(t, err, "%s at %d", how, i)
					assert.Equal(t, tt.status, resp.Status, how)
					assert.Equal(t, tt.close, resp.Close, how)
					assert.Equal(t, tt.body, string(resp.Body), how)
				}
			}
		})
	}
}

// TestReadResponseKeepAlive reads several responses off one stream, as a
// subscriber does over its connection, reusing its buffers.
func TestReadResponseKeepAlive(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n" +
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy" +
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast"
	rr := newResponseReader(iotest.HalfReader(strings.NewReader(stream)), 32, 1<<10)
	want := []struct {
		status int
		body   string
		close  bool
	}{{200, "first", false}, {200, "second", false}, {503, "busy", false}, {200, "last", true}}
	for _, w := range want {
		resp, err := rr.read()
		require.NoError(t, err)
		assert.Equal(t, w.status, resp.Status)
		assert.Equal(t, w.body, string(resp.Body))
		assert.Equal(t, w.close, resp.Close)
	}
	_, err := rr.read()
	assert.ErrorIs(t, err, io.EOF, "clean end between responses")
}

func TestReadResponseReadError(t *testing.T) {
	boom := errors.New("connection reset")
	rr := newResponseReader(io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"), iotest.ErrReader(boom)), 64, 1<<10)
	_, err := rr.read()
	assert.ErrorIs(t, err, boom)
}

func TestSubscribeRequest(t *testing.T) {
	q := newSubscribeRequest("127.0.0.1:8080", []string{"tag:c++", "news"}, 120)
	got := string(q.append(nil, "cAQ+/=x"))
	assert.Equal(t, "GET /v1/subscribe?channels=tag%3Ac%2B%2B,news&timeout=120&since=cAQ%2B%2F%3Dx HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", got)
	q = newSubscribeRequest("h", []string{"a"}, 0.5)
	assert.Equal(t, "GET /v1/subscribe?channels=a&timeout=0.5&since=now HTTP/1.1\r\nHost: h\r\n\r\n", string(q.append(nil, "now")))
	// Reusing the buffer leaves nothing of the previous request.
	buf := q.append(nil, "a-much-longer-cursor-value")
	assert.True(t, bytes.HasSuffix(q.append(buf[:0], "c"), []byte("since=c HTTP/1.1\r\nHost: h\r\n\r\n")))
}
