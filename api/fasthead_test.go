package api

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
		want  fastHead
		extra string
	}{
		{"plain", base + "\r\n", true, fastHead{query: "channels=a,b&since=now", keepAlive: true}, ""},
		{"origin and close", base + "Origin: https://a.example\r\nConnection: keep-alive, Close\r\n\r\n", true,
			fastHead{query: "channels=a,b&since=now", origin: "https://a.example"}, ""},
		{"no query", "GET /v1/subscribe HTTP/1.1\r\nHost: x\r\n\r\n", true, fastHead{keepAlive: true}, ""},
		{"header case and spaces", "GET /v1/subscribe?c HTTP/1.1\r\nhOsT:   x  \r\nORIGIN:\to\t\r\n\r\n", true,
			fastHead{query: "c", origin: "o", keepAlive: true}, ""},
		{"content length, even 0, is net/http's", base + "Content-Length: 0\r\n\r\n", false, fastHead{}, ""},
		{"no host", "GET /v1/subscribe?x HTTP/1.1\r\n\r\n", false, fastHead{}, ""},
		{"two hosts", base + "Host: y\r\n\r\n", false, fastHead{}, ""},
		{"two origins", base + "Origin: a\r\nOrigin: b\r\n\r\n", false, fastHead{}, ""},
		{"HTTP/1.0", "GET /v1/subscribe?x HTTP/1.0\r\nHost: x\r\n\r\n", false, fastHead{}, ""},
		{"other path", "GET /v1/subscribers HTTP/1.1\r\nHost: x\r\n\r\n", false, fastHead{}, ""},
		{"POST", "POST /v1/subscribe HTTP/1.1\r\nHost: x\r\n\r\n", false, fastHead{}, ""},
		{"body", base + "Content-Length: 5\r\n\r\n", false, fastHead{}, ""},
		{"chunked", base + "Transfer-Encoding: chunked\r\n\r\n", false, fastHead{}, ""},
		{"upgrade", base + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, fastHead{}, ""},
		{"expect", base + "Expect: 100-continue\r\n\r\n", false, fastHead{}, ""},
		{"folded header", base + "X-A: 1\r\n  continued\r\n\r\n", false, fastHead{}, ""},
		{"bad header name", base + "X A: 1\r\n\r\n", false, fastHead{}, ""},
		{"control char in value", base + "X-A: a\x01b\r\n\r\n", false, fastHead{}, ""},
		{"space in target", "GET /v1/subscribe?a b HTTP/1.1\r\nHost: x\r\n\r\n", false, fastHead{}, ""},
		{"fragment", "GET /v1/subscribe?a#b HTTP/1.1\r\nHost: x\r\n\r\n", false, fastHead{}, ""},
		{"bare LF", "GET /v1/subscribe?a HTTP/1.1\nHost: x\n\n", false, fastHead{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := parseFastHead([]byte(tc.head))
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
		h, ok := parseFastHead(head)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path accepted what net/http rejects (%v): %q", err, head)
		}
		if req.Method != http.MethodGet || req.URL.Path != subscribeRoute || req.URL.RawQuery != h.query {
			t.Fatalf("read differently: %s %s ? %q vs %q", req.Method, req.URL.Path, req.URL.RawQuery, h.query)
		}
		if req.Header.Get("Origin") != h.origin || req.Close == h.keepAlive || req.ContentLength != 0 {
			t.Fatalf("headers read differently: origin %q/%q close %v keep %v", req.Header.Get("Origin"), h.origin, req.Close, h.keepAlive)
		}
	})
}
