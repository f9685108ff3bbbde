package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/node"
)

// nodeKey saves a new identity in dir.
func nodeKey(t *testing.T, dir, name string) (string, *pool.Identity) {
	t.Helper()
	id, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := id.Save(path, false); err != nil {
		t.Fatal(err)
	}
	return path, id
}

func nodeWrite(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeStart starts a node in this process through the internal/node API.
func nodeStart(t *testing.T, cfgPath string) *node.Node {
	t.Helper()
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

func nodeWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodePair starts A (listening, allowing B) and B (keeping a session to
// A, named "alpha") and waits for the session.
func nodePair(t *testing.T) (dir string, a, b *node.Node, aID, bID *pool.Identity) {
	t.Helper()
	dir = t.TempDir()
	aKey, aID := nodeKey(t, dir, "a.key")
	bKey, bID := nodeKey(t, dir, "b.key")
	allowed := nodeWrite(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	a = nodeStart(t, nodeWrite(t, filepath.Join(dir, "a.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nauthorized_peers = %q\ncontrol = %q\n",
		aKey, allowed, filepath.Join(dir, "a.sock"))))
	b = nodeStart(t, nodeWrite(t, filepath.Join(dir, "b.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\n\n[[peer]]\nname = \"alpha\"\naddress = %q\nkey = %q\n",
		bKey, filepath.Join(dir, "b.sock"), a.ListenAddr(), aID.Public)))
	nodeWait(t, "the session", func() bool { return b.Status().PeersConnected == 1 && len(a.Sessions()) == 1 })
	return dir, a, b, aID, bID
}

func TestNodeCmdUsage(t *testing.T) {
	for _, args := range [][]string{
		{"node"},
		{"node", "--config"},
		{"node", "--config", "x.toml", "extra"},
		{"node", "--config", "x.toml", "--log-format", "xml"},
		{"node", "--nope"},
		{"status", "extra"},
		{"status", "--control"},
		{"sessions", "--bogus"},
		{"peers", "--json=maybe"},
		{"peers", "--control", ""},
		{"reload", "now"},
		{"telemetry", "3f2a", "extra"},
		{"telemetry", "--control"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, "pool: ") || !strings.Contains(errOut, "--help") || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 with usage hint", args, code, out, errOut)
		}
	}
}

func TestNodeCmdBadConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := nodeKey(t, dir, "n.key")
	open := filepath.Join(dir, "open.key")
	data, _ := os.ReadFile(key)
	nodeWrite(t, open, string(data))
	os.Chmod(open, 0o644)
	for _, tc := range []struct {
		name, text string
		want       string
	}{
		{"malformed", fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = [\n", key), ":3: control: syntax error"},
		{"unknown key", fmt.Sprintf("identity = %q\nlisten = \"off\"\nlisten_on = \"x\"\n", key), `:3: unknown key "listen_on"`},
		{"bad duration", fmt.Sprintf("identity = %q\nlisten = \"off\"\n\nidle_timeout = \"soon\"\n", key), `:4: idle_timeout: bad duration "soon"`},
		{"identity permissions", fmt.Sprintf("identity = %q\nlisten = \"off\"\n", open), ":1: identity: identity file " + fmt.Sprintf("%q", open) + " is accessible by group/others (mode 0644); run: chmod 600"},
		{"unreadable identity", "identity = \"nope.key\"\nlisten = \"off\"\n", ":1: identity: identity file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := nodeWrite(t, filepath.Join(t.TempDir(), "node.toml"), tc.text)
			code, out, errOut := runCmd(t, "node", "--config", path)
			if code != 1 || !strings.HasPrefix(errOut, "pool: config "+path+tc.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and \"pool: config %s%s...\"", code, out, errOut, path, tc.want)
			}
		})
	}
	missing := filepath.Join(dir, "missing.toml")
	if code, _, errOut := runCmd(t, "node", "--config", missing); code != 1 || errOut != "pool: config "+missing+": cannot read: no such file or directory\n" {
		t.Errorf("missing config: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "node", "--config", dir); code != 1 || !strings.Contains(errOut, "is a directory") {
		t.Errorf("config is a directory: exit %d, stderr %q", code, errOut)
	}
}

func TestNodeCmdPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	key, _ := nodeKey(t, dir, "n.key")
	path := nodeWrite(t, filepath.Join(dir, "node.toml"), fmt.Sprintf("identity = %q\nlisten = %q\nallow_any = true\ncontrol = %q\n",
		key, busy.Addr(), filepath.Join(dir, "control.sock")))
	code, _, errOut := runCmd(t, "node", "--config", path)
	if code != 1 || !strings.Contains(errOut, "pool: cannot listen on "+busy.Addr().String()+": bind: address already in use") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestNodeCmdControlSocketTaken(t *testing.T) {
	dir, _, b, _, _ := nodePair(t)
	_ = b
	key, _ := nodeKey(t, dir, "c.key")
	path := nodeWrite(t, filepath.Join(dir, "c.toml"), fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n",
		key, filepath.Join(dir, "b.sock")))
	code, _, errOut := runCmd(t, "node", "--config", path)
	if code != 1 || !strings.Contains(errOut, "another pool node is running") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestNodeCmdRuns runs "pool node" in this process, asks it with "pool
// status --json", and stops it as SIGINT would.
func TestNodeCmdRuns(t *testing.T) {
	dir := t.TempDir()
	key, id := nodeKey(t, dir, "n.key")
	control := filepath.Join(dir, "control.sock")
	path := nodeWrite(t, filepath.Join(dir, "node.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nallow_any = true\ncontrol = %q\nlog_level = \"debug\"\n", key, control))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"node", "--config", path, "--log-format", "json"}, nil, &stdout, &stderr)
	}()

	var out string
	nodeWait(t, "pool status to answer", func() bool {
		var code int
		code, out, _ = runCmd(t, "status", "--json", "--control", control)
		select {
		case c := <-exit:
			t.Fatalf("pool node exited with %d:\n%s", c, stderr.String())
		default:
		}
		return code == 0
	})
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Identity != id.Public.String() || st.Listen == "" || st.LogLevel != "debug" || st.Sessions != 0 {
		t.Errorf("status %+v", st)
	}
	code, out, errOut := runCmd(t, "sessions", "--json", "--control", control)
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions --json: exit %d, %q, %q", code, out, errOut)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after interrupt:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pool node did not stop")
	}
	if _, err := os.Stat(control); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	// --log-format json: every line of the log is a JSON object.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil {
			t.Errorf("log line %q is not a JSON record: %v", line, err)
		}
	}
	if log := stderr.String(); !strings.Contains(log, `"msg":"node started"`) || !strings.Contains(log, `"msg":"node stopped"`) {
		t.Errorf("log:\n%s", log)
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestControlCmdsJSON(t *testing.T) {
	dir, a, b, aID, bID := nodePair(t)
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")

	code, out, errOut := runCmd(t, "status", "--json", "--control", aSock)
	var st node.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d, %q, %q", code, out, errOut)
	}
	if st.Identity != aID.Public.String() || st.Sessions != 1 || st.Listen != a.ListenAddr().String() || st.Handshakes.Accepted != 1 {
		t.Errorf("status %+v", st)
	}

	code, out, errOut = runCmd(t, "sessions", "--json", "--control", bSock)
	var ss []node.SessionInfo
	if code != 0 || json.Unmarshal([]byte(out), &ss) != nil {
		t.Fatalf("sessions --json: exit %d, %q, %q", code, out, errOut)
	}
	if len(ss) != 1 || ss[0].PeerName != "alpha" || ss[0].Direction != "outbound" || ss[0].PeerKey != aID.Public.String() {
		t.Errorf("B's sessions %+v", ss)
	}
	code, out, _ = runCmd(t, "sessions", "--json", "--control", aSock)
	var as []node.SessionInfo
	if code != 0 || json.Unmarshal([]byte(out), &as) != nil || len(as) != 1 || as[0].ID != ss[0].ID ||
		as[0].Direction != "inbound" || as[0].PeerKey != bID.Public.String() {
		t.Errorf("A's sessions: exit %d, %s", code, out)
	}

	// POOL_CONTROL stands in for --control.
	t.Setenv("POOL_CONTROL", bSock)
	code, out, errOut = runCmd(t, "peers", "--json")
	var ps []node.PeerInfo
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil {
		t.Fatalf("peers --json: exit %d, %q, %q", code, out, errOut)
	}
	if len(ps) != 1 || ps[0].Name != "alpha" || ps[0].State != "connected" || ps[0].SessionID != ss[0].ID {
		t.Errorf("peers %+v", ps)
	}

	code, out, errOut = runCmd(t, "reload", "--json")
	var res node.ReloadResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Changes == nil || len(res.Changes) != 0 {
		t.Errorf("reload --json: exit %d, %q, %q", code, out, errOut)
	}
	_ = b
}

func TestControlCmdsTables(t *testing.T) {
	dir, _, b, aID, bID := nodePair(t)
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "--control", aSock}, []string{"integrity   ok (self-tests pass; every 1m0s, ", "identity    " + aID.Public.String(), "sessions    1\n",
			"1 keys in authorized_peers", "1 accepted, 0 failed", "address     pool:"}},
		{[]string{"status", "--control", bSock}, []string{"listen      off", "peers       1 of 1 connected"}},
		{[]string{"sessions", "--control", bSock}, []string{"ID", "PEER", "DIRECTION", "alpha (", "outbound"}},
		{[]string{"sessions", "--control", aSock}, []string{bID.Public.String(), "inbound"}},
		{[]string{"peers", "--control", bSock}, []string{"NAME", "STATE", "alpha", "connected"}},
		{[]string{"peers", "--control", aSock}, []string{"no peers configured"}},
		{[]string{"reload", "--control", bSock}, []string{"reloaded: nothing changed"}},
	} {
		code, out, errOut := runCmd(t, tc.args...)
		if code != 0 || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}

	// A reload that adds a peer prints the change; one with a mistake
	// fails with the line and leaves the node as it was.
	cfgPath := b.Status().ConfigFile
	cfg, _ := os.ReadFile(cfgPath)
	nodeWrite(t, cfgPath, "log_level = \"warn\"\n"+string(cfg))
	code, out, errOut := runCmd(t, "reload", "--control", bSock)
	if code != 0 || out != "reloaded:\n  log_level: info -> warn\n" {
		t.Errorf("reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	nodeWrite(t, cfgPath, string(cfg)+"bogus = 1\n")
	code, out, errOut = runCmd(t, "reload", "--control", bSock)
	if code != 1 || out != "" || !strings.Contains(errOut, "pool: reload refused, the node keeps its old configuration: config "+cfgPath+":9: peer[0]: unknown key \"bogus\"") {
		t.Errorf("bad reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if st := b.Status(); st.LogLevel != "warn" || st.PeersConnected != 1 {
		t.Errorf("after a refused reload: %+v", st)
	}
}

func TestControlCmdsNoNode(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	for _, cmd := range []string{"status", "sessions", "telemetry", "peers", "reload"} {
		for _, json := range []bool{false, true} {
			args := []string{cmd, "--control", stale}
			if json {
				args = append(args, "--json")
			}
			code, out, errOut := runCmd(t, args...)
			want := "pool: cannot reach the node's control socket " + stale + ": connection refused (is `pool node` running?)\n"
			if code != 1 || errOut != want || out != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, out, errOut, want)
			}
		}
		code, _, errOut := runCmd(t, cmd, "--control", missing)
		if code != 1 || !strings.HasPrefix(errOut, "pool: cannot reach the node's control socket "+missing+": no such file or directory (is `pool node` running?") {
			t.Errorf("%s of a missing socket: exit %d, stderr %q", cmd, code, errOut)
		}
	}
}

func TestControlCmdsPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root connects to any socket regardless of its mode")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0)
	code, _, errOut := runCmd(t, "status", "--control", sock)
	if code != 1 || !strings.Contains(errOut, "permission denied") || !strings.Contains(errOut, "node's user") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
