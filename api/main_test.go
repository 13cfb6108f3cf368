package api

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: handlers
// of clients that went away, servers not shut down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
