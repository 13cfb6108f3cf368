package loadtest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind
// (subscribers, monitors, daemon log readers, HTTP transports), then
// removes the pushupd binary the end-to-end tests built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pushupd.Remove()
		os.Exit(code)
	}))
}
