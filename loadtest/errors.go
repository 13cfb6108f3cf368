package loadtest

import (
	"errors"

	"github.com/pushuphq/pushup/internal/testbed"
)

// Sentinel errors. Functions wrap them with detail using %w; match with
// errors.Is.
var (
	// ErrInvalidConfig: a configuration cannot work (a count below one, a
	// payload too small for its header, an unknown mode, ...).
	ErrInvalidConfig = errors.New("loadtest: invalid configuration")
	// ErrMalformedResponse: the server sent bytes that are not an HTTP/1.x
	// response, or a subscribe answer that is not the documented JSON.
	ErrMalformedResponse = errors.New("loadtest: malformed response")
	// ErrUnexpectedStatus: the server answered with a status the request
	// should not get (anything but 200 for subscribe, 201 for publish).
	ErrUnexpectedStatus = errors.New("loadtest: unexpected HTTP status")
	// ErrNotParked: the subscribers did not all connect and park on the
	// server within the time allowed.
	ErrNotParked = errors.New("loadtest: subscribers did not all park")
)

// The test bed's sentinels, which runs return as they are: the same
// values as testbed's, so errors.Is matches either name.
var (
	// ErrTooManyConnections: more connections were asked for than the
	// open-file limit of this process (or of a server) allows.
	ErrTooManyConnections = testbed.ErrTooManyConnections
	// ErrDaemon: a pushupd child process could not be built, started or
	// stopped cleanly.
	ErrDaemon = testbed.ErrDaemon
	// ErrHAProxy: an haproxy child process could not be found, started,
	// or stopped cleanly, or its servers did not come up.
	ErrHAProxy = testbed.ErrHAProxy
	// ErrUnsupportedFlag: the pushupd binary has no such flag, so the run
	// cannot configure the server as asked.
	ErrUnsupportedFlag = testbed.ErrUnsupportedFlag
)
