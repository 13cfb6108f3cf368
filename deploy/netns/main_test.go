package netns

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pushuphq/pushup/loadtest"
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
var pushupd loadtest.SharedBuild

func pushupdBinary(t *testing.T) string {
	t.Helper()
	bin, err := pushupd.Binary(context.Background())
	require.NoError(t, err)
	return bin
}
