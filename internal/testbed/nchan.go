package testbed

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"text/template"
	"time"
)

// ErrNchan: the Nginx + Nchan server of a comparison could not be found,
// started or stopped cleanly.

// NginxEnv and NchanModuleEnv name the nginx binary and the Nchan dynamic
// module to use instead of Debian's.
const (
	NginxEnv       = "PUSHUP_NGINX"
	NchanModuleEnv = "PUSHUP_NCHAN_MODULE"
)

// Where Debian's nginx-light (or nginx) and libnginx-mod-nchan packages
// install them.
const (
	debianNginx       = "/usr/sbin/nginx"
	debianNchanModule = "/usr/lib/nginx/modules/ngx_nchan_module.so"
)

// FindNchan returns the nginx binary and the Nchan module to load:
// $PUSHUP_NGINX and $PUSHUP_NCHAN_MODULE if set, else Debian's. Without
// them it returns an error wrapping ErrNchan that says how to install
// them.
func FindNchan() (nginx, module string, err error) {
	nginx, module = debianNginx, debianNchanModule
	if p := os.Getenv(NginxEnv); p != "" {
		nginx = p
	}
	if p := os.Getenv(NchanModuleEnv); p != "" {
		module = p
	}
	for _, f := range []string{nginx, module} {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			return "", "", fmt.Errorf("%w: %s not found: install Debian's with `sudo apt-get install -y nginx-light libnginx-mod-nchan`, "+
				"or name them with $%s and $%s", ErrNchan, f, NginxEnv, NchanModuleEnv)
		}
	}
	return nginx, module, nil
}

// NchanConfig configures an Nginx + Nchan child process: subscriber
// locations /sub/<channel> (long polling) and /ev/<channel> (EventSource)
// and a publisher location /pub/<channel>, as Nchan's documentation sets
// them up.
type NchanConfig struct {
	// Nginx and Module are the binary and the Nchan module; empty finds
	// them (FindNchan).
	Nginx, Module string
	// Listen is the address to serve on; empty picks a free loopback port.
	Listen string
	// Workers is nginx's worker_processes: as many as cores, like pushupd's
	// GOMAXPROCS.
	Workers int
	// Connections is worker_connections: the connections each worker may
	// hold. Zero means as many as the open-file limit allows (less
	// FileMargin): with exactly the subscribers plus 256, one worker
	// logged "worker_connections are not enough, reusing connections" at
	// 15,000 and closed idle keep-alive connections. nginx allocates
	// these records when it starts, so they are in the baseline memory.
	Connections int
	// Hold is nchan_subscriber_timeout: how long a long poll waits before
	// Nchan answers 408.
	Hold time.Duration
	// StartTimeout bounds the wait for the publisher location to answer;
	// StopTimeout the wait for exit after SIGTERM.
	StartTimeout, StopTimeout time.Duration
	// Log, if not nil, receives a copy of nginx's error log on stderr.
	Log io.Writer
}

// nchanConfTemplate is the nginx.conf the comparison runs. Logging is off
// but for errors, as pushupd logs no requests either.
var nchanConfTemplate = template.Must(template.New("nginx.conf").Parse(`# Rendered by pushup-loadtest for a side-by-side run.
load_module {{.Module}};
{{if .Root}}user root;
{{end}}worker_processes {{.Workers}};
worker_rlimit_nofile {{.Files}};
pid {{.Dir}}/nginx.pid;
error_log stderr warn;
daemon off;
events { worker_connections {{.Connections}}; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  server {
    listen {{.Listen}} backlog=4096;
    location ~ ^/sub/([A-Za-z0-9_-]+)$ {
      nchan_subscriber longpoll;
      nchan_channel_id $1;
      nchan_subscriber_timeout {{.HoldSeconds}}s;
    }
    location ~ ^/ev/([A-Za-z0-9_-]+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
    }
    location ~ ^/pub/([A-Za-z0-9_-]+)$ {
      nchan_publisher;
      nchan_channel_id $1;
    }
  }
}
`))

// Nchan is an nginx process with the Nchan module that this package
// started. Stop it on every path; it is also killed if this process dies
// (Linux Pdeathsig), and its workers with it.
type Nchan struct {
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// PID is the master process's; the workers are its children.
	PID int
	// Version is nginx's, from nginx -v.
	Version string

	*child
	cfg NchanConfig
	dir string
	log *logTail

	stopOnce sync.Once
	stopErr  error
}

// StartNchan renders the configuration, starts nginx in the foreground
// and waits until its publisher location answers.
func StartNchan(ctx context.Context, cfg NchanConfig) (*Nchan, error) {
	limit, err := cfg.fill()
	if err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	dir, err := os.MkdirTemp("", "pushup-nchan-")
	if err != nil {
		return nil, err
	}
	if err := nchanConfTemplate.Execute(&conf, map[string]any{
		"Module": cfg.Module, "Root": os.Geteuid() == 0, "Workers": cfg.Workers, "Files": limit,
		"Dir": dir, "Connections": cfg.Connections, "Listen": cfg.Listen, "HoldSeconds": int(cfg.Hold.Seconds()),
	}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	path, err := writeConfig(dir, "nginx.conf", conf.Bytes())
	if err != nil {
		return nil, err
	}
	version, _ := exec.CommandContext(ctx, cfg.Nginx, "-v").CombinedOutput()
	n := &Nchan{
		URL: "http://" + cfg.Listen, cfg: cfg, dir: dir,
		log:     newLogTail(tailLines, cfg.Log),
		Version: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(version)), "nginx version:")),
	}
	if n.child, err = startChild(exec.Command(cfg.Nginx, "-p", dir, "-c", path), n.log); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: starting %s: %v", ErrNchan, cfg.Nginx, err)
	}
	n.PID = n.cmd.Process.Pid

	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	if err := n.child.waitServing(ctx, ErrNchan, n.URL, cfg.StartTimeout, n.Log, func() error {
		_, err := n.Subscribers(ctx, client, "pushup-loadtest-ping")
		return err
	}); err != nil {
		_ = n.Stop()
		return nil, err
	}
	return n, nil
}

// fill sets the defaults of what c leaves empty, raises the open-file
// limit and checks that Connections fit in it, which it returns.
func (c *NchanConfig) fill() (limit uint64, err error) {
	if c.Nginx == "" || c.Module == "" {
		if c.Nginx, c.Module, err = FindNchan(); err != nil {
			return 0, err
		}
	}
	c.Workers = max(c.Workers, 1)
	c.Hold = cmp.Or(max(c.Hold, 0), 50*time.Second)
	c.StartTimeout = cmp.Or(max(c.StartTimeout, 0), 10*time.Second)
	c.StopTimeout = cmp.Or(max(c.StopTimeout, 0), 10*time.Second)
	if c.Listen == "" {
		if c.Listen, err = FreeLoopbackAddr(false); err != nil {
			return 0, err
		}
	}
	if limit, err = RaiseFileLimit(); err != nil {
		return 0, err
	}
	if c.Connections <= 0 {
		c.Connections = int(limit) - FileMargin
	}
	// One worker may be handed every connection: nginx accepts in
	// whichever worker wakes first.
	return limit, CheckFileBudget("nginx (one file per connection in a worker)", c.Connections, limit)
}

// Subscribers asks the publisher location how many subscribers wait on
// channel: Nchan's channel info, as JSON. A channel nobody has used yet
// is 404 there, which is zero.
func (n *Nchan) Subscribers(ctx context.Context, client *http.Client, channel string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/pub/"+channel, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return 0, nil
	case http.StatusOK:
	default:
		return 0, fmt.Errorf("%w: channel info: %s: %s", ErrNchan, resp.Status, clip(body))
	}
	var info struct {
		Subscribers *int64 `json:"subscribers"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.Subscribers == nil {
		return 0, fmt.Errorf("%w: channel info %q", ErrNchan, clip(body))
	}
	return *info.Subscribers, nil
}

// Log returns the last lines nginx wrote.
func (n *Nchan) Log() string { return n.log.String() }

// Exited is closed when the master process has exited.
func (n *Nchan) Exited() <-chan struct{} { return n.done }

// Stop sends SIGTERM (nginx's fast shutdown), waits StopTimeout, then
// kills it, and removes its directory. It is safe to call more than once.
func (n *Nchan) Stop() error {
	n.stopOnce.Do(func() {
		defer os.RemoveAll(n.dir)
		n.stopErr = n.child.stop(ErrNchan, n.cfg.StopTimeout, n.Log)
	})
	return n.stopErr
}
