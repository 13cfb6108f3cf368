package e2e

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
)

// requireHAProxyEnv, when "1", turns a missing haproxy into a failure.
const requireHAProxyEnv = "PUSHUP_REQUIRE_HAPROXY"

// haproxyBinary finds haproxy: $PUSHUP_HAPROXY if set, else Debian's
// /usr/sbin/haproxy or the PATH. Without one the test skips, or fails
// under PUSHUP_REQUIRE_HAPROXY=1.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/sbin/haproxy"}
	if p, err := exec.LookPath("haproxy"); err == nil {
		candidates = append(candidates, p)
	}
	if p := os.Getenv("PUSHUP_HAPROXY"); p != "" {
		candidates = []string{p}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	msg := fmt.Sprintf("haproxy not found (looked at %v): install Debian's with "+
		"`sudo apt-get install -y haproxy` (.ci/run does), or set PUSHUP_HAPROXY", candidates)
	if os.Getenv(requireHAProxyEnv) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", msg, requireHAProxyEnv)
	}
	t.Skip(msg)
	return ""
}

const productionConfig = "../haproxy/haproxy.cfg"

// renderLocalConfig writes deploy/haproxy/local.cfg.tmpl, filled in with
// cfg, into dir.
func renderLocalConfig(t *testing.T, dir string, cfg haproxycfg.LocalConfig) string {
	t.Helper()
	b, err := haproxycfg.RenderLocal(cfg)
	require.NoError(t, err)
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

// haproxy is an haproxy child process.
type haproxy struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
	err  error // exit status, set before done closes
}

// startHAProxy runs haproxy in the foreground (-db) on a configuration
// file; the test's cleanup stops it.
func startHAProxy(t *testing.T, bin, cfgPath string) *haproxy {
	t.Helper()
	h := &haproxy{done: make(chan struct{}), out: &lockedBuffer{}}
	h.cmd = exec.Command(bin, "-db", "-f", cfgPath)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	// Killed with this process if it dies: no haproxy left behind.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, h.cmd.Start())
	go func() {
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(h.stop)
	return h
}

// stop ends haproxy (SIGTERM: stop at once) and waits for it.
func (h *haproxy) stop() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// serverStatus reads the stats page's CSV: each pushupd server's status
// ("UP", "DOWN", "UP 1/2", ...).
func serverStatus(client *http.Client, statsURL string) (map[string]string, error) {
	resp, err := client.Get(statsURL + "/;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stats: %s", resp.Status)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 1 {
		return nil, fmt.Errorf("stats csv: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if row[col["pxname"]] == "pushupd" && row[col["svname"]] != "BACKEND" {
			out[row[col["svname"]]] = row[col["status"]]
		}
	}
	return out, nil
}

// lockedBuffer is a bytes.Buffer safe for a child's output and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
