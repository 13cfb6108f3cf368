package api

import (
	"net/http"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/pushuphq/pushup/broker"
)

// Plugin is an application served beside the API under a path of its
// own, such as the Q&A demo (web/demo). The core knows nothing of what a
// plug-in does: it mounts its routes, names it in the index at GET /, and
// answers the errors its handlers return as it answers its own.
type Plugin interface {
	// Name is what the index calls it, e.g. "demo".
	Name() string
	// Path is where its page is, e.g. "/demo/"; empty if it has none to
	// list.
	Path() string
	// Mount adds its routes to r, using front for what it shares with
	// the API. It is called once, by New.
	Mount(r chi.Router, front Front)
}

// ClientError is an error a plug-in's handler returns for a request it
// refuses: the client gets Status (400 if zero) and the API's error body,
// {"error": Code, "message": Message}.
type ClientError struct {
	Status  int
	Code    string
	Message string
}

func (e *ClientError) Error() string { return e.Message }

// Front is what the HTTP front lends its plug-ins. Its methods are safe
// for concurrent use.
type Front struct{ s *Server }

// Handle turns h into a handler that answers h's error as the API
// answers its own: a *ClientError with its status and code, a body over
// its limit as 413, broker errors as the API maps them, anything else as
// a logged 500.
func (f Front) Handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return f.s.handle(h)
}

// ReadJSON reads r's body, at most limit bytes, and decodes it strictly
// into v: valid UTF-8, no unknown field, nothing after the value. what
// names v's kind in errors ("a question object"); shape, appended to
// errors about malformed JSON, shows the body expected.
func (f Front) ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, what, shape string) error {
	body, err := readBodyLimit(w, r, limit)
	if err != nil {
		return err
	}
	// The JSON decoder would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return badRequest("invalid_json", "the body is not valid UTF-8")
	}
	return decodeAs(body, v, what, shape)
}

// Publish publishes p and answers 201 with the message, as POST
// /v1/publish answers one publication.
func (f Front) Publish(w http.ResponseWriter, p broker.Publication) error {
	msgs, err := f.s.b.Publish(p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, publishedOf(msgs[0]))
	return nil
}
