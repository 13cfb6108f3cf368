package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DaemonConfig configures a pushupd child process.
type DaemonConfig struct {
	// Binary is the pushupd executable (see BuildPushupd).
	Binary string
	// Args are extra pushupd flags, passed after -listen.
	Args []string
	// Listen is the address pushupd serves on. The default, 127.0.0.1:0,
	// is a free loopback port; the daemon's log line says which.
	Listen string
	// StartTimeout bounds the wait for pushupd's "listening" log line.
	StartTimeout time.Duration
	// StopTimeout bounds the graceful shutdown after SIGTERM; then the
	// process is killed. pushupd answers every waiting subscriber on
	// SIGTERM, so with many of them this needs a few seconds.
	StopTimeout time.Duration
	// Log, if not nil, receives a copy of pushupd's stderr.
	Log io.Writer
}

// DefaultDaemonConfig returns a loopback daemon on a free port.
func DefaultDaemonConfig() DaemonConfig {
	return DaemonConfig{Listen: "127.0.0.1:0", StartTimeout: 20 * time.Second, StopTimeout: 20 * time.Second}
}

// Daemon is a pushupd process this package started. Stop it with Stop
// on every path; it is also killed if this process dies (Linux Pdeathsig).
type Daemon struct {
	// URL is the base URL it serves on ("http://127.0.0.1:PORT").
	URL string
	// PID is its process id.
	PID int
	// Model is the concurrency model its listening line names ("model="),
	// empty if the line names none.
	Model string

	*child // its goroutine is the log reader's, below
	cfg    DaemonConfig
	log    *logTail // last lines of its log, for error messages

	stopOnce sync.Once
	stopErr  error
}

var (
	listenTextRE = regexp.MustCompile(`msg="pushupd listening" addr=(\S+)`)
	listenJSONRE = regexp.MustCompile(`"msg":"pushupd listening".*?"addr":"([^"]+)"`)
	modelRE      = regexp.MustCompile(`\bmodel=(\w+)|"model":"(\w+)"`)
)

// tailLines is how many log lines a Daemon keeps for error messages.
const tailLines = 40

// logTail keeps the last lines a child process logged, for error
// messages, and copies every line to an optional writer. It is safe for
// concurrent use.
type logTail struct {
	max  int
	copy io.Writer // may be nil

	mu    sync.Mutex
	lines []string
	part  []byte // an unfinished line, for Write
}

func newLogTail(lines int, copy io.Writer) *logTail { return &logTail{max: lines, copy: copy} }

// add records one line.
func (t *logTail) add(line string) {
	if t.copy != nil {
		fmt.Fprintln(t.copy, line)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// Write records every whole line of p, keeping a partial last line for
// the next Write: a child's output stream, as exec.Cmd copies it.
func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.part = append(t.part, p...)
	var lines []string
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	t.part = append([]byte(nil), t.part...) // do not pin a large buffer
	t.mu.Unlock()
	for _, l := range lines {
		t.add(l)
	}
	return len(p), nil
}

// String returns the lines kept, the oldest first.
func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// StartDaemon starts pushupd and waits until it listens.
func StartDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Binary == "" {
		return nil, fmt.Errorf("%w: DaemonConfig.Binary is empty", ErrInvalidConfig)
	}
	def := DefaultDaemonConfig()
	if cfg.Listen == "" {
		cfg.Listen = def.Listen
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = def.StartTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = def.StopTimeout
	}
	cmd := exec.Command(cfg.Binary, append([]string{"-listen", cfg.Listen}, cfg.Args...)...)
	setDeathSignal(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", ErrDaemon, cfg.Binary, err)
	}
	d := &Daemon{PID: cmd.Process.Pid, child: &child{cmd: cmd, done: make(chan struct{})}, cfg: cfg, log: newLogTail(tailLines, cfg.Log)}
	listening := make(chan [2]string, 1)
	// This goroutine belongs to the process: it ends when the process
	// closes its stderr, that is, when it exits.
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			d.log.add(line)
			if !found {
				if addr := matchListen(line); addr != "" {
					found = true
					listening <- [2]string{addr, matchModel(line)}
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // after a 1 MiB line, drain to EOF
		d.err = cmd.Wait()
		close(d.done)
	}()

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case l := <-listening:
		d.URL, d.Model = "http://"+l[0], l[1]
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("%w: %s exited before listening (%v):\n%s", ErrDaemon, cfg.Binary, d.err, d.Log())
	case <-timer.C:
		_ = d.Stop()
		return nil, fmt.Errorf("%w: %s did not log \"pushupd listening\" within %s:\n%s", ErrDaemon, cfg.Binary, cfg.StartTimeout, d.Log())
	}
}

func matchListen(line string) string {
	if m := listenTextRE.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	if m := listenJSONRE.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

func matchModel(line string) string {
	m := modelRE.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return m[1] + m[2]
}

// Log returns the last lines the daemon logged.
func (d *Daemon) Log() string { return d.log.String() }

// Exited is closed when the process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.done }

// Stop sends SIGTERM, waits StopTimeout for a graceful exit, then kills
// the process. It returns an error unless pushupd exited 0 in time. It is
// safe to call more than once; later calls return the first result.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			d.stopErr = d.exitError("had already exited")
			return
		default:
		}
		if !terminate(d.cmd.Process, d.done, d.cfg.StopTimeout) {
			d.stopErr = fmt.Errorf("%w: pid %d did not stop within %s of SIGTERM; killed", ErrDaemon, d.PID, d.cfg.StopTimeout)
			return
		}
		d.stopErr = d.exitError("on SIGTERM")
	})
	return d.stopErr
}

// child is a process this package started (pushupd, haproxy, nginx), and the
// goroutine that waits for it.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, set before done closes
}

// startChild starts cmd with its output going to out, to be killed if
// this process dies (Linux Pdeathsig).
func startChild(cmd *exec.Cmd, out io.Writer) (*child, error) {
	cmd.Stdout, cmd.Stderr = out, out
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	// This goroutine belongs to the process: it ends when it exits.
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// kill ends the child with SIGKILL, if it has not exited, and waits for
// it.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop ends the child: SIGTERM, then SIGKILL after timeout. It returns an
// error wrapping sentinel, with log's lines, if the child had exited
// before, or had to be killed.
func (c *child) stop(sentinel error, timeout time.Duration, log func() string) error {
	pid := c.cmd.Process.Pid
	select {
	case <-c.done:
		return fmt.Errorf("%w: pid %d had already exited (%v):\n%s", sentinel, pid, c.err, log())
	default:
	}
	if !terminate(c.cmd.Process, c.done, timeout) {
		return fmt.Errorf("%w: pid %d did not stop within %s of SIGTERM; killed", sentinel, pid, timeout)
	}
	return nil
}

// waitServing polls probe every 20 ms until it succeeds, and returns
// nil; or, wrapping sentinel with log's lines, an error saying that the
// child exited first or that what did not answer within timeout; or
// ctx's error.
func (c *child) waitServing(ctx context.Context, sentinel error, what string, timeout time.Duration,
	log func() string, probe func() error) error {
	by := time.Now().Add(timeout)
	for {
		if probe() == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("%w: %s exited before serving (%v):\n%s", sentinel, c.cmd.Path, c.err, log())
		default:
		}
		if time.Now().After(by) {
			return fmt.Errorf("%w: %s did not answer within %s:\n%s", sentinel, what, timeout, log())
		}
		if !pause(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// terminate sends p SIGTERM and waits up to timeout for done (closed once
// the process has been waited for); then it kills p and waits. It reports
// whether p exited on SIGTERM.
func terminate(p *os.Process, done <-chan struct{}, timeout time.Duration) bool {
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		_ = p.Kill()
		<-done
		return false
	}
}

// Kill ends the process with SIGKILL, as a crash would: no graceful
// shutdown, no goodbye to its cluster. It returns once the process has
// exited. A later Stop reports that it had already exited.
func (d *Daemon) Kill() { d.child.kill() }

func (d *Daemon) exitError(when string) error {
	if d.err == nil {
		return nil
	}
	return fmt.Errorf("%w: pid %d exited %s with %v:\n%s", ErrDaemon, d.PID, when, d.err, d.Log())
}

// BuildPushupd builds cmd/pushupd into dir and returns the binary's
// path. It runs the go command in the current directory, which must be
// inside the PushUp module.
func BuildPushupd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pushupd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pushuphq/pushup/cmd/pushupd")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: go build ./cmd/pushupd (run from inside the PushUp module, or pass a binary): %v\n%s",
			ErrDaemon, err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// SharedBuild builds cmd/pushupd once, on first use, for everyone who
// asks (the tests of one test binary), and removes it on Remove. Its
// methods are safe for concurrent use.
type SharedBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Binary returns the binary, building it on the first call; a failed
// build's error is returned to every caller.
func (b *SharedBuild) Binary(ctx context.Context) (string, error) {
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "pushupd-build-")
		if b.err == nil {
			b.bin, b.err = BuildPushupd(ctx, b.dir)
		}
	})
	return b.bin, b.err
}

// For returns the binary, building it on the first call, or fails t
// with the build's error.
func (b *SharedBuild) For(t TB) string {
	t.Helper()
	bin, err := b.Binary(context.Background())
	if err != nil {
		t.Fatalf("%v", err)
	}
	return bin
}

// Remove deletes the build, if there was one. Call it once every caller
// is done.
func (b *SharedBuild) Remove() {
	b.once.Do(func() {}) // a Binary call after Remove builds nothing
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// PreparePushupd returns the pushupd binary to run and its flags (see
// PushupdFlags): binary itself if not empty, else one built from
// ./cmd/pushupd (see BuildPushupd) into a temporary directory that cleanup
// removes. cleanup is never nil.
func PreparePushupd(ctx context.Context, binary string) (bin string, flags map[string]string, cleanup func(), err error) {
	cleanup = func() {}
	if binary == "" {
		dir, err := os.MkdirTemp("", "pushup-loadtest-")
		if err != nil {
			return "", nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if binary, err = BuildPushupd(ctx, dir); err != nil {
			cleanup()
			return "", nil, func() {}, err
		}
	}
	if flags, err = PushupdFlags(ctx, binary); err != nil {
		cleanup()
		return "", nil, func() {}, err
	}
	return binary, flags, cleanup, nil
}

// RequireFlags fails with ErrUnsupportedFlag, naming why, if binary lacks
// one of the flags a run needs.
func RequireFlags(binary string, flags map[string]string, why string, names ...string) error {
	for _, n := range names {
		if _, ok := flags[n]; !ok {
			return fmt.Errorf("%w: %s has no -%s flag, which %s needs; build pushupd from this tree", ErrUnsupportedFlag, binary, n, why)
		}
	}
	return nil
}

// usageLineRE matches a flag in pushupd's -h output:
// "  -max-timeout  (default 2m0s)  [$PUSHUP_MAX_TIMEOUT]".
var usageLineRE = regexp.MustCompile(`^\s+-([A-Za-z0-9][A-Za-z0-9_-]*)(?:\s+\(default (.*?)\))?(?:\s|$)`)

// PushupdFlags runs "binary -h" and returns its flags with their
// defaults, so a run can tell whether a flag (such as -model) exists in
// this build before passing it.
func PushupdFlags(ctx context.Context, binary string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "-h").CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // -h may exit non-zero; not running at all is the error
		return nil, fmt.Errorf("%w: %s -h: %v", ErrDaemon, binary, err)
	}
	flags := parseUsage(string(out))
	if len(flags) == 0 {
		return nil, fmt.Errorf("%w: %s -h listed no flags:\n%s", ErrDaemon, binary, clip(out))
	}
	return flags, nil
}

// parseUsage extracts flag names and defaults from -h output.
func parseUsage(out string) map[string]string {
	flags := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if m := usageLineRE.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2]
		}
	}
	return flags
}
