// Package loadtest drives real pushupd processes hard from one client
// process and measures what the paper's evaluation measures (section 4):
// network traffic (NT), publish trip time (MPT), received message
// percentage (RMP) and server memory usage (SMU), plus server CPU time and
// connection errors by kind.
//
// # What it owns
//
// A Population of simulated subscribers, each owning one keep-alive TCP
// connection over which it speaks raw HTTP/1.1 (net/http's client costs too
// much per connection to hold tens of thousands of them), in long-poll or
// client-pull mode, passing back the cursor of each answer. A Publisher
// posts timestamped, sequence-numbered payloads on a schedule. A Monitor
// samples server memory, CPU time and OS threads from /proc (memory and
// CPU also from /metrics). The servers are child processes started and
// stopped through internal/testbed (pushupd, HAProxy, Nginx + Nchan),
// which the end-to-end tests of deploy/ and web/ use too.
//
// An experiment is a list of runs (Experiment); a run (RunConfig) is a
// server setup, a subscriber population, a publisher schedule and the
// metrics taken over it. Fanout parks many subscribers on one channel,
// measures memory per parked subscriber, then publishes a few messages and
// measures how fast all of them get each one. The paper's comparisons are
// sweeps: RunPushVsPull (Tables 1 and 2, Figures 7 and 8),
// RunEventVsThread (Figures 9-11) and RunScaleOut (Figures 12 and 13) lay
// out a grid of runs, shrink every interval of the paper by a time scale,
// turn each run into a Point, and return a Report with the paper-shaped
// tables (text and Markdown), CSV, JSON and figures (SVG and PNG, drawn
// with gonum/plot). A run that fails in a sweep is a point with its
// error, not the end of the sweep. A run of RunScaleOut forms a cluster of
// its daemons (ServerSetup.Cluster) and puts an HAProxy child process in
// front of them (ServerSetup.HAProxy, running deploy/haproxy's local
// configuration); on one machine they all share
// its cores, which its report says first. ReadReport and Report.Redraw
// draw a committed sweep again from its JSON.
//
// Compare runs PushUp, other brokers (Nginx with the Nchan module,
// Centrifugo on event streams) and the floor server (floorserver_linux.go:
// only what the kernel must do per delivery) side by side with one
// deliberately plain client, a goroutine per subscriber, so that only the
// server differs; memory is summed over each target's processes, CPU,
// system calls (perf) and bytes are counted per delivery, and wrk
// measures the cached-subscribe rate (cached.go). comparereport.go turns
// the rows into ratios and issue 12's verdicts.
//
// # Layers
//
// Three layers, each a set of files; a lower one never calls a higher one.
//
//   - The wire client and the monitor: httpwire.go, dialer.go,
//     subscriber.go, population.go, publisher.go, payload.go, delivery.go,
//     traffic.go, latency.go, errkind.go, promtext.go, monitor.go,
//     progress.go.
//   - Runs and experiments: run.go (RunConfig) and runner.go (Run, a run
//     state whose phases are methods), fleet.go (a run's servers, started
//     through internal/testbed), experiment.go, fanout.go, cluster.go,
//     compare.go, floor.go, floorserver_linux.go, kernelcost.go,
//     cached.go, sweep.go and the sweeps (pushvspull.go,
//     eventvsthread.go, scaleout.go), machine.go.
//   - Reports and figures: report.go, comparereport.go, table.go,
//     plot.go (the only file that draws, with gonum/plot), replot.go.
//
// They are files rather than packages because they share unexported
// types (a sweep's points are made from run results, a report's figures
// from points) behind one surface for cmd/pushup-loadtest. The cut that
// matters for linking is a package: the child processes, which the
// end-to-end tests of deploy/ and web/ need without plots, are
// internal/testbed's.
//
// # Bounds and ownership
//
// Everything stops by itself: a run is bounded by its message count and by
// RunConfig.Timeout, and every goroutine the package starts belongs to the
// object that started it (Population, Publisher, Monitor, or a run)
// and ends when that object's context ends or its Stop method returns.
// Daemons, HAProxy and nginx processes are stopped (SIGTERM, then SIGKILL) on
// every path out of a run, and die with this process (Pdeathsig) if it is
// killed.
//
// The number of connections is checked against the open-file limit before
// anything is dialed, in this process, in each server and in HAProxy (two
// files per connection it carries): asking for more than fit is an error
// (ErrTooManyConnections), never a silent cap.
//
// # Concurrency
//
// Population and Monitor methods are safe for concurrent use; their
// snapshots may be read while a run is going on (the progress line does).
// A Publisher's Run is called once. Config values are copied by the
// constructors and not modified afterwards.
//
// # Clocks
//
// Trip times subtract the publisher's send timestamp (wall clock, Unix
// nanoseconds, carried in the payload) from the subscriber's receive time:
// both are taken in this process, so on one host they share a clock. The
// receive time is taken when the whole answer has been read, before it is
// decoded; it includes any delay in scheduling the subscriber's goroutine,
// which on a machine shared with the server is part of what is measured.
package loadtest
