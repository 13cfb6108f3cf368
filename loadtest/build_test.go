package loadtest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// pushupd is cmd/pushupd, built once for the tests that run it; TestMain
// removes it.
var pushupd SharedBuild

// pushupdBinary returns the built cmd/pushupd.
func pushupdBinary(t *testing.T) string {
	t.Helper()
	bin, err := pushupd.Binary(context.Background())
	require.NoError(t, err)
	return bin
}
