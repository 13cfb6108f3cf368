package api

import (
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// eventWriter is the http.ResponseWriter for requests the event loop
// serves itself and for answers to parked requests: it collects the
// response so it can be written to the socket without blocking, or encoded
// once and written to many sockets.
type eventWriter struct {
	header http.Header
	status int
	body   []byte
}

func newEventWriter() *eventWriter { return &eventWriter{} }

// Header returns the response headers, made on first use: a subscribe
// that parks never needs them.
func (w *eventWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *eventWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *eventWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// keepAlive reports whether the connection may serve another request
// after this response, given what the request allowed.
func (w *eventWriter) keepAlive(requestAllows bool) bool {
	return requestAllows && w.header.Get("Connection") != "close"
}

// bytes encodes the whole HTTP/1.1 response: status line, headers (in a
// stable order), Date, Content-Length, and the body.
func (w *eventWriter) bytes(keepAlive bool) []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	b := make([]byte, 0, 192+len(w.body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	keys := make([]string, 0, len(w.header))
	for k := range w.header {
		if k != "Connection" && k != "Content-Length" && k != "Date" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range w.header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Date: "...)
	b = append(b, httpDate()...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(w.body)), 10)
	b = append(b, "\r\n"...)
	if !keepAlive {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, w.body...)
}

// dateCache holds the Date header value for the current second: formatting
// it per response would cost more than the rest of a fan-out write.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	unix int64
	s    string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.s
	}
	d := &cachedDate{unix: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}
