package broker

import "errors"

// Sentinel errors. Operations wrap them with detail using %w; match with
// errors.Is. The HTTP layer maps each to one status code.
var (
	// ErrChannelNotFound: the channel does not exist (or was closed) and
	// implicit creation is off.
	ErrChannelNotFound = errors.New("broker: channel not found")
	// ErrInvalidChannel: a channel name is empty, too long or has a
	// character outside the allowed set.
	ErrInvalidChannel = errors.New("broker: invalid channel name")
	// ErrNoChannels: a publish or subscribe named no channel.
	ErrNoChannels = errors.New("broker: no channels given")
	// ErrTooManyChannels: a request named more channels than allowed.
	ErrTooManyChannels = errors.New("broker: too many channels")
	// ErrDuplicateChannel: a request named the same channel twice.
	ErrDuplicateChannel = errors.New("broker: duplicate channel")
	// ErrTooManyPublications: a batch publish holds more publications
	// than allowed.
	ErrTooManyPublications = errors.New("broker: too many publications in one batch")
	// ErrInvalidTTL: a channel TTL is not positive or above the maximum.
	ErrInvalidTTL = errors.New("broker: invalid channel ttl")
	// ErrChannelLimit: creating the channel would exceed the configured
	// number of channels.
	ErrChannelLimit = errors.New("broker: channel limit reached")
	// ErrInvalidCursor: a cursor string is malformed.
	ErrInvalidCursor = errors.New("broker: invalid cursor")
	// ErrInvalidRange: until is before since.
	ErrInvalidRange = errors.New("broker: invalid time range")
	// ErrInvalidIdempotencyKey: an idempotency key is empty, too long or
	// not printable ASCII.
	ErrInvalidIdempotencyKey = errors.New("broker: invalid idempotency key")
	// ErrTooLarge: one publication would take more than the whole cache
	// budget (Config.MaxCacheBytes).
	ErrTooLarge = errors.New("broker: publication larger than the cache budget")
	// ErrShuttingDown: the broker is shutting down and takes no new work.
	ErrShuttingDown = errors.New("broker: shutting down")
)
