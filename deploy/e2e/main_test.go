package e2e

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/loadtest"
)

// TestMain fails the package if a test leaves goroutines behind, then
// removes the pushupd binary the tests built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if builtDir != "" {
			os.RemoveAll(builtDir)
		}
		os.Exit(code)
	}))
}

var (
	buildOnce  sync.Once
	builtDir   string // removed by TestMain
	builtBin   string
	builtError error
)

// pushupdBinary builds cmd/pushupd once per test binary.
func pushupdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtDir, builtError = os.MkdirTemp("", "e2e-pushupd-")
		if builtError == nil {
			builtBin, builtError = loadtest.BuildPushupd(context.Background(), builtDir)
		}
	})
	require.NoError(t, builtError)
	return builtBin
}
