// Package testbed starts and stops the child processes that PushUp's
// end-to-end tests and load tester run against: pushupd (Daemon, built
// once per test binary with SharedBuild or per run with PreparePushupd),
// HAProxy in front of local nodes (HAProxy, running deploy/haproxy's local
// configuration) and Nginx with the Nchan module (Nchan). It also owns
// what every such run needs around them: free loopback ports
// (FreeLoopbackAddr), the open-file limit (RaiseFileLimit,
// CheckFileBudget), waiting for nodes to be ready (Ready) and death
// signals, so that a killed test leaves no server behind.
//
// It links nothing but the standard library and deploy/haproxy, so a
// test of a cluster does not pull in the load tester's reports and plots.
//
// # Ownership and concurrency
//
// Every process is stopped (SIGTERM, then SIGKILL after the configured
// timeout) by its Stop method, which is safe to call more than once and
// concurrently; on Linux it also dies with this process (Pdeathsig). The
// one goroutine each process has waits for it and ends when it exits.
// Log, Exited and the HAProxy status methods are safe for concurrent use.
// Config values are copied by the Start functions.
package testbed
