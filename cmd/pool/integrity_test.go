package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/pool-go/pool/internal/selftest"
)

// The tests here corrupt a known-answer test through selftest's
// process-wide hook; none of this package's tests runs in parallel.

// TestNodeCmdSelftestRefusal: "pool node" whose self-test fails refuses to
// start, names the primitive, and exits with status 3.
func TestNodeCmdSelftestRefusal(t *testing.T) {
	dir := t.TempDir()
	key, _ := nodeKey(t, dir, "n.key")
	path := nodeWrite(t, filepath.Join(dir, "node.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, filepath.Join(dir, "control.sock")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	restore := selftest.CorruptForTest(selftest.PrimX25519)
	code := run(ctx, []string{"node", "--config", path}, nil, &stdout, &stderr)
	restore()
	errOut := stderr.String()
	if code != exitIntegrity || stdout.String() != "" ||
		!strings.HasPrefix(errOut, "pool: refusing to start: a runtime integrity self-test failed") ||
		!strings.Contains(errOut, "known-answer test of X25519 failed: RFC 7748") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), errOut)
	}
}

// TestControlCmdsCompromised: "pool status" and "pool peers", as tables
// and as JSON, show a node that failed a self-test while running.
func TestControlCmdsCompromised(t *testing.T) {
	dir := t.TempDir()
	key, _ := nodeKey(t, dir, "n.key")
	_, peer := nodeKey(t, dir, "peer.key")
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close() // nothing listens there: the peer is in backoff
	sock := filepath.Join(dir, "n.sock")
	cfg, err := node.LoadConfig(nodeWrite(t, filepath.Join(dir, "node.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nallow_any = true\ncontrol = %q\nselftest_interval = \"1s\"\n"+
			"reconnect_min = \"50ms\"\nreconnect_max = \"100ms\"\n\n[[peer]]\nname = \"far\"\naddress = %q\nkey = %q\n",
		key, sock, closedAddr, peer.Public)))
	if err != nil {
		t.Fatal(err)
	}
	var alert syncBuffer
	n, err := node.Start(cfg, node.Options{Alert: &alert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})

	code, out, errOut := runCmd(t, "status", "--control", sock)
	if code != 0 || !strings.Contains(out, "integrity   ok (self-tests pass; every 1s, ") {
		t.Errorf("status of a sound node: exit %d, %q, %q", code, out, errOut)
	}

	restore := selftest.CorruptForTest(selftest.PrimSHA256)
	// The state is set first (refusing sessions comes before alerting),
	// then the alert is written.
	nodeWait(t, "the node compromised and alerting", func() bool { return n.Status().Compromised && alert.String() != "" })
	restore()

	if !strings.HasPrefix(alert.String(), "POOL NODE COMPROMISED at ") {
		t.Errorf("alert %q", alert.String())
	}
	code, out, errOut = runCmd(t, "status", "--control", sock)
	t.Logf("pool status:\n%s", out)
	for _, w := range []string{"integrity   COMPROMISED since ", ": known-answer test of SHA-256 failed: ",
		"new sessions are refused until the node is restarted", "0 refused while compromised"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("status: exit %d, stderr %q, output lacks %q:\n%s", code, errOut, w, out)
		}
	}
	code, out, _ = runCmd(t, "status", "--json", "--control", sock)
	var st node.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d, %s", code, out)
	}
	if !st.Compromised || st.Integrity.State != "compromised" || st.Integrity.Since.IsZero() ||
		!strings.HasPrefix(st.Integrity.Reason, "known-answer test of SHA-256 failed") || st.Integrity.Failures != 1 {
		t.Errorf("status --json: %s", out)
	}
	for _, field := range []string{`"compromised": true`, `"state": "compromised"`, `"reason": "known-answer test of SHA-256`,
		`"since": "`, `"refused_compromised": 0`} {
		if !strings.Contains(out, field) {
			t.Errorf("status --json lacks %s:\n%s", field, out)
		}
	}

	nodeWait(t, "the peer parked", func() bool {
		_, out, _ = runCmd(t, "peers", "--control", sock)
		return strings.Contains(out, "compromised")
	})
	t.Logf("pool peers:\n%s", out)
	if !strings.Contains(out, "far") || !strings.Contains(out, "not dialing: this node failed a runtime integrity self-test") {
		t.Errorf("peers:\n%s", out)
	}
	code, out, _ = runCmd(t, "peers", "--json", "--control", sock)
	if code != 0 || !strings.Contains(out, `"state": "compromised"`) {
		t.Errorf("peers --json: %s", out)
	}
}
