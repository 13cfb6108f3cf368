package evhttp

import (
	"bytes"
	"strings"
)

// Head is what the fast path reads of a request: enough to serve it
// without net/http.
type Head struct {
	Query     string // the raw query string
	Origin    string // the Origin header, "" if absent
	KeepAlive bool   // the client allows another request after this one
	// Stream: the request is for Config.StreamPath.
	Stream bool
	// LastEventID is the Last-Event-ID header, "" if absent.
	LastEventID string
	// Authorization, Cookie and XForwardedFor are those headers' values,
	// trimmed as net/http trims them; nil when absent. A head with two of
	// any of them goes to http.Server, whose handler reads all of them in
	// its own way. They alias the engine's read buffer: valid until
	// ServeFast returns, so a handler copies what it keeps (nothing is
	// copied for a handler that does not look).
	Authorization, Cookie, XForwardedFor []byte
}

// headEnd returns the length of the request head at the start of data,
// blank line included, by net/http's rule: lines end in LF (a CR before it
// is dropped), and the first empty line ends the head. -1: not all here.
// Using the same rule as the parser of record means the event loop and
// http.Server always agree on where a request ends.
func headEnd(data []byte) int {
	line := 0
	for i, b := range data {
		if b != '\n' {
			continue
		}
		if i == line || (i == line+1 && data[line] == '\r') {
			return i + 1
		}
		line = i + 1
	}
	return -1
}

// mayBeFastHead reports whether an incomplete head could still become one
// parseFastHead accepts, given the request line's start prefix ("GET " and
// the fast path); if not, the connection goes to http.Server now.
func mayBeFastHead(data, prefix []byte) bool {
	n := min(len(data), len(prefix))
	return bytes.Equal(data[:n], prefix[:n])
}

// parseFastHead recognises a plain HTTP/1.1 GET of path in a complete
// request head (as headEnd delimits it). It is strict by construction: it
// accepts only CRLF line endings, header names that are tokens, values
// without control characters, exactly one Host that is a plain host[:port],
// at most one Origin, Last-Event-ID, Authorization, Cookie and
// X-Forwarded-For, and no Content-Length, Transfer-Encoding, Expect or
// Upgrade. Any request
// it is not sure about gets ok=false and goes, unchanged, to http.Server,
// which answers it (or its error) as it would any other.
func parseFastHead(head []byte, path string) (h Head, ok bool) {
	// A bare CR or LF anywhere: leave the line-ending question to net/http.
	for i, b := range head {
		if (b == '\r' && (i+1 == len(head) || head[i+1] != '\n')) || (b == '\n' && (i == 0 || head[i-1] != '\r')) {
			return h, false
		}
	}
	line, rest, found := bytes.Cut(head, []byte("\r\n"))
	// The length check first: "GET HTTP/1.1" has both ends, overlapping.
	if !found || len(line) < len("GET / HTTP/1.1") ||
		!bytes.HasPrefix(line, []byte("GET ")) || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return h, false
	}
	target := line[len("GET ") : len(line)-len(" HTTP/1.1")]
	got, query, _ := bytes.Cut(target, []byte("?"))
	if string(got) != path {
		return h, false
	}
	for _, b := range query {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return h, false
		}
	}
	h.Query = string(query)
	h.KeepAlive = true
	host, origin := false, false
	for {
		line, rest, found = bytes.Cut(rest, []byte("\r\n"))
		if !found {
			return h, false
		}
		if len(line) == 0 {
			break // end of head
		}
		name, value, colon := bytes.Cut(line, []byte(":"))
		if !colon || len(name) == 0 || !isToken(name) {
			return h, false // also rejects obs-fold: a line starting with SP
		}
		value = bytes.Trim(value, " \t")
		for _, b := range value {
			if (b < ' ' && b != '\t') || b == 0x7f {
				return h, false
			}
		}
		switch {
		case asciiEqualFold(name, "host"):
			if host || !plainHost(value) {
				return h, false
			}
			host = true
		case asciiEqualFold(name, "origin"):
			if origin {
				return h, false
			}
			origin = true
			h.Origin = string(value)
		case asciiEqualFold(name, "last-event-id"):
			if h.LastEventID != "" {
				return h, false
			}
			h.LastEventID = string(value)
		case asciiEqualFold(name, "authorization"):
			if !setOnce(&h.Authorization, value) {
				return h, false
			}
		case asciiEqualFold(name, "cookie"):
			if !setOnce(&h.Cookie, value) {
				return h, false
			}
		case asciiEqualFold(name, "x-forwarded-for"):
			if !setOnce(&h.XForwardedFor, value) {
				return h, false
			}
		case asciiEqualFold(name, "connection"):
			// Browsers send this on every poll: read it in place.
			for v := value; len(v) > 0; {
				var tok []byte
				tok, v, _ = bytes.Cut(v, []byte(","))
				tok = bytes.TrimSpace(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					h.KeepAlive = false
				case asciiEqualFold(tok, "upgrade"):
					return h, false
				}
			}
		case asciiEqualFold(name, "content-length"), asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"),
			asciiEqualFold(name, "expect"):
			return h, false
		}
	}
	return h, host
}

// setOnce sets *dst to value (never nil, even when empty) unless it was
// set already: a header seen twice.
func setOnce(dst *[]byte, value []byte) bool {
	if *dst != nil {
		return false
	}
	*dst = value[:len(value):len(value)] // an append by the handler copies
	if *dst == nil {
		*dst = []byte{}
	}
	return true
}

// plainHost reports whether a Host value is a plain name or IPv4 address
// with an optional port: letters, digits, '-', '.', '_' and one ':' before
// digits. Anything else (IPv6 literals included) is for net/http to judge.
func plainHost(v []byte) bool {
	name, port, hasPort := bytes.Cut(v, []byte(":"))
	if len(name) == 0 || (hasPort && len(port) == 0) {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isToken reports whether b is an HTTP token (RFC 9110 tchar).
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// asciiEqualFold compares a header name with a lower-case ASCII name.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maxRequestHead is the most header bytes the engine waits for, as
// http.Server's default MaxHeaderBytes; a longer head is handed to
// http.Server, which answers 431.
const maxRequestHead = 64 << 10
