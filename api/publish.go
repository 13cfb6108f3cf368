package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/channel"
)

// publishItem is one publication in a POST /v1/publish body.
type publishItem struct {
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// published is the answer for one publication.
type published struct {
	ID       string   `json:"id"`
	Time     int64    `json:"time"`
	Channels []string `json:"channels"`
	// Replayed is set when the publication's Idempotency-Key was known:
	// this is the first publication's answer and nothing new was stored.
	Replayed bool `json:"replayed,omitempty"`
}

func publishedOf(m *channel.Message) published {
	return published{ID: m.ID, Time: m.Time(), Channels: m.Channels}
}

// idempotencyKey reads the Idempotency-Key header: "" when absent, an
// error when malformed or repeated.
func idempotencyKey(r *http.Request) (string, error) {
	vs := r.Header.Values("Idempotency-Key")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", badRequest("invalid_idempotency_key", "send one Idempotency-Key header, not several")
	case !broker.ValidIdempotencyKey(vs[0]) || len(vs[0]) > maxRequestKeyLen:
		return "", badRequest("invalid_idempotency_key", fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters without spaces, e.g. a UUID", maxRequestKeyLen))
	}
	return vs[0], nil
}

// maxRequestKeyLen leaves room in a key for the "#<index>" a batch adds
// to it per publication.
const maxRequestKeyLen = broker.MaxIdempotencyKeyLen - 6

// withKey gives each publication of a request its idempotency key: the
// request's key, and in a batch the key and the publication's index, so a
// retried batch is recognised publication by publication.
func withKey(pubs []broker.Publication, key string, batch bool) {
	if key == "" {
		return
	}
	for i := range pubs {
		pubs[i].IdempotencyKey = key
		if batch {
			pubs[i].IdempotencyKey = key + "#" + strconv.Itoa(i)
		}
	}
}

// replayedHeader says, on a publish answer, that a key was known: a
// convention (Stripe's) that lets generic retry code tell without parsing.
func replayedHeader(w http.ResponseWriter, replayed []bool) {
	if replayed != nil {
		w.Header().Set("Idempotent-Replayed", "true")
	}
}

// parsePublishBody parses a POST /v1/publish body: one publication object
// or an array of them. It checks the JSON shape; channel names and counts
// are the broker's to check. batch reports whether the body was an array.
func parsePublishBody(body []byte) (pubs []broker.Publication, batch bool, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, badRequest("invalid_json", "request body is empty; expected {\"channels\":[...],\"data\":...}")
	}
	var items []publishItem
	batch = trimmed[0] == '['
	if batch {
		if err := decodeStrict(body, &items, publishShape); err != nil {
			return nil, true, err
		}
		if len(items) == 0 {
			return nil, true, badRequest("no_publications", "the publication array is empty")
		}
	} else {
		var one publishItem
		if err := decodeStrict(body, &one, publishShape); err != nil {
			return nil, false, err
		}
		items = []publishItem{one}
	}
	pubs = make([]broker.Publication, len(items))
	for i, it := range items {
		where := ""
		if batch {
			where = fmt.Sprintf("publication %d: ", i)
		}
		if it.Data == nil {
			return nil, batch, badRequest("missing_data", where+`"data" is required (any JSON value, null included)`)
		}
		if it.Channels == nil {
			return nil, batch, badRequest("no_channels", where+`"channels" is required: a non-empty array of channel names`)
		}
		var compact bytes.Buffer
		// Compact so each message is one line on the wire; the decoder
		// already validated the JSON, so this cannot fail.
		_ = json.Compact(&compact, it.Data)
		pubs[i] = broker.Publication{Channels: it.Channels, Data: compact.Bytes()}
	}
	return pubs, batch, nil
}

// publishShape is appended to publish body errors.
const publishShape = ` (expected {"channels":["a"],"data":...} or an array of those)`

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields (a misspelt "channel" must not silently publish nowhere) and
// trailing data. shape, appended to errors, tells the client what was
// expected.
func decodeStrict(body []byte, v any, shape string) error { return decodeAs(body, v, "", shape) }

// decodeAs is decodeStrict where what, if not empty, names v's kind in
// the error for a body of the wrong type ("a question object").
func decodeAs(body []byte, v any, what, shape string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		e := jsonError(err)
		var typ *json.UnmarshalTypeError
		if what != "" && errors.As(err, &typ) && typ.Field == "" {
			e = badRequest("invalid_json", fmt.Sprintf("the body: expected %s, got JSON %s", what, typ.Value))
		}
		if e.code == "invalid_json" {
			e.msg += shape
		}
		return e
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", "unexpected data after the JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a message a person can act on.
func jsonError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("invalid_json", fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return badRequest("invalid_json", fmt.Sprintf("%s: expected %s, got JSON %s", field, expectedType(typ), typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("invalid_json", "malformed JSON: unexpected end of input")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("invalid_json", strings.TrimPrefix(err.Error(), "json: "))
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return toAPIError(err)
	}
	return badRequest("invalid_json", "malformed JSON: "+err.Error())
}

func expectedType(e *json.UnmarshalTypeError) string {
	switch e.Type.String() {
	case "[]string":
		return "an array of strings"
	case "string":
		return "a string"
	case "[]api.publishItem":
		return "an array of publications"
	case "api.publishItem":
		return "a publication object"
	}
	return e.Type.String()
}

// readBody reads a request body under the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyLimit(w, r, s.cfg.MaxBodyBytes)
}

// readBodyLimit reads a request body of at most limit bytes; a larger one
// is an *http.MaxBytesError (413).
func readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, badRequest("bad_body", "reading the request body failed: "+err.Error())
	}
	return b, nil
}

// handlePublish serves POST /v1/publish.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	pubs, batch, err := parsePublishBody(body)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	withKey(pubs, key, batch)
	msgs, replayed, err := s.b.PublishReplayed(pubs...)
	if err != nil {
		return err
	}
	replayedHeader(w, replayed)
	out := make([]published, len(msgs))
	for i, m := range msgs {
		out[i] = publishedOf(m)
		out[i].Replayed = replayed != nil && replayed[i]
	}
	if !batch {
		writeJSON(w, http.StatusCreated, out[0])
		return nil
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// rawBodyData turns a raw message body into JSON data: a body that is JSON
// stays JSON, anything else becomes a JSON string. A body declared as JSON
// must be valid JSON, and text must be valid UTF-8: a JSON encoder would
// otherwise replace bad bytes without telling anyone.
func rawBodyData(body []byte, contentType string) (json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("missing_data", "the message body is empty")
	}
	declaredJSON := false
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		declaredJSON = mt == "application/json" || strings.HasSuffix(mt, "+json")
	}
	if json.Valid(body) {
		var compact bytes.Buffer
		_ = json.Compact(&compact, body)
		return compact.Bytes(), nil
	}
	if declaredJSON {
		var v any
		return nil, jsonError(json.Unmarshal(body, &v))
	}
	if !utf8.Valid(body) {
		return nil, badRequest("invalid_data", "the message body is neither JSON nor UTF-8 text")
	}
	b, err := json.Marshal(string(body))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// handleChannelMessage serves POST /v1/channels/{channel}/messages.
func (s *Server) handleChannelMessage(w http.ResponseWriter, r *http.Request) error {
	name, err := channelParam(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	data, err := rawBodyData(body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	msgs, replayed, err := s.b.PublishReplayed(broker.Publication{Channels: []string{name}, Data: data, IdempotencyKey: key})
	if err != nil {
		return err
	}
	replayedHeader(w, replayed)
	out := publishedOf(msgs[0])
	out.Replayed = replayed != nil
	writeJSON(w, http.StatusCreated, out)
	return nil
}
