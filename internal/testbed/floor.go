package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"time"
)

// FloorServerEnv, when set, makes a binary that links the load tester a
// floor server listening on its value (host:port) instead of running its
// main: loadtest's init serves and exits. StartFloor sets it.
const FloorServerEnv = "PUSHUP_FLOOR_SERVER"

// FloorConfig configures a floor server child process (see loadtest's
// floorserver_linux.go: the least a long-polling server can make the
// kernel do per delivery).
type FloorConfig struct {
	// Binary is an executable that links the load tester; empty means
	// this one (os.Executable), as pushup-loadtest and loadtest's tests
	// do.
	Binary string
	// StartTimeout bounds the wait for its "floor listening" line;
	// StopTimeout the wait for exit after SIGTERM.
	StartTimeout, StopTimeout time.Duration
}

// Floor is a floor server this package started. Stop it on every path.
type Floor struct {
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// PID is its process id.
	PID int

	*child
	cfg FloorConfig
	log *logTail

	stopOnce sync.Once
	stopErr  error
}

var floorListenRE = regexp.MustCompile(`floor listening addr=(\S+)`)

// StartFloor starts a floor server on a free loopback port and waits
// until it listens.
func StartFloor(cfg FloorConfig) (*Floor, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFloor, err)
		}
		cfg.Binary = exe
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	f := &Floor{cfg: cfg, log: newLogTail(tailLines, nil)}
	cmd := exec.Command(cfg.Binary)
	cmd.Env = append(os.Environ(), FloorServerEnv+"=127.0.0.1:0")
	c, err := startChild(cmd, f.log)
	if err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", ErrFloor, cfg.Binary, err)
	}
	f.child, f.PID = c, cmd.Process.Pid
	if err := c.waitServing(context.Background(), ErrFloor, "the floor server", cfg.StartTimeout, f.Log, func() error {
		m := floorListenRE.FindStringSubmatch(f.log.String())
		if m == nil {
			return ErrFloor
		}
		f.URL = "http://" + m[1]
		return nil
	}); err != nil {
		c.kill()
		return nil, err
	}
	return f, nil
}

// Log returns the last lines the server logged.
func (f *Floor) Log() string { return f.log.String() }

// Exited is closed when the process has exited.
func (f *Floor) Exited() <-chan struct{} { return f.done }

// Stop sends SIGTERM, waits StopTimeout, then kills the process. It is
// safe to call more than once; later calls return the first result.
func (f *Floor) Stop() error {
	f.stopOnce.Do(func() { f.stopErr = f.child.stop(ErrFloor, f.cfg.StopTimeout, f.Log) })
	return f.stopErr
}

// SetDeathSignal makes the kernel kill cmd's process if this one dies
// (Linux; elsewhere it does nothing), for children started outside this
// package, such as the load tester's perf.
func SetDeathSignal(cmd *exec.Cmd) { setDeathSignal(cmd) }
