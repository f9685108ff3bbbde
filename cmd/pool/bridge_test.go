package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBridgeUsage: the bridge commands refuse incomplete or contradictory
// command lines with exit status 2 and say what is missing, before they
// touch the network.
func TestBridgeUsage(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if code, _, stderr := keygen(t, key); code != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge", "pool2tcp", "--identity", key, "--target", "127.0.0.1:80"}, "exactly one of --authorized"},
		{[]string{"bridge", "pool2tcp", "--identity", key, "--allow-any"}, "--target HOST:PORT or at least one --allow"},
		{[]string{"bridge", "pool2tcp", "--identity", key, "--allow-any", "--target", "nohost"}, "--target"},
		{[]string{"bridge", "pool2tcp", "--identity", key, "--allow-any", "--allow", "10.0.0.0/8"}, "--allow"},
		{[]string{"bridge", "tcp2pool", "--identity", key, "--listen", "127.0.0.1:0", "127.0.0.1:9253"}, "--peer"},
		{[]string{"bridge", "tcp2pool", "--identity", key, "--listen", "127.0.0.1:0", "--peer", "nonsense", "127.0.0.1:9253"}, "--peer"},
		{[]string{"bridge", "tcp2pool", "--identity", key, "--listen", "127.0.0.1:0", "--peer", "x"}, "accepts 1 arg"},
		{[]string{"bridge", "nonsense"}, "unknown command"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("pool %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
	// No bridge answers on a socket that does not exist: exit 1, saying so.
	code, _, stderr := runCmd(t, "bridge", "status", "--control", filepath.Join(dir, "none.sock"))
	if code != exitError || !strings.Contains(stderr, "cannot reach") {
		t.Errorf("bridge status without a bridge: exit %d, %q", code, stderr)
	}
}
