package netns

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/internal/testbed"
)

// TestMain fails the package if a test leaves goroutines behind, then
// removes the pushupd binary the tests built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pushupd.Remove()
		os.Exit(code)
	}))
}

// pushupd is cmd/pushupd, built once for the tests that run it.
var pushupd testbed.SharedBuild
