package api

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/pushuphq/pushup/broker"
)

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

// holder is how a model holds a waiting subscribe request: the one thing
// the three models differ in. Server calls it and nothing else of them.
type holder interface {
	model() Model
	// listen returns the listener http.Server is to serve from, given
	// the one Serve was called with.
	listen(ln net.Listener) (net.Listener, error)
	// subscribe serves a parsed subscribe request: it answers now or
	// waits for (or arranges) the broker's answer.
	subscribe(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error
	// shutdown waits for what http.Server does not track (connections
	// taken from it) once the broker has answered every waiter.
	shutdown(ctx context.Context) error
}

// goroutineModel is ModelGoroutine: a waiting request keeps its handler
// goroutine (and its connection's buffers) until the answer.
type goroutineModel struct{ s *Server }

func (m goroutineModel) model() Model { return ModelGoroutine }
func (m goroutineModel) listen(ln net.Listener) (net.Listener, error) {
	return m.s.conns.Listener(ln), nil
}
func (m goroutineModel) shutdown(context.Context) error { return nil }

func (m goroutineModel) subscribe(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error {
	return m.s.subscribeAndWait(w, r, req, func(ctx context.Context, sub *broker.Subscription, answer <-chan broker.Result) (broker.Result, bool, error) {
		res, ok := awaitAnswer(ctx, sub, answer)
		return res, ok, nil
	})
}

// subscribeAndWait subscribes and, if the answer is not ready, waits for
// it with await in the handler's goroutine; then writes it.
func (s *Server) subscribeAndWait(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest,
	await func(context.Context, *broker.Subscription, <-chan broker.Result) (broker.Result, bool, error)) error {
	answer := make(chan broker.Result, 1) // deliver must not block
	res, sub, err := s.b.Subscribe(req, func(r broker.Result) { answer <- r })
	if err != nil {
		return err
	}
	if sub != nil {
		var ok bool
		if res, ok, err = await(r.Context(), sub, answer); err != nil {
			return err
		}
		if !ok {
			return nil // client gone: nothing to write, nothing left behind
		}
	}
	s.writeResult(w, res)
	return nil
}

// threadModel is ModelThread: as ModelGoroutine (whose listen and
// shutdown it keeps), with an OS thread held for each waiting request (see
// threadGate).
type threadModel struct {
	goroutineModel
	gate *threadGate
}

func (m *threadModel) model() Model { return ModelThread }

func (m *threadModel) subscribe(w http.ResponseWriter, r *http.Request, req broker.SubscribeRequest) error {
	return m.s.subscribeAndWait(w, r, req, m.gate.await)
}
