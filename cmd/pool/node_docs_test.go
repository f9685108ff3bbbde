package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperationsCoversCommands: docs/OPERATIONS.md's synopsis names every
// subcommand.
func TestOperationsCoversCommands(t *testing.T) {
	ops, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range newRootCmd().Commands() {
		if c.Name() == "help" || c.Hidden {
			continue
		}
		if !strings.Contains(string(ops), "\npool "+c.Name()+" ") {
			t.Errorf("docs/OPERATIONS.md's synopsis lacks \"pool %s\"", c.Name())
		}
	}
}
