package testbed

import "errors"

// Sentinel errors. Functions wrap them with detail using %w; match with
// errors.Is. The load tester returns these as they are (loadtest's
// ErrDaemon and the like are the same values).
var (
	// ErrInvalidConfig: a configuration cannot work (an empty binary, a
	// balance HAProxy's template does not know, ...).
	ErrInvalidConfig = errors.New("testbed: invalid configuration")
	// ErrTooManyConnections: more connections were asked for than the
	// open-file limit of a process allows.
	ErrTooManyConnections = errors.New("testbed: too many connections for the open-file limit")
	// ErrDaemon: a pushupd child process could not be built, started or
	// stopped cleanly.
	ErrDaemon = errors.New("testbed: pushupd")
	// ErrHAProxy: an haproxy child process could not be found, started,
	// or stopped cleanly, or its servers did not come up.
	ErrHAProxy = errors.New("testbed: haproxy")
	// ErrNchan: an Nginx + Nchan child process could not be found,
	// started or stopped cleanly, or answered what Nchan does not.
	ErrNchan = errors.New("testbed: nchan")
	// ErrFloor: a floor server child process could not be started or
	// stopped cleanly.
	ErrFloor = errors.New("testbed: floor server")
	// ErrUnsupportedFlag: the pushupd binary has no such flag, so it
	// cannot be configured as asked.
	ErrUnsupportedFlag = errors.New("testbed: pushupd flag not supported")
)
