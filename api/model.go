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
	// ModelThread holds an OS thread for each waiting request, for the
	// whole wait: the handler goroutine locks itself to its thread, so the
	// process has as many threads as requests waiting at once. The paper's
	// multithreaded long polling (MLP), kept as a baseline to measure the
	// event model against, not for production. Requests go through
	// http.Server; see Config.MaxThreads for its limits.
	ModelThread Model = "thread"
)

// ParseModel parses a -model flag value.
func ParseModel(s string) (Model, error) {
	switch m := Model(s); m {
	case ModelEvent, ModelGoroutine, ModelThread:
		return m, nil
	}
	return "", fmt.Errorf("api: unknown model %q (want %q, %q or %q)", s, ModelEvent, ModelGoroutine, ModelThread)
}
