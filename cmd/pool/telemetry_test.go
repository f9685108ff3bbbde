package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/node"
)

// TestTelemetryCmd: "pool telemetry" prints both views and the channel
// table, --json the node's answer; a prefix filters, a bad or unknown one
// is refused clearly.
func TestTelemetryCmd(t *testing.T) {
	dir := t.TempDir()
	aKey, aID := nodeKey(t, dir, "a.key")
	bKey, bID := nodeKey(t, dir, "b.key")
	allowed := nodeWrite(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	a := nodeStart(t, nodeWrite(t, filepath.Join(dir, "a.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nauthorized_peers = %q\ncontrol = %q\nheartbeat_interval = \"100ms\"\n",
		aKey, allowed, aSock)))
	b := nodeStart(t, nodeWrite(t, filepath.Join(dir, "b.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\nheartbeat_interval = \"100ms\"\n\n[[peer]]\nname = \"alpha\"\naddress = %q\nkey = %q\n",
		bKey, bSock, a.ListenAddr(), aID.Public)))
	var id string
	nodeWait(t, "the peer's report on both sides", func() bool {
		bt, _ := b.Telemetry("")
		at, _ := a.Telemetry("")
		if len(bt) != 1 || len(at) != 1 || bt[0].PeerReport == nil || at[0].PeerReport == nil || bt[0].Local.RTTSamples == 0 {
			return false
		}
		id = bt[0].ID
		return true
	})

	code, out, errOut := runCmd(t, "telemetry", "--control", bSock)
	if code != 0 || errOut != "" {
		t.Fatalf("telemetry: exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{"session " + id + "  alpha (", "  outbound  " + a.ListenAddr().String() + "  up ",
		"epoch 0 (0 rekeys), packets out/in ", "OURS", "PEER'S REPORT", "\n  rtt  ", "\n  loss in  ", "0 ppm",
		"\n  throughput out (derived)  ", "\n  heartbeats sent/received  ", "\n  journal head  ",
		"\n  report age  ", "cross-checks: ", "state digests verified, 0 anomalies\n",
		"overload:     0 notices sent, 0 received; paused: no; unread 0 B\n",
		"integrity:    0 proofs verified, 0 failed, 0 timeouts, 0 unmatched; 0 challenges answered\n",
		"no open channels\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("telemetry output lacks %q:\n%s", w, out)
		}
	}
	// The peer's heartbeats carry its journal's head (the first 8 bytes).
	if m := regexp.MustCompile(`\n  journal head +- +([0-9a-f]{16})\n`).FindStringSubmatch(out); m == nil || m[1] == "0000000000000000" {
		t.Errorf("the peer's journal head is missing or zero:\n%s", out)
	}
	if strings.Contains(out, "no report from the peer yet") {
		t.Errorf("the peer's report is missing:\n%s", out)
	}
	// The two columns line up: every row of the small table has its
	// "ours" cell where the header's OURS is.
	lines := strings.Split(out, "\n")
	col := -1
	for _, l := range lines {
		if i := strings.Index(l, "OURS"); i >= 0 {
			col = i
		}
		if col > 0 && strings.HasPrefix(l, "  mtu ") && (len(l) <= col || l[col-1] != ' ' || l[col] == ' ') {
			t.Errorf("the mtu row is not aligned with OURS (column %d):\n%s", col, out)
		}
	}

	code, out, errOut = runCmd(t, "telemetry", "--json", "--control", aSock, id[:5])
	var ts []node.TelemetryInfo
	if code != 0 || json.Unmarshal([]byte(out), &ts) != nil {
		t.Fatalf("telemetry --json: exit %d, %q, %q", code, out, errOut)
	}
	if len(ts) != 1 || ts[0].ID != id || ts[0].Direction != "inbound" || ts[0].PeerKey != bID.Public.String() ||
		ts[0].PeerReport == nil || ts[0].Local.HeartbeatsRecv == 0 || ts[0].Local.HeartbeatsSent == 0 || ts[0].Channels == nil {
		t.Errorf("A's telemetry: %s", out)
	}
	for _, k := range []string{`"local": {`, `"rtt_us": `, `"heartbeats_received": `, `"peer_report": {`, `"age_s": `,
		`"uptime_s": `, `"journal_head": "`, `"digest_checks": `, `"overload": {`, `"integrity": {`, `"channels": []`} {
		if !strings.Contains(out, k) {
			t.Errorf("telemetry --json lacks %s:\n%s", k, out)
		}
	}

	// A bad prefix is a usage error, an unknown one the node's error.
	code, out, errOut = runCmd(t, "telemetry", "--control", bSock, "3g")
	if code != 2 || out != "" || !strings.HasPrefix(errOut, `pool: bad session ID prefix "3g": want 1 to 32 hex digits`) ||
		!strings.Contains(errOut, "Run 'pool telemetry --help'") {
		t.Errorf("bad prefix: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	other := "0"
	if id[0] == '0' {
		other = "1"
	}
	code, out, errOut = runCmd(t, "telemetry", "--json", "--control", bSock, other+id[1:8])
	if want := fmt.Sprintf("pool: no session ID starts with %q (the node has 1 live sessions; \"pool sessions\" lists them)\n", other+id[1:8]); code != 1 || out != "" || errOut != want {
		t.Errorf("unknown prefix: exit %d, stdout %q, stderr %q, want %q", code, out, errOut, want)
	}

	// A node without sessions.
	cKey, _ := nodeKey(t, dir, "c.key")
	cSock := filepath.Join(dir, "c.sock")
	nodeStart(t, nodeWrite(t, filepath.Join(dir, "c.toml"), fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", cKey, cSock)))
	if code, out, errOut := runCmd(t, "telemetry", "--control", cSock); code != 0 || out != "no sessions\n" {
		t.Errorf("telemetry of an idle node: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := runCmd(t, "telemetry", "--json", "--control", cSock); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("telemetry --json of an idle node: exit %d, %q", code, out)
	}
}
