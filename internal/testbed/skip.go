package testbed

import (
	"fmt"
	"os"
	"os/exec"
)

// Environment variables that turn a missing binary from a skip into a
// failure, so that CI (.ci/run sets them) cannot pass without running the
// tests that need it.
const (
	RequireHAProxyEnv = "PUSHUP_REQUIRE_HAPROXY"
	RequireNchanEnv   = "PUSHUP_REQUIRE_NCHAN"
	RequirePerfEnv    = "PUSHUP_REQUIRE_PERF"
	RequireWrkEnv     = "PUSHUP_REQUIRE_WRK"
)

// TB is the part of testing.TB the helpers below use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// HAProxyOrSkip returns the haproxy binary (FindHAProxy), or skips t
// saying how to install one; under PUSHUP_REQUIRE_HAPROXY=1 it fails t
// instead.
func HAProxyOrSkip(t TB) string {
	t.Helper()
	bin, err := FindHAProxy()
	if err != nil {
		skipOrFail(t, RequireHAProxyEnv, err)
	}
	return bin
}

// NchanOrSkip returns nginx and the Nchan module (FindNchan), or skips t
// saying how to install them; under PUSHUP_REQUIRE_NCHAN=1 it fails t
// instead.
func NchanOrSkip(t TB) (nginx, module string) {
	t.Helper()
	nginx, module, err := FindNchan()
	if err != nil {
		skipOrFail(t, RequireNchanEnv, err)
	}
	return nginx, module
}

// PerfOrSkip returns the perf binary, or skips t saying how to install
// it; under PUSHUP_REQUIRE_PERF=1 it fails t instead.
func PerfOrSkip(t TB) string {
	t.Helper()
	bin, err := exec.LookPath("perf")
	if err != nil {
		skipOrFail(t, RequirePerfEnv, fmt.Errorf("perf not found (apt-get install linux-perf): %w", err))
	}
	return bin
}

// WrkOrSkip returns the wrk binary, or skips t saying how to install it;
// under PUSHUP_REQUIRE_WRK=1 it fails t instead.
func WrkOrSkip(t TB) string {
	t.Helper()
	bin, err := exec.LookPath("wrk")
	if err != nil {
		skipOrFail(t, RequireWrkEnv, fmt.Errorf("wrk not found (apt-get install wrk): %w", err))
	}
	return bin
}

func skipOrFail(t TB, env string, err error) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%v; %s=1 makes this a failure", err, env)
	}
	t.Skipf("%v (.ci/run installs it; set %s=1 to fail instead)", err, env)
}
