package broker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind (a
// broker not closed, a sweeper not stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
