package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/node"
)

// TestPeerConfigCmd: "pool peer-config" proposes, rolls back and locks
// against in-process nodes; bad flags exit 2, an unknown session 1.
func TestPeerConfigCmd(t *testing.T) {
	dir, _, b, _, _ := nodePair(t)
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	id := b.Sessions()[0].ID

	code, out, errOut := runCmd(t, "peer-config", "--control", bSock, id[:6], "--heartbeat", "2s", "--rekey-interval", "30m", "--deadline", "30s")
	if code != 0 || errOut != "" {
		t.Fatalf("propose: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, w := range []string{"session " + id + ": the peer applied version 1 (was 0), hash ",
		"heartbeat 2s, rekey interval 30m0s, rekey packets 268435456, mtu max none",
		"it keeps them after 30s unless you run, before then:\n    pool peer-config " + id[:8] + " --rollback\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("propose output lacks %q:\n%s", w, out)
		}
	}

	code, out, errOut = runCmd(t, "peer-config", "--json", "--control", bSock, id[:6], "--rollback")
	var res node.PeerConfigResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("rollback --json: exit %d, %q, %q", code, out, errOut)
	}
	if res.Session != id || res.State != "rolled-back" || res.Version != 0 || res.PrevVersion != 1 || res.Params.HeartbeatMs != 5000 {
		t.Errorf("rollback: %s", out)
	}
	// Nothing left to roll back: the node's error, exit 1.
	if code, _, errOut := runCmd(t, "peer-config", "--control", bSock, id, "--rollback"); code != 1 || !strings.Contains(errOut, "no accepted proposal") {
		t.Errorf("second rollback: exit %d, %q", code, errOut)
	}

	// A locks its side; B's proposal is refused.
	if code, out, errOut := runCmd(t, "peer-config", "--control", aSock, id, "--lock"); code != 0 || !strings.Contains(out, "is locked\n") {
		t.Errorf("lock: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "peer-config", "--control", bSock, id, "--mtu-max", "1200"); code != 1 || !strings.Contains(errOut, "locked") {
		t.Errorf("proposal to a locked side: exit %d, %q", code, errOut)
	}
	if code, out, errOut := runCmd(t, "peer-config", "--control", aSock, id, "--unlock"); code != 0 || !strings.Contains(out, "is unlocked\n") {
		t.Errorf("unlock: exit %d, %q, %q", code, out, errOut)
	}

	// An unknown session is the node's error.
	other := "0"
	if id[0] == '0' {
		other = "1"
	}
	code, out, errOut = runCmd(t, "peer-config", "--control", bSock, other+id[1:8], "--rollback")
	if code != 1 || out != "" || !strings.Contains(errOut, "no session ID starts with") {
		t.Errorf("unknown session: exit %d, %q, %q", code, out, errOut)
	}

	for _, args := range [][]string{
		{"peer-config"},
		{"peer-config", id, "extra"},
		{"peer-config", "3g"},
		{"peer-config", id, "--rollback", "--lock"},
		{"peer-config", id, "--lock", "--unlock"},
		{"peer-config", id, "--rollback", "--heartbeat", "2s"},
		{"peer-config", id, "--heartbeat", "50ms"},
		{"peer-config", id, "--heartbeat", "soon"},
		{"peer-config", id, "--rekey-interval", "2h"},
		{"peer-config", id, "--rekey-packets", "10"},
		{"peer-config", id, "--mtu-max", "100"},
		{"peer-config", id, "--mtu-max", "70000"},
		{"peer-config", id, "--deadline", "1s"},
		{"peer-config", id, "--control"},
	} {
		code, out, errOut := runCmd(t, append(args, "--control", bSock)...)
		if args[len(args)-1] == "--control" {
			code, out, errOut = runCmd(t, args...)
		}
		if code != 2 || !strings.HasPrefix(errOut, "pool: ") || !strings.Contains(errOut, "--help") || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 with usage hint", args, code, out, errOut)
		}
	}
}
