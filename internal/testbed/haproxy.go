package testbed

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
)

// HAProxyEnv names an environment variable that, if set, is the haproxy
// binary FindHAProxy returns.
const HAProxyEnv = "PUSHUP_HAPROXY"

// debianHAProxy is where Debian's haproxy package installs the binary;
// /usr/sbin is often not on an unprivileged user's PATH.
const debianHAProxy = "/usr/sbin/haproxy"

// FindHAProxy returns the haproxy binary to run: $PUSHUP_HAPROXY if set
// (and nothing else then), else Debian's /usr/sbin/haproxy, else haproxy
// on the PATH. Without one it returns an error wrapping ErrHAProxy that
// says where it looked and how to install one.
func FindHAProxy() (string, error) {
	candidates := []string{debianHAProxy}
	if p, err := exec.LookPath("haproxy"); err == nil {
		candidates = append(candidates, p)
	}
	if p := os.Getenv(HAProxyEnv); p != "" {
		candidates = []string{p}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: not found (looked at %s): install Debian's with `sudo apt-get install -y haproxy`, "+
		"or name a binary with $%s", ErrHAProxy, strings.Join(candidates, ", "), HAProxyEnv)
}

// HAProxyConfig configures an haproxy child process in front of local
// pushupd nodes, running deploy/haproxy/local.cfg.tmpl (the production
// configuration with static servers and fast health checks).
type HAProxyConfig struct {
	// Binary is the haproxy executable; empty finds one (FindHAProxy).
	Binary string
	// Balance is the backend's algorithm, one of haproxycfg.Balances.
	Balance string
	// MaxConn is HAProxy's global maxconn: the client connections it
	// holds at once. Set it above the number of clients (connections
	// beyond it wait unaccepted). HAProxy refuses to start if its
	// open-file limit cannot hold about 2 x MaxConn; StartHAProxy checks
	// that first (HAProxyFiles).
	MaxConn int
	// Listen and Stats are the frontend's and the statistics page's
	// addresses; empty picks free loopback ports.
	Listen string
	Stats  string
	// StartTimeout bounds the wait for the statistics page to answer.
	StartTimeout time.Duration
	// StopTimeout bounds the wait for haproxy to exit on SIGTERM; then
	// it is killed.
	StopTimeout time.Duration
	// Log, if not nil, receives a copy of haproxy's output (server state
	// changes, alerts; the configuration logs no requests).
	Log io.Writer
}

// DefaultHAProxyConfig returns the template's defaults (leastconn, maxconn
// 4,000) on free loopback ports.
func DefaultHAProxyConfig() HAProxyConfig {
	d := haproxycfg.DefaultLocalConfig()
	return HAProxyConfig{Balance: d.Balance, MaxConn: d.MaxConn, StartTimeout: 10 * time.Second, StopTimeout: 5 * time.Second}
}

// HAProxyFiles is the number of open files haproxy needs for maxConn
// client connections: one for each and one for the server-side
// connection each forwards to a node. (HAProxy adds a few for its
// listeners, pollers and health checks, within FileMargin.)
func HAProxyFiles(maxConn int) int { return 2 * maxConn }

// HAProxy is an haproxy process this package started, in the foreground
// (haproxy -db). Stop it with Stop on every path; it is also killed if
// this process dies (Linux Pdeathsig).
type HAProxy struct {
	// URL is the frontend's base URL ("http://127.0.0.1:PORT") and
	// StatsURL the statistics page's.
	URL      string
	StatsURL string
	// PID is its process id.
	PID int
	// Config is the configuration it runs, as rendered.
	Config haproxycfg.LocalConfig

	*child
	cfg    HAProxyConfig
	dir    string // holds the rendered configuration; removed by Stop
	log    *logTail
	client *http.Client // for the statistics page

	stopOnce sync.Once
	stopErr  error
}

// haproxyTailLines is how many lines of haproxy's output are kept for
// error messages: a state change per server and check is a line.
const haproxyTailLines = 200

// StartHAProxy renders the local configuration for servers and cfg,
// checks that haproxy's open-file limit (this process's, which it
// inherits) holds HAProxyFiles(cfg.MaxConn), starts haproxy and waits
// until its statistics page answers. The servers may not be UP yet: see
// WaitUp.
func StartHAProxy(ctx context.Context, cfg HAProxyConfig, servers []haproxycfg.Server) (*HAProxy, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	lc := haproxycfg.LocalConfig{Listen: cfg.Listen, Stats: cfg.Stats, Servers: servers, MaxConn: cfg.MaxConn, Balance: cfg.Balance}
	text, err := haproxycfg.RenderLocal(lc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	if err := CheckFileBudget(fmt.Sprintf("haproxy (maxconn %d, two files per connection: client and server side)", cfg.MaxConn),
		HAProxyFiles(cfg.MaxConn), limit); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pushup-haproxy-")
	if err != nil {
		return nil, err
	}
	path, err := writeConfig(dir, "haproxy.cfg", text)
	if err != nil {
		return nil, err
	}

	h := &HAProxy{
		URL: "http://" + cfg.Listen, StatsURL: "http://" + cfg.Stats, Config: lc,
		cfg: cfg, dir: dir, log: newLogTail(haproxyTailLines, cfg.Log),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second},
	}
	if h.child, err = startChild(exec.Command(cfg.Binary, "-db", "-f", path), h.log); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: starting %s: %v", ErrHAProxy, cfg.Binary, err)
	}
	h.PID = h.cmd.Process.Pid

	if err := h.child.waitServing(ctx, ErrHAProxy, "statistics page "+h.StatsURL, cfg.StartTimeout, h.Log,
		func() error { _, err := h.ServerStatus(ctx); return err }); err != nil {
		_ = h.Stop()
		return nil, err
	}
	return h, nil
}

// fill sets the defaults of what c leaves empty: the timeouts, the
// binary and free loopback ports.
func (c *HAProxyConfig) fill() (err error) {
	def := DefaultHAProxyConfig()
	c.StartTimeout = cmp.Or(max(c.StartTimeout, 0), def.StartTimeout)
	c.StopTimeout = cmp.Or(max(c.StopTimeout, 0), def.StopTimeout)
	if c.Binary == "" {
		if c.Binary, err = FindHAProxy(); err != nil {
			return err
		}
	}
	for _, a := range []*string{&c.Listen, &c.Stats} {
		if *a == "" {
			if *a, err = FreeLoopbackAddr(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// ServerStatus reads the statistics page's CSV: the status HAProxy gives
// each server of the pushupd backend ("UP", "DOWN", "UP 1/2", "MAINT",
// ...), by name.
func (h *HAProxy) ServerStatus(ctx context.Context) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.StatsURL+"/;csv", nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: haproxy statistics: %s", ErrHAProxy, resp.Status)
	}
	return parseStatsCSV(body)
}

// parseStatsCSV extracts the pushupd backend's servers and their status
// from the statistics page's CSV ("# pxname,svname,...,status,...").
func parseStatsCSV(body []byte) (map[string]string, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 1 {
		return nil, fmt.Errorf("%w: haproxy statistics CSV: %v", ErrHAProxy, err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, okPx := col["pxname"]
	sv, okSv := col["svname"]
	st, okSt := col["status"]
	if !okPx || !okSv || !okSt {
		return nil, fmt.Errorf("%w: haproxy statistics CSV has no pxname, svname or status column", ErrHAProxy)
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) <= max(px, sv, st) {
			continue
		}
		if row[px] == "pushupd" && row[sv] != "BACKEND" {
			out[row[sv]] = row[st]
		}
	}
	return out, nil
}

// WaitUp waits until HAProxy reports every server UP (its health checks
// pass: the node is ready), or timeout passes, or haproxy exits.
func (h *HAProxy) WaitUp(ctx context.Context, timeout time.Duration) error {
	by := time.Now().Add(timeout)
	var last map[string]string
	var lastErr error
	for {
		last, lastErr = h.ServerStatus(ctx)
		if lastErr == nil && len(last) == len(h.Config.Servers) {
			up := 0
			for _, s := range last {
				if s == "UP" {
					up++
				}
			}
			if up == len(last) {
				return nil
			}
		}
		select {
		case <-h.done:
			return fmt.Errorf("%w: pid %d exited (%v):\n%s", ErrHAProxy, h.PID, h.err, h.Log())
		default:
		}
		if time.Now().After(by) || !pause(ctx, 20*time.Millisecond) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: servers not all UP within %s: %v (%v):\n%s", ErrHAProxy, timeout, last, lastErr, h.Log())
		}
	}
}

// Log returns the last lines haproxy wrote.
func (h *HAProxy) Log() string { return h.log.String() }

// Exited is closed when the process has exited.
func (h *HAProxy) Exited() <-chan struct{} { return h.done }

// Stop sends SIGTERM (HAProxy's hard stop: it closes every connection at
// once), waits StopTimeout, then kills the process, and removes the
// rendered configuration. It returns an error if haproxy had exited
// before, or had to be killed. It is safe to call more than once; later
// calls return the first result.
func (h *HAProxy) Stop() error {
	h.stopOnce.Do(func() {
		defer os.RemoveAll(h.dir)
		defer h.client.CloseIdleConnections()
		// The exit status on SIGTERM varies by version; exiting is what
		// counts.
		h.stopErr = h.child.stop(ErrHAProxy, h.cfg.StopTimeout, h.Log)
	})
	return h.stopErr
}

// haproxyVersionRE matches the first line of haproxy -v:
// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/".
var haproxyVersionRE = regexp.MustCompile(`(?i)HA-?Proxy version (\S+)`)

// HAProxyVersion runs "binary -v" and returns the version it names, for
// reports.
func HAProxyVersion(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "-v").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s -v: %v: %s", ErrHAProxy, binary, err, clip(out))
	}
	m := haproxyVersionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%w: %s -v names no version: %s", ErrHAProxy, binary, clip(out))
	}
	return string(m[1]), nil
}
