package loadtest

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

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
		builtDir, builtError = os.MkdirTemp("", "loadtest-pushupd-")
		if builtError == nil {
			builtBin, builtError = BuildPushupd(context.Background(), builtDir)
		}
	})
	require.NoError(t, builtError)
	return builtBin
}
