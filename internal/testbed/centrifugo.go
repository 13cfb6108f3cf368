package testbed

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrCentrifugo: the Centrifugo server of a comparison could not be found,
// started or stopped cleanly.
var ErrCentrifugo = errors.New("testbed: centrifugo")

// CentrifugoEnv names the centrifugo binary to use.
const CentrifugoEnv = "PUSHUP_CENTRIFUGO"

// centrifugoInstall says how to get Centrifugo here: the module proxy
// serves it, and it builds in a couple of minutes.
const centrifugoInstall = "go install github.com/centrifugal/centrifugo/v6@v6.9.1"

// FindCentrifugo returns the centrifugo binary: $PUSHUP_CENTRIFUGO, else
// centrifugo on the PATH or in $(go env GOPATH)/bin.
func FindCentrifugo() (string, error) {
	if p := os.Getenv(CentrifugoEnv); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "centrifugo")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no centrifugo binary: `%s`, or name it with $%s", ErrCentrifugo, centrifugoInstall, CentrifugoEnv)
}

// CentrifugoConfig configures a Centrifugo child process with its
// unidirectional SSE endpoint on, anonymous connections that carry a
// token naming their channels (signed here), and its HTTP API for
// publishing.
type CentrifugoConfig struct {
	// Binary is centrifugo; empty finds it (FindCentrifugo).
	Binary string
	// Listen is the address to serve on; empty picks a free loopback
	// port.
	Listen string
	// StartTimeout bounds the wait for the API to answer; StopTimeout the
	// wait for exit after SIGTERM.
	StartTimeout, StopTimeout time.Duration
	// Log, if not nil, receives a copy of centrifugo's log.
	Log io.Writer
}

// Centrifugo is a centrifugo process this package started. Stop it on
// every path; it is also killed if this process dies (Linux Pdeathsig).
type Centrifugo struct {
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// PID is its process id.
	PID int
	// Version is what centrifugo version printed.
	Version string

	*child
	cfg    CentrifugoConfig
	dir    string
	log    *logTail
	secret []byte
	apiKey string

	stopOnce sync.Once
	stopErr  error
}

// StartCentrifugo writes a configuration, starts centrifugo and waits
// until its API answers.
func StartCentrifugo(ctx context.Context, cfg CentrifugoConfig) (*Centrifugo, error) {
	if cfg.Binary == "" {
		bin, err := FindCentrifugo()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Listen == "" {
		free, err := FreeLoopbackAddr(false)
		if err != nil {
			return nil, err
		}
		cfg.Listen = free
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %v", ErrInvalidConfig, cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("%w: listen %q: %v", ErrInvalidConfig, cfg.Listen, err)
	}
	if _, err := RaiseFileLimit(); err != nil {
		return nil, err
	}
	c := &Centrifugo{URL: "http://" + cfg.Listen, cfg: cfg, log: newLogTail(tailLines, cfg.Log),
		secret: randomKey(), apiKey: hex.EncodeToString(randomKey())}
	conf, err := json.MarshalIndent(map[string]any{
		"http_server": map[string]any{"address": host, "port": port},
		"log":         map[string]any{"level": "warn"},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": string(c.secret)},
			"allowed_origins": []string{"*"},
		},
		"http_api":   map[string]any{"key": c.apiKey},
		"uni_sse":    map[string]any{"enabled": true},
		"prometheus": map[string]any{"enabled": true},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	if c.dir, err = os.MkdirTemp("", "pushup-centrifugo-"); err != nil {
		return nil, err
	}
	path := filepath.Join(c.dir, "config.json")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	version, _ := exec.CommandContext(ctx, cfg.Binary, "version").CombinedOutput()
	c.Version = strings.TrimSpace(string(version))
	cmd := exec.Command(cfg.Binary, "--config", path)
	cmd.Dir = c.dir
	if c.child, err = startChild(cmd, c.log); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("%w: starting %s: %v", ErrCentrifugo, cfg.Binary, err)
	}
	c.PID = c.cmd.Process.Pid
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	if err := c.child.waitServing(ctx, ErrCentrifugo, c.URL, cfg.StartTimeout, c.Log, func() error {
		_, err := c.Clients(ctx, client)
		return err
	}); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func randomKey() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// Token returns a connection token (an HS256 JWT) for an anonymous user
// subscribed to channels by the server, as a unidirectional client must
// be: it cannot subscribe itself.
func (c *Centrifugo) Token(channels ...string) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": "", "channels": channels, "exp": time.Now().Add(24 * time.Hour).Unix()})
	signing := header + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, c.secret)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// Clients reads centrifugo_node_num_clients from /metrics: the
// connections this node holds, as Centrifugo counts them every 10 s.
func (c *Centrifugo) Clients(ctx context.Context, client *http.Client) (int64, error) {
	const name = "centrifugo_node_num_clients"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("%w: %s: %v", ErrCentrifugo, line, err)
			}
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("%w: %s/metrics (%s) has no %s", ErrCentrifugo, c.URL, resp.Status, name)
}

// Log returns the last lines centrifugo wrote.
func (c *Centrifugo) Log() string { return c.log.String() }

// Exited is closed when the process has exited.
func (c *Centrifugo) Exited() <-chan struct{} { return c.done }

// Stop sends SIGTERM, waits StopTimeout, then kills it, and removes its
// directory. It is safe to call more than once.
func (c *Centrifugo) Stop() error {
	c.stopOnce.Do(func() {
		defer os.RemoveAll(c.dir)
		c.stopErr = c.child.stop(ErrCentrifugo, c.cfg.StopTimeout, c.Log)
	})
	return c.stopErr
}

// Publish publishes payload (JSON) to channel through Centrifugo's
// server API.
func (c *Centrifugo) Publish(ctx context.Context, client *http.Client, channel string, payload []byte) error {
	body, err := json.Marshal(map[string]any{"channel": channel, "data": json.RawMessage(payload)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/api/publish", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", c.apiKey)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || strings.Contains(string(answer), `"error"`) {
		return fmt.Errorf("%w: publish: %s: %s", ErrCentrifugo, resp.Status, clip(answer))
	}
	return nil
}
