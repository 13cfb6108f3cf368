package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	haproxycfg "github.com/pushuphq/pushup/deploy/haproxy"
	"github.com/pushuphq/pushup/internal/testbed"
)

// fleet is the servers of one run: the pushupd daemons it started and
// the balancer in front of them, or the servers it was given; and the
// watchers that end the run when one of its processes dies. A run's
// goroutine calls start and stop; the watchers only cancel.
type fleet struct {
	ctx         context.Context
	cancel      context.CancelCauseFunc
	setup       ServerSetup
	subscribers PopulationConfig
	scraper     *http.Client
	res         *RunResult // the run's: Servers and Balancer are filled in here

	daemons []*testbed.Daemon
	hap     *testbed.HAProxy
	urls    []string // the servers: sampled, asked how many wait
	probes  []ServerProbe

	watchers     sync.WaitGroup
	stopWatching chan struct{}
}

// start starts the daemons, forms their cluster and puts the balancer in
// front, as the setup asks; or, without daemons, takes the running
// servers it names.
func (f *fleet) start() error {
	if len(f.setup.Daemons) == 0 {
		f.useRunning()
		return nil
	}
	if err := f.startDaemons(); err != nil {
		return err
	}
	if f.setup.Cluster != nil {
		if err := waitClusterFormed(f.ctx, f.scraper, f.urls, f.setup.Cluster.FormTimeout); err != nil {
			return fmt.Errorf("%w%s", err, daemonLogs(f.daemons))
		}
	}
	if f.setup.HAProxy != nil {
		return f.startBalancer()
	}
	return nil
}

func (f *fleet) useRunning() {
	for i, u := range f.setup.URLs {
		info := ServerInfo{URL: u}
		if i < len(f.setup.PIDs) && f.setup.PIDs[i] > 0 {
			info.PID = f.setup.PIDs[i]
			f.probes = append(f.probes, ProcProbe{PID: info.PID})
		} else {
			f.probes = append(f.probes, MetricsProbe{URL: u, Client: f.scraper})
		}
		f.urls = append(f.urls, u)
		f.res.Servers = append(f.res.Servers, info)
	}
}

func (f *fleet) startDaemons() (err error) {
	dcs := f.setup.Daemons
	if f.setup.Cluster != nil {
		if dcs, err = clusterDaemons(dcs, *f.setup.Cluster); err != nil {
			return err
		}
	}
	named := f.setup.Cluster != nil || f.setup.HAProxy != nil
	for i, dc := range dcs {
		d, err := testbed.StartDaemon(dc)
		if err != nil {
			return err
		}
		f.daemons = append(f.daemons, d)
		f.watch(d.Exited(), func() error {
			return fmt.Errorf("%w: pid %d exited during the run:\n%s", ErrDaemon, d.PID, d.Log())
		})
		f.urls = append(f.urls, d.URL)
		f.probes = append(f.probes, ProcProbe{PID: d.PID})
		info := ServerInfo{URL: d.URL, PID: d.PID, Model: d.Model, Args: f.setup.Daemons[i].Args}
		if named {
			info.Name = nodeName(i)
		}
		f.res.Servers = append(f.res.Servers, info)
		if err := checkServerFiles(d.PID, perServer(f.subscribers, len(dcs), f.setup.HAProxy != nil)); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) startBalancer() (err error) {
	hc := *f.setup.HAProxy
	if hc.StartTimeout <= 0 {
		hc.StartTimeout = testbed.DefaultHAProxyConfig().StartTimeout
	}
	servers := make([]haproxycfg.Server, len(f.urls))
	for i, u := range f.urls {
		servers[i] = haproxycfg.Server{Name: nodeName(i), Addr: strings.TrimPrefix(u, "http://")}
	}
	if f.hap, err = testbed.StartHAProxy(f.ctx, hc, servers); err != nil {
		return err
	}
	f.watch(f.hap.Exited(), func() error {
		return fmt.Errorf("%w: pid %d exited during the run:\n%s", ErrHAProxy, f.hap.PID, f.hap.Log())
	})
	if err := f.hap.WaitUp(f.ctx, hc.StartTimeout); err != nil {
		return err
	}
	f.res.Balancer = &Balancer{URL: f.hap.URL, PID: f.hap.PID, Balance: f.hap.Config.Balance, MaxConn: f.hap.Config.MaxConn}
	return nil
}

// watch ends the run at once, with the reason, if a process of it dies.
func (f *fleet) watch(exited <-chan struct{}, why func() error) {
	f.watchers.Go(func() {
		select {
		case <-exited:
			f.cancel(why())
		case <-f.stopWatching:
		}
	})
}

// entry is where clients without targets go: the balancer, or the
// servers.
func (f *fleet) entry() []string {
	if f.hap != nil {
		return []string{f.hap.URL}
	}
	return f.urls
}

// publishTo is where publishers without targets go: the entry, unless
// the setup sends them straight to the nodes.
func (f *fleet) publishTo() []string {
	if f.hap != nil && f.setup.PublishToNodes {
		return f.urls
	}
	return f.entry()
}

// balancer samples haproxy's RSS and CPU time, if there is one: apart
// from the servers', which the Monitor sums.
func (f *fleet) balancer() ServerSample {
	if f.hap == nil {
		return ServerSample{}
	}
	s, _ := ProcProbe{PID: f.hap.PID}.Probe(f.ctx)
	return s
}

// stop stops the balancer first, so that no poll is sent to a node on
// its way out; then the nodes one after the other, each leaving while the
// others still hear it. It returns the first error.
func (f *fleet) stop() (err error) {
	close(f.stopWatching)
	f.watchers.Wait()
	if f.hap != nil {
		err = f.hap.Stop()
	}
	for _, d := range f.daemons {
		if serr := d.Stop(); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}
