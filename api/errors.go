package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/pushuphq/pushup/broker"
)

// apiError is an error with the status and code the client sees.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg}
}

// errorBody is every error response: {"error":"<code>","message":"<text>"}.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	// Cursor lets a subscriber whose channels closed resume elsewhere.
	Cursor string `json:"cursor,omitempty"`
}

// brokerErrors maps broker sentinels to HTTP. This is the one place that
// decides status codes for broker failures.
var brokerErrors = []struct {
	err    error
	status int
	code   string
}{
	{broker.ErrChannelNotFound, http.StatusNotFound, "channel_not_found"},
	{broker.ErrInvalidChannel, http.StatusBadRequest, "invalid_channel"},
	{broker.ErrNoChannels, http.StatusBadRequest, "no_channels"},
	{broker.ErrTooManyChannels, http.StatusBadRequest, "too_many_channels"},
	{broker.ErrDuplicateChannel, http.StatusBadRequest, "duplicate_channel"},
	{broker.ErrTooManyPublications, http.StatusBadRequest, "too_many_publications"},
	{broker.ErrInvalidTTL, http.StatusBadRequest, "invalid_ttl"},
	{broker.ErrInvalidCursor, http.StatusBadRequest, "invalid_since"},
	{broker.ErrInvalidRange, http.StatusBadRequest, "invalid_range"},
	{broker.ErrInvalidIdempotencyKey, http.StatusBadRequest, "invalid_idempotency_key"},
	{broker.ErrTooLarge, http.StatusRequestEntityTooLarge, "publication_too_large"},
	{broker.ErrChannelLimit, http.StatusServiceUnavailable, "channel_limit"},
	{broker.ErrShuttingDown, http.StatusServiceUnavailable, "shutting_down"},
}

// toAPIError classifies any error a handler meets.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var refused *ClientError
	if errors.As(err, &refused) {
		return &apiError{status: cmp.Or(refused.Status, http.StatusBadRequest), code: refused.Code, msg: refused.Message}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			msg: "request body exceeds the limit of " + strconv.FormatInt(tooBig.Limit, 10) + " bytes"}
	}
	if errors.Is(err, ErrThreadLimit) {
		return &apiError{status: http.StatusServiceUnavailable, code: "thread_limit", msg: strings.TrimPrefix(err.Error(), "api: ")}
	}
	for _, m := range brokerErrors {
		if errors.Is(err, m.err) {
			// The package prefix helps in logs, not in a client's message.
			return &apiError{status: m.status, code: m.code, msg: clientText(err)}
		}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error"}
}

// clientText is err's message without package prefixes: they help in
// logs, not in a client's message.
func clientText(err error) string {
	return strings.ReplaceAll(err.Error(), "broker: ", "")
}

// writeError sends err as a JSON error response. r may be nil for requests
// the event loop serves itself.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.status >= 500 && ae.code == "internal" {
		path := subscribeRoute // the event loop serves only subscribe without a Request
		if r != nil {
			path = r.URL.Path
		}
		s.log.Error("request failed", "path", path, "err", err)
	}
	if ae.status == http.StatusServiceUnavailable {
		// Also tells pushup.js, which honours it, how long to back off.
		w.Header().Set("Retry-After", "1")
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushup"`)
	}
	writeJSON(w, ae.status, errorBody{Error: ae.code, Message: ae.msg})
}

// writeJSON sends v with status. Encoding our own response types cannot
// fail; a write error means the client left and there is no one to tell.
func writeJSON(w http.ResponseWriter, status int, v any) {
	// Not escaping <, > and & as HTML: this is JSON, served as such, and
	// "\u003cpublisher key\u003e" is no help to a person reading it.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"internal","message":"response encoding failed"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
