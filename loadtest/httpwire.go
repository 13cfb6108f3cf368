package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Limits of the raw HTTP/1.1 reader. A subscribe answer holds at most
// -max-response-messages messages, so the body limit is a guard against a
// broken server, not a cap on anything the test needs.
const (
	// maxHeaderBytes bounds the status line plus headers of one response,
	// like net/http's client (10 MiB there; PushUp's headers are ~200 B).
	maxHeaderBytes = 64 << 10
	// DefaultMaxBodyBytes bounds one response body.
	DefaultMaxBodyBytes = 64 << 20
)

// response is one HTTP/1.x response read off a connection. Body aliases
// the reader's buffer and is valid until the next read.
type response struct {
	Status int
	// Close is true when the server will close the connection after this
	// response: "Connection: close", an HTTP/1.0 answer without
	// keep-alive, or a body delimited by the end of the connection.
	Close bool
	Body  []byte
}

// responseReader reads HTTP/1.x responses from one connection. It is
// owned by one goroutine.
type responseReader struct {
	br      *bufio.Reader
	maxBody int
	line    []byte // scratch for lines longer than br's buffer
	body    []byte // reused across responses
}

func newResponseReader(r io.Reader, bufSize, maxBody int) *responseReader {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	return &responseReader{br: bufio.NewReaderSize(r, bufSize), maxBody: maxBody}
}

// reset points the reader at a new connection, keeping its buffers.
func (r *responseReader) reset(rd io.Reader) { r.br.Reset(rd) }

// malformed wraps ErrMalformedResponse with detail.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedResponse, fmt.Sprintf(format, args...))
}

// read reads one response. It returns io.EOF if the connection ended
// cleanly before the first byte (the server closed an idle keep-alive
// connection) and io.ErrUnexpectedEOF if it ended inside a response.
// Interim 1xx responses are skipped.
func (r *responseReader) read() (response, error) {
	for {
		resp, err := r.readOne()
		if err != nil || resp.Status >= 200 {
			return resp, err
		}
	}
}

func (r *responseReader) readOne() (response, error) {
	var resp response
	budget := maxHeaderBytes
	line, err := r.readLine(&budget)
	if err != nil {
		return resp, err // io.EOF here means a clean close between responses
	}
	proto, rest, _ := strings.Cut(string(line), " ")
	code, _, _ := strings.Cut(rest, " ")
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
		minor = 0
	default:
		return resp, malformed("status line %q", truncate(line))
	}
	if len(code) != 3 {
		return resp, malformed("status line %q", truncate(line))
	}
	resp.Status, err = strconv.Atoi(code)
	if err != nil || resp.Status < 100 {
		return resp, malformed("status code %q", code)
	}
	if resp.Status == 101 {
		return resp, malformed("unexpected protocol switch (101)")
	}

	contentLength := int64(-1)
	chunked, keepAlive := false, false
	for {
		line, err := r.readLine(&budget)
		if err != nil {
			return resp, eofInside(err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			return resp, malformed("header line %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (contentLength >= 0 && n != contentLength) {
				return resp, malformed("Content-Length %q", truncate(value))
			}
			contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			if !asciiEqualFold(value, "chunked") {
				return resp, malformed("Transfer-Encoding %q not supported", truncate(value))
			}
			chunked = true
		case asciiEqualFold(name, "connection"):
			for tok := range strings.SplitSeq(string(value), ",") {
				switch tok = strings.TrimSpace(tok); {
				case strings.EqualFold(tok, "close"):
					resp.Close = true
				case strings.EqualFold(tok, "keep-alive"):
					keepAlive = true
				}
			}
		}
	}
	if minor == 0 && !keepAlive {
		resp.Close = true
	}
	if resp.Status < 200 || resp.Status == 204 || resp.Status == 304 {
		return resp, nil // no body, whatever the headers say
	}

	r.body = r.body[:0]
	switch {
	case chunked: // takes precedence over Content-Length (RFC 9112 6.3)
		err = r.readChunked()
	case contentLength >= 0:
		if contentLength > int64(r.maxBody) {
			return resp, malformed("body of %d bytes exceeds the %d-byte limit", contentLength, r.maxBody)
		}
		err = r.readN(int(contentLength))
	default: // delimited by the end of the connection
		resp.Close = true
		err = r.readToEOF()
	}
	resp.Body = r.body
	return resp, err
}

// readLine returns one line without its CRLF (a bare LF is accepted),
// charging its length to budget. The result is valid until the next read.
func (r *responseReader) readLine(budget *int) ([]byte, error) {
	r.line = r.line[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return nil, malformed("headers longer than %d bytes", maxHeaderBytes)
		}
		switch {
		case err == nil:
			if len(r.line) > 0 {
				frag = append(r.line, frag...)
				r.line = frag
			}
			frag = frag[:len(frag)-1]
			if n := len(frag); n > 0 && frag[n-1] == '\r' {
				frag = frag[:n-1]
			}
			return frag, nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.line = append(r.line, frag...)
		default:
			if len(frag) > 0 || len(r.line) > 0 {
				return nil, eofInside(err)
			}
			return nil, err
		}
	}
}

// readN appends exactly n body bytes.
func (r *responseReader) readN(n int) error {
	start := len(r.body)
	if cap(r.body)-start < n {
		r.body = append(r.body[:cap(r.body)], make([]byte, start+n-cap(r.body))...)
	}
	r.body = r.body[:start+n]
	_, err := io.ReadFull(r.br, r.body[start:])
	return eofInside(err)
}

// readChunked appends a chunked body and skips its trailers.
func (r *responseReader) readChunked() error {
	budget := maxHeaderBytes // for chunk-size lines and trailers
	for {
		line, err := r.readLine(&budget)
		if err != nil {
			return eofInside(err)
		}
		size, _, _ := bytes.Cut(line, []byte{';'}) // chunk extensions are ignored
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 63)
		if err != nil {
			return malformed("chunk size %q", truncate(line))
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := r.readLine(&budget)
				if err != nil {
					return eofInside(err)
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if n > uint64(r.maxBody-len(r.body)) {
			return malformed("chunked body exceeds the %d-byte limit", r.maxBody)
		}
		if err := r.readN(int(n)); err != nil {
			return err
		}
		crlf, err := r.readLine(&budget)
		if err != nil {
			return eofInside(err)
		}
		if len(crlf) != 0 {
			return malformed("chunk not followed by CRLF")
		}
	}
}

// readToEOF appends everything up to the end of the connection.
func (r *responseReader) readToEOF() error {
	for {
		if len(r.body) == cap(r.body) {
			r.body = append(r.body, 0)[:len(r.body)]
		}
		n, err := r.br.Read(r.body[len(r.body):cap(r.body)])
		r.body = r.body[:len(r.body)+n]
		if len(r.body) > r.maxBody {
			return malformed("body exceeds the %d-byte limit", r.maxBody)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// eofInside turns a clean EOF into io.ErrUnexpectedEOF: the connection
// ended inside a response.
func eofInside(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// truncate keeps error messages short when a server sends garbage.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// subscribeRequest builds GET /v1/subscribe requests for one subscriber:
// everything but the cursor is fixed, so it is formatted once.
type subscribeRequest struct {
	prefix []byte // "GET /v1/subscribe?channels=..&timeout=..&since="
	suffix []byte // " HTTP/1.1\r\nHost: ..\r\n\r\n"
}

func newSubscribeRequest(host string, channels []string, timeoutSeconds float64) subscribeRequest {
	esc := make([]string, len(channels))
	for i, c := range channels {
		// '+' is legal in channel names but means space in a query.
		esc[i] = url.QueryEscape(c)
	}
	prefix := "GET /v1/subscribe?channels=" + strings.Join(esc, ",") +
		"&timeout=" + strconv.FormatFloat(timeoutSeconds, 'f', -1, 64) + "&since="
	return subscribeRequest{prefix: []byte(prefix), suffix: []byte(" HTTP/1.1\r\nHost: " + host + "\r\n\r\n")}
}

// append appends the request for since (a cursor, or "now").
func (q subscribeRequest) append(b []byte, since string) []byte {
	b = append(b, q.prefix...)
	b = append(b, url.QueryEscape(since)...)
	return append(b, q.suffix...)
}
