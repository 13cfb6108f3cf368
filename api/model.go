package api

import "fmt"

// Model is how a waiting subscribe request is held.
type Model string

const (
	// ModelEvent parks a waiting request's connection in an epoll set: no
	// goroutine, no buffers, a few hundred bytes of records. Answers are
	// written by a small worker pool, and the connection's next subscribe
	// request is read and served by the event loop too. The default.
	ModelEvent Model = "event"
	// ModelGoroutine keeps a waiting request's handler goroutine (and the
	// connection's buffers) until the answer: the idiomatic net/http way.
	ModelGoroutine Model = "goroutine"
)

// ParseModel parses a -model flag value.
func ParseModel(s string) (Model, error) {
	switch m := Model(s); m {
	case ModelEvent, ModelGoroutine:
		return m, nil
	}
	return "", fmt.Errorf("api: unknown model %q (want %q or %q)", s, ModelEvent, ModelGoroutine)
}
