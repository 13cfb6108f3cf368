package evhttp

// StreamEnd says why the engine ended a stream, for a Canceler that is
// also a StreamEnder.
type StreamEnd uint8

const (
	// StreamGone: the client hung up or a write failed.
	StreamGone StreamEnd = iota
	// StreamSlow: the client could not keep up (the backlog overflowed,
	// or the socket took nothing for WriteTimeout).
	StreamSlow
	// StreamShutdown: the engine is shutting down.
	StreamShutdown
)

// StreamEnder is a Canceler that wants to know why the engine ended its
// stream: StreamEnded is called instead of Cancel, once.
type StreamEnder interface {
	Canceler
	StreamEnded(why StreamEnd)
}
