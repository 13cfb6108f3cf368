package testbed

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (log
// readers, HTTP transports), then removes the pushupd binary the tests
// built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pushupd.Remove()
		os.Exit(code)
	}))
}

// pushupd is cmd/pushupd, built once for the tests that run it.
var pushupd SharedBuild

// gone reports whether no process has this pid any more.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestE2EDaemonKill: Kill ends pushupd at once, as a crash would, and Stop
// afterwards says it had already exited (not zero: it was killed).
func TestE2EDaemonKill(t *testing.T) {
	cfg := DefaultDaemonConfig()
	cfg.Binary = pushupd.For(t)
	d, err := StartDaemon(cfg)
	require.NoError(t, err)
	d.Kill()
	select {
	case <-d.Exited():
	default:
		t.Fatal("Kill returned before the process exited")
	}
	assert.True(t, gone(d.PID))
	err = d.Stop()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "had already exited")
	d.Kill() // a second Kill is harmless
}
