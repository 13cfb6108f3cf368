// Package haproxy holds PushUp's HAProxy configurations: haproxy.cfg, the
// production one (Docker Compose), and local.cfg.tmpl, the same for local
// processes, which this package embeds and renders. The end-to-end test
// (deploy/e2e) and the load tester's scale-out experiment (loadtest) both
// run HAProxy on RenderLocal's output, so local.cfg.tmpl stays the one
// source of the local configuration.
//
// RenderLocal only fills in the template; it starts nothing. A rendered
// configuration is for Debian's haproxy 2.6 or later, run in the
// foreground (haproxy -db -f FILE).
package haproxy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"text/template"
)

//go:embed local.cfg.tmpl
var localTemplate string

// local is local.cfg.tmpl parsed; a template that does not parse is a
// bug caught by this package's tests.
var local = template.Must(template.New("local.cfg.tmpl").Parse(localTemplate))

// ErrInvalidConfig: a LocalConfig that cannot make a working
// configuration (a missing address, an unknown algorithm, ...).
var ErrInvalidConfig = errors.New("haproxy: invalid configuration")

// Balances are the backend algorithms RenderLocal accepts: leastconn,
// production's choice (haproxy.cfg says why), and roundrobin, the
// paper's.
var Balances = []string{"leastconn", "roundrobin"}

// DefaultMaxConn is the global maxconn of DefaultLocalConfig: plenty for
// tests, and at two file descriptors per connection (client and server
// side) well within a 20,000 open-file limit.
const DefaultMaxConn = 4000

// Server is one pushupd node in the backend: its name in HAProxy (shown
// in the stats page and the X-Pushup-Server header) and its HTTP address.
type Server struct {
	Name string
	Addr string // host:port
}

// LocalConfig fills in local.cfg.tmpl.
type LocalConfig struct {
	// Listen is the frontend's address and Stats the statistics page's,
	// host:port each.
	Listen string
	Stats  string
	// Servers are the backend's nodes, at least one, names unique.
	Servers []Server
	// MaxConn is the global maxconn: how many client connections HAProxy
	// holds at once. Connections beyond it wait in the kernel's accept
	// queue, so set it above the number of clients. HAProxy needs about
	// two file descriptors per connection and fails to start if the
	// open-file limit cannot hold 2 x MaxConn plus a few.
	MaxConn int
	// Balance is the backend's algorithm, one of Balances.
	Balance string
}

// DefaultLocalConfig returns the settings of the end-to-end test, less the
// addresses and servers: maxconn 4000, leastconn.
func DefaultLocalConfig() LocalConfig {
	return LocalConfig{MaxConn: DefaultMaxConn, Balance: "leastconn"}
}

// nameRE is what HAProxy accepts as a server name, more or less: letters,
// digits and "-_.:"; nothing that would break the configuration's syntax.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// Validate reports a configuration that would not render into one
// HAProxy accepts.
func (c LocalConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, a := range []struct{ what, addr string }{{"Listen", c.Listen}, {"Stats", c.Stats}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return bad("%s %q is not host:port", a.what, a.addr)
		}
	}
	if len(c.Servers) == 0 {
		return bad("no Servers")
	}
	seen := map[string]bool{}
	for _, s := range c.Servers {
		if !nameRE.MatchString(s.Name) || seen[s.Name] {
			return bad("server name %q: want unique names of letters, digits and -_.:", s.Name)
		}
		seen[s.Name] = true
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return bad("server %s: address %q is not host:port", s.Name, s.Addr)
		}
	}
	if c.MaxConn < 1 {
		return bad("MaxConn must be at least 1, got %d", c.MaxConn)
	}
	if !slices.Contains(Balances, c.Balance) {
		return bad("Balance %q: want one of %v", c.Balance, Balances)
	}
	return nil
}

// RenderLocal returns local.cfg.tmpl filled in with cfg.
func RenderLocal(cfg LocalConfig) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := local.Execute(&b, cfg); err != nil {
		return nil, fmt.Errorf("haproxy: rendering local.cfg.tmpl: %w", err)
	}
	return b.Bytes(), nil
}
