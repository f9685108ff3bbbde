package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a node leaves goroutines behind after
// Shutdown.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
