package evhttp

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"

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

// FuzzParseFastHead: whatever the fast path accepts, net/http accepts too
// and reads the same way: the fast path is a strict subset.
func FuzzParseFastHead(f *testing.F) {
	f.Add([]byte("GET /v1/subscribe?channels=a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /v1/subscribe?channels=a HTTP/1.1\r\nHost: x\r\nOrigin: o\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("GET /v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		h, ok := parseFastHead(head, "/v1/subscribe")
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path accepted what net/http rejects (%v): %q", err, head)
		}
		if req.Method != http.MethodGet || req.URL.Path != "/v1/subscribe" || req.URL.RawQuery != h.Query {
			t.Fatalf("read differently: %s %s ? %q vs %q", req.Method, req.URL.Path, req.URL.RawQuery, h.Query)
		}
		if req.Header.Get("Origin") != h.Origin || req.Close == h.KeepAlive || req.ContentLength != 0 {
			t.Fatalf("headers read differently: origin %q/%q close %v keep %v", req.Header.Get("Origin"), h.Origin, req.Close, h.KeepAlive)
		}
	})
}
