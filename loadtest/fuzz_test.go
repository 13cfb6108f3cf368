package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
)

// FuzzReadResponse: no input panics the raw response reader or makes it
// return a body over its limit; and when net/http also reads a plain
// Content-Length or chunked response from the same bytes, both agree on
// status and body.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody to the end",
		"HTTP/1.0 410 Gone\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nz\r\n0\r\nT: v\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	} {
		f.Add([]byte(s))
	}
	const maxBody = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		rr := newResponseReader(bytes.NewReader(in), 16, maxBody)
		resp, err := rr.read()
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		if resp.Status < 200 || resp.Status > 999 {
			t.Fatalf("status %d", resp.Status)
		}
		if len(resp.Body) > maxBody {
			t.Fatalf("body of %d bytes over the %d limit", len(resp.Body), maxBody)
		}
		// Differential check on the common case only: net/http is more
		// lenient in some places and stricter in others.
		hr, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), nil)
		if herr != nil || hr.StatusCode < 200 || (hr.ContentLength < 0 && len(hr.TransferEncoding) == 0) {
			return
		}
		body, herr := io.ReadAll(hr.Body)
		if herr != nil {
			return
		}
		if hr.StatusCode != resp.Status {
			t.Fatalf("status %d, net/http says %d", resp.Status, hr.StatusCode)
		}
		if !bytes.Equal(body, resp.Body) {
			t.Fatalf("body %q, net/http says %q", resp.Body, body)
		}
	})
}
