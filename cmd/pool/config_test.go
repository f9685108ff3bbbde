package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/node"
)

// TestConfigCmds: apply, apply --confirm-within and confirm, history,
// diff and rollback against a node running in this process.
func TestConfigCmds(t *testing.T) {
	dir := t.TempDir()
	key, _ := nodeKey(t, dir, "n.key")
	sock := filepath.Join(dir, "n.sock")
	cfgPath := nodeWrite(t, filepath.Join(dir, "n.toml"), fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, sock))
	n := nodeStart(t, cfgPath)
	v1, _ := os.ReadFile(cfgPath)

	newFile := nodeWrite(t, filepath.Join(dir, "new.toml"), string(v1)+"log_level = \"warn\"\n")
	code, out, errOut := runCmd(t, "config", "apply", newFile, "--control", sock)
	if code != 0 || !strings.HasPrefix(out, "applied: version 2 (sha256 ") || !strings.Contains(out, "was version 1\n  log_level: info -> warn\n") {
		t.Errorf("apply: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "status", "--control", sock)
	if code != 0 || !strings.Contains(out, "version 2 (sha256 ") {
		t.Errorf("status: exit %d, %q, %q", code, out, errOut)
	}

	tentative := nodeWrite(t, filepath.Join(dir, "t.toml"), string(v1)+"log_level = \"debug\"\n")
	code, out, errOut = runCmd(t, "config", "apply", tentative, "--confirm-within", "2m", "--control", sock)
	if code != 0 || !strings.Contains(out, "applied: version 3") || !strings.Contains(out, `tentative: run "pool config confirm" before`) {
		t.Errorf("apply --confirm-within: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, "status", "--control", sock)
	if code != 0 || !strings.Contains(out, "TENTATIVE: pool config confirm before") {
		t.Errorf("status while pending: %q", out)
	}
	code, out, errOut = runCmd(t, "config", "confirm", "--control", sock)
	if code != 0 || !strings.HasPrefix(out, "confirmed: version 3") {
		t.Errorf("confirm: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "config", "confirm", "--control", sock)
	if code != 1 || !strings.Contains(errOut, "pool: config confirm: no commit-confirmed change awaits confirmation") {
		t.Errorf("a second confirm: exit %d, %q", code, errOut)
	}

	// An invalid file: exit 1 with the line, nothing changes.
	bad := nodeWrite(t, filepath.Join(dir, "bad.toml"), string(v1)+"bogus = 1\n")
	code, _, errOut = runCmd(t, "config", "apply", bad, "--control", sock)
	if code != 1 || !strings.Contains(errOut, cfgPath+`:4: unknown key "bogus"`) || n.Status().Config.Version != 3 {
		t.Errorf("bad file: exit %d, %q", code, errOut)
	}

	code, out, errOut = runCmd(t, "config", "history", "--control", sock)
	if code != 0 || !strings.Contains(out, "VERSION") || !strings.Contains(out, "apply-confirmed") || !strings.Contains(out, "*  3 ") {
		t.Errorf("history: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "config", "history", "--json", "--control", sock)
	var h node.ConfigHistory
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || h.Current != 3 || len(h.Versions) != 3 {
		t.Errorf("history --json: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "config", "diff", "2", "3", "--control", sock)
	if code != 0 || !strings.Contains(out, "-log_level = \"warn\"\n+log_level = \"debug\"\n") {
		t.Errorf("diff: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "config", "rollback", "--control", sock)
	if code != 0 || !strings.HasPrefix(out, "rolled back: version 4") || n.Status().LogLevel != "warn" {
		t.Errorf("rollback: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = runCmd(t, "config", "rollback", "99", "--control", sock)
	if code != 1 || !strings.Contains(errOut, "no such version") {
		t.Errorf("rollback 99: exit %d, %q", code, errOut)
	}
}

func TestConfigCmdsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"config", "apply"},
		{"config", "apply", "a", "b"},
		{"config", "apply", "f", "--confirm-within", "soon"},
		{"config", "apply", "f", "--confirm-within", "0s"},
		{"config", "apply", "f", "--confirm-within", "25h"},
		{"config", "rollback", "x"},
		{"config", "rollback", "1", "2"},
		{"config", "diff", "1"},
		{"config", "diff", "1", "b"},
		{"config", "confirm", "now"},
		{"config", "history", "--bogus"},
		{"config", "bogus"},
	} {
		code, _, errOut := runCmd(t, args...)
		if code != 2 || !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
	code, out, _ := runCmd(t, "config", "apply", "--help")
	if code != 0 || !strings.Contains(out, "--confirm-within 2m") || !strings.Contains(out, "Examples:") {
		t.Errorf("apply --help: %d %q", code, out)
	}
	code, _, errOut := runCmd(t, "config", "history", "--control", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errOut, "cannot reach the node's control socket") {
		t.Errorf("no node: exit %d, %q", code, errOut)
	}
}
