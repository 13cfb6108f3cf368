package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// parseSubscribeQuery turns the raw query of GET /v1/subscribe into a
// broker request:
//
//	channels  comma-separated names (the parameter may also repeat)
//	since     a cursor from a previous answer, a Unix time in ms
//	          (absent or 0: every cached message), or "now"
//	until     optional Unix time in ms, inclusive
//	timeout   seconds to wait, decimals allowed; 0 answers at once
//
// Other parameters are ignored, so cache-busting "_=123" works; of since,
// until and timeout the first occurrence counts. It walks the query once
// without building a map: it runs for every poll.
func parseSubscribeQuery(raw string, defaultTimeout, maxTimeout time.Duration) (broker.SubscribeRequest, error) {
	var req broker.SubscribeRequest
	var since, until, timeout string
	var haveSince, haveUntil, haveTimeout bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err1 := unescapeQuery(key)
		value, err2 := unescapeQuery(value)
		if err1 != nil || err2 != nil {
			return req, badRequest("invalid_query", fmt.Sprintf("malformed query parameter %q", pair))
		}
		switch key {
		case "channels":
			if req.Channels == nil {
				req.Channels = strings.Split(value, ",")
			} else {
				req.Channels = append(req.Channels, strings.Split(value, ",")...)
			}
		case "since":
			if !haveSince {
				since, haveSince = value, true
			}
		case "until":
			if !haveUntil {
				until, haveUntil = value, true
			}
		case "timeout":
			if !haveTimeout {
				timeout, haveTimeout = value, true
			}
		}
	}
	if len(req.Channels) == 0 {
		return req, badRequest("no_channels", `"channels" is required, e.g. channels=a,b`)
	}

	switch {
	case since == "" || since == "0":
	case since == "now":
		req.FromNow = true
	case broker.IsCursor(since):
		c, err := broker.ParseCursor(since)
		if err != nil {
			return req, badRequest("invalid_since", fmt.Sprintf("since: %s (pass back the cursor of the previous answer unchanged)", clientText(err)))
		}
		req.Cursor = c
	default:
		ms, err := parseMillis(since)
		if err != nil {
			return req, badRequest("invalid_since", "since must be a cursor, a Unix time in milliseconds, or \"now\": "+err.Error())
		}
		req.Cursor = broker.SinceMillis(ms)
	}

	if until != "" {
		ms, err := parseMillis(until)
		if err != nil || ms == 0 {
			return req, badRequest("invalid_until", "until must be a positive Unix time in milliseconds")
		}
		req.Until = ms
	}

	req.Timeout = defaultTimeout
	if timeout != "" {
		secs, err := strconv.ParseFloat(timeout, 64)
		max := maxTimeout.Seconds()
		if err != nil || math.IsNaN(secs) || secs < 0 || secs > max {
			return req, badRequest("invalid_timeout", fmt.Sprintf("timeout must be a number of seconds from 0 to %g", max))
		}
		req.Timeout = time.Duration(secs * float64(time.Second))
	}
	return req, nil
}

// unescapeQuery decodes a query key or value; most need no decoding and
// cost nothing.
func unescapeQuery(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// parseMillis parses a non-negative Unix time in milliseconds.
func parseMillis(s string) (int64, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || uint64(ms) > channel.MaxMillis {
		return 0, fmt.Errorf("%q is not a Unix time in milliseconds", s)
	}
	return ms, nil
}

// appendResult encodes a subscribe answer. Messages were encoded once when
// published; this only concatenates them.
func appendResult(b []byte, res broker.Result) []byte {
	b = append(b, `{"messages":[`...)
	for i, m := range res.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m.JSON...)
	}
	b = append(b, `],"cursor":"`...)
	b = res.Cursor.AppendText(b)
	b = append(b, `","more":`...)
	b = strconv.AppendBool(b, res.More)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, res.Truncated)
	if res.RetryAfter > 0 {
		// A draining node's hint: wait this long before the next poll.
		b = append(b, `,"retry_after_ms":`...)
		b = strconv.AppendInt(b, max(res.RetryAfter.Milliseconds(), 1), 10)
	}
	return append(b, "}\n"...)
}

// writeResult sends a subscribe answer. A subscription whose every channel
// closed gets 410 with its cursor; at shutdown the answer is an ordinary
// empty one with "Connection: close", so the client reconnects (through the
// load balancer, to another node) and resumes from the cursor.
func (s *Server) writeResult(w http.ResponseWriter, res broker.Result) {
	if res.Reason == broker.ReasonClosed {
		writeJSON(w, http.StatusGone, errorBody{
			Error:   "channel_closed",
			Message: "every channel of this subscription was closed",
			Cursor:  res.Cursor.String(),
		})
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	if res.Reason == broker.ReasonShutdown {
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	// (The event loop builds its answers with answerFor instead.)
	// The deadline bounds a stall, not the answer: each chunk renews it,
	// so a client that keeps reading a large answer is not cut off.
	rc := http.NewResponseController(w)
	body := appendResult(make([]byte, 0, 256), res)
	for len(body) > 0 {
		chunk := body[:min(len(body), writeChunk)]
		body = body[len(chunk):]
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(chunk); err != nil {
			return // the client is gone or stalled; the server closes it
		}
	}
}

// handleSubscribe serves GET /v1/subscribe. In the event model a request
// that has to wait is parked (see eventModel); otherwise it keeps its
// handler goroutine until the broker answers or the client goes, and in
// the thread model an OS thread of its own too (see threadGate).
func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) error {
	req, err := parseSubscribeQuery(r.URL.RawQuery, s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
	if err != nil {
		return err
	}
	if err := s.authorizeSubscribe(r, req.Channels); err != nil {
		return err
	}
	var release func()
	if req.Timeout > 0 { // a poll that cannot wait holds nothing
		if release, err = s.admitWaiter(w, r); err != nil {
			return err
		}
	}
	if release != nil {
		// The slot is held while the subscription waits: given back
		// when it ends (OnEnd), or now if it never waited.
		req.OnEnd = release
		defer func() {
			if !waited(r) {
				release()
			}
		}()
	}
	return s.holder.subscribe(w, r, req)
}

// awaitAnswer waits for the answer of sub, which the broker's deliver
// function sends to answer. ok is false if ctx ended first and sub was
// withdrawn; if sub was answered meanwhile, that answer is returned.
func awaitAnswer(ctx context.Context, sub *broker.Subscription, answer <-chan broker.Result) (res broker.Result, ok bool) {
	select {
	case res = <-answer:
	case <-ctx.Done():
		if sub.Cancel() {
			return res, false
		}
		res = <-answer // answered meanwhile; try to write it anyway
	}
	return res, true
}

// writeChunk is how much of an answer is written per write deadline: small
// enough that a client reading at a few hundred KB/s renews its deadline
// well within any sane write timeout.
const writeChunk = 64 << 10

// canPark reports whether the event model can hold r: plain HTTP/1.1.
// HTTP/2 and TLS connections cannot be hijacked.
func canPark(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil
}

// jsonContentType and noStore are header values every subscribe answer
// shares instead of allocating its own (Header.Set would). Capacity is
// length, so an Add appends to a copy, never to these.
var (
	jsonContentType = []string{"application/json"}[:1:1]
	noStore         = []string{"no-store"}[:1:1]
)

// varyOrigin is the Vary header of subscribe answers (see cors).
var varyOrigin = []string{"Origin"}

// corsHeaders sets the CORS headers of a subscribe answer, as the cors
// middleware does, for answers written outside it.
func corsHeaders(h http.Header, acao string) {
	h["Vary"] = varyOrigin
	if acao != "" {
		h.Set("Access-Control-Allow-Origin", acao)
		h["Access-Control-Expose-Headers"] = exposeRetryAfter
	}
}

// exposeRetryAfter lets scripts on other origins read Retry-After (see
// cors).
var exposeRetryAfter = []string{"Retry-After"}

// answerBytes encodes the answer to a parked request as a whole HTTP
// response. Identical answers from one publication (res.Share) are
// encoded once per header variant and the bytes shared.
func (s *Server) answerBytes(res broker.Result, acao string, keep bool) ([]byte, int) {
	status := http.StatusOK
	if res.Reason == broker.ReasonClosed {
		status = http.StatusGone
	}
	if res.Share == nil {
		return s.answerFor(res, acao, keep), status
	}
	key := acao
	if !keep {
		key += "|close"
	}
	return res.Share.Memo(key, func() []byte { return s.answerFor(res, acao, keep) }), status
}
