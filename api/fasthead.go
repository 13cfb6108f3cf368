package api

import (
	"bytes"
	"strings"
)

// fastHead is what the event loop needs from a subscribe request to serve
// it without http.ReadRequest and the router.
type fastHead struct {
	query     string // the raw query string
	origin    string
	keepAlive bool
}

// subscribePrefix is the request line start the fast path accepts.
const subscribePrefix = "GET " + subscribeRoute

// parseFastHead recognises a plain HTTP/1.1 GET of subscribe in a complete
// request head (ending in CRLFCRLF). It is strict: any request it is not
// sure about (another method or path, a body, an upgrade, an Expect, a
// folded or malformed header, no Host) gets ok=false and goes the general
// way, through net/http's parser, which answers malformed requests properly.
func parseFastHead(head []byte) (h fastHead, ok bool) {
	line, rest, found := bytes.Cut(head, []byte("\r\n"))
	if !found || !bytes.HasPrefix(line, []byte(subscribePrefix)) || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return h, false
	}
	target := line[len("GET ") : len(line)-len(" HTTP/1.1")]
	path, query, _ := bytes.Cut(target, []byte("?"))
	if string(path) != subscribeRoute {
		return h, false
	}
	for _, b := range query {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return h, false
		}
	}
	h.query = string(query)
	h.keepAlive = true
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
			if host {
				return h, false
			}
			host = true
		case asciiEqualFold(name, "origin"):
			if origin {
				return h, false
			}
			origin = true
			h.origin = string(value)
		case asciiEqualFold(name, "connection"):
			for _, tok := range strings.Split(string(value), ",") {
				switch strings.ToLower(strings.TrimSpace(tok)) {
				case "close":
					h.keepAlive = false
				case "upgrade":
					return h, false
				}
			}
		case asciiEqualFold(name, "content-length"):
			if string(value) != "0" {
				return h, false
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"),
			asciiEqualFold(name, "expect"):
			return h, false
		}
	}
	return h, host
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
