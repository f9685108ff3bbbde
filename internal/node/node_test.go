package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// testLogger discards the log unless POOL_TEST_LOG is set (then stderr).
func testLogger() *slog.Logger {
	if os.Getenv("POOL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNode loads path and starts a node that is shut down when the test
// ends.
func startNode(t *testing.T, path string, opts Options) *Node {
	t.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	n, err := Start(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, n) })
	return n
}

func shutdown(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listenerConfig is a node listening on listen that allows the keys of
// the file allowed.
func listenerConfig(t *testing.T, dir, name, listen, allowed string) (path string, id *pool.Identity) {
	t.Helper()
	key, id := newKeyFile(t, dir, name+".key")
	return writeFile(t, filepath.Join(dir, name+".toml"), fmt.Sprintf(
		"identity = %q\nlisten = %q\nauthorized_peers = %q\ncontrol = %q\n",
		key, listen, allowed, filepath.Join(dir, name+".sock"))), id
}

type testPeer struct {
	name, address string
	key           pool.PublicKey
}

// dialerText is the configuration of a node that does not listen and keeps
// sessions to peers, with short reconnect delays.
func dialerText(key, control string, peers ...testPeer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "identity = %q\nlisten = \"off\"\ncontrol = %q\nreconnect_min = \"50ms\"\nreconnect_max = \"200ms\"\n", key, control)
	for _, p := range peers {
		fmt.Fprintf(&b, "\n[[peer]]\nname = %q\naddress = %q\nkey = %q\n", p.name, p.address, p.key)
	}
	return b.String()
}

func peerByName(n *Node, name string) PeerInfo {
	for _, p := range n.Peers() {
		if p.Name == name {
			return p
		}
	}
	return PeerInfo{}
}

// TestNodePeerDownAndBack: B keeps a session to A; when A stops, B sees it
// end with A's CLOSE and backs off; when A returns on the same port, B
// reconnects.
func TestNodePeerDownAndBack(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+" b\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	aAddr := a.ListenAddr().String()
	bPath := writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", aAddr, aID.Public}))
	b := startNode(t, bPath, Options{})

	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	var as []SessionInfo
	waitFor(t, 5*time.Second, "A lists the session", func() bool { as = a.Sessions(); return len(as) == 1 })
	bs := b.Sessions()
	if len(bs) != 1 || as[0].ID != bs[0].ID || len(as[0].ID) != 32 {
		t.Fatalf("A sessions %+v, B sessions %+v", as, bs)
	}
	if as[0].Direction != "inbound" || as[0].PeerKey != bID.Public.String() || as[0].PeerName != "" {
		t.Errorf("A's session: %+v", as[0])
	}
	if bs[0].Direction != "outbound" || bs[0].PeerKey != aID.Public.String() || bs[0].PeerName != "a" || bs[0].Remote != aAddr {
		t.Errorf("B's session: %+v (A is %s)", bs[0], aAddr)
	}
	p := peerByName(b, "a")
	if p.SessionID != bs[0].ID || p.ConnectedSince.IsZero() || p.LastError != "" || p.Attempts != 1 {
		t.Errorf("B's peer: %+v", p)
	}
	st := a.Status()
	if st.Sessions != 1 || st.Handshakes.Accepted != 1 || st.Handshakes.Challenges < 1 || st.Listen != aAddr ||
		st.Identity != aID.Public.String() || st.AuthorizedKeys != 1 || st.AllowAny {
		t.Errorf("A's status: %+v", st)
	}
	if st := b.Status(); st.PeersConfigured != 1 || st.PeersConnected != 1 || st.Listen != "" || st.Sessions != 1 {
		t.Errorf("B's status: %+v", st)
	}

	// A stops: its CLOSE(NO_ERROR) reaches B, which then finds A gone.
	shutdown(t, a)
	if _, err := os.Stat(filepath.Join(dir, "a.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("A's control socket is still there after shutdown: %v", err)
	}
	waitFor(t, 5*time.Second, "B notices A is gone", func() bool { return peerByName(b, "a").Disconnects == 1 })
	p = peerByName(b, "a")
	if p.LastDisconnect != "closed by peer (NO_ERROR)" || p.LastDisconnectAt.IsZero() {
		t.Errorf("B's peer after A's shutdown: %+v", p)
	}
	waitFor(t, 5*time.Second, "B backs off", func() bool {
		p = peerByName(b, "a")
		return p.State == StateBackoff && strings.Contains(p.LastError, "connection refused")
	})
	if p.SessionID != "" || !p.ConnectedSince.IsZero() || len(b.Sessions()) != 0 {
		t.Errorf("B's peer in backoff: %+v, sessions %+v", p, b.Sessions())
	}

	// A returns on the same port.
	writeFile(t, aPath, strings.Replace(readFile(t, aPath), `"127.0.0.1:0"`, fmt.Sprintf("%q", aAddr), 1))
	a2 := startNode(t, aPath, Options{})
	waitFor(t, 10*time.Second, "B reconnects", func() bool { return peerByName(b, "a").State == StateConnected })
	waitFor(t, 5*time.Second, "A lists the new session", func() bool { return len(a2.Sessions()) == 1 })
	if p := peerByName(b, "a"); p.SessionID == bs[0].ID || p.LastError != "" {
		t.Errorf("after reconnecting: %+v", p)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNodeReload adds and removes peers without dropping the other
// session, and refuses what cannot change live.
func TestNodeReload(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	a1Path, a1ID := listenerConfig(t, dir, "a1", "127.0.0.1:0", allowed)
	a2Path, a2ID := listenerConfig(t, dir, "a2", "127.0.0.1:0", allowed)
	a1 := startNode(t, a1Path, Options{})
	a2 := startNode(t, a2Path, Options{})
	p1 := testPeer{"a1", a1.ListenAddr().String(), a1ID.Public}
	p2 := testPeer{"a2", a2.ListenAddr().String(), a2ID.Public}
	control := filepath.Join(dir, "b.sock")
	bPath := writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, control, p1))
	var level slog.LevelVar
	b := startNode(t, bPath, Options{Level: &level})
	waitFor(t, 10*time.Second, "B connected to a1", func() bool { return peerByName(b, "a1").State == StateConnected })
	sid1 := peerByName(b, "a1").SessionID

	// Nothing changed.
	res, err := b.Reload()
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("reload of the same file: %v, %q", err, res.Changes)
	}

	// Add a2 (and raise the log level).
	writeFile(t, bPath, "log_level = \"debug\"\n"+dialerText(bKey, control, p1, p2))
	res, err = b.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Changes, "peer a2 added ("+p2.address+")") || !slices.Contains(res.Changes, "log_level: info -> debug") {
		t.Errorf("changes %q", res.Changes)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload", level.Level())
	}
	waitFor(t, 10*time.Second, "B connected to a2", func() bool { return peerByName(b, "a2").State == StateConnected })
	if got := peerByName(b, "a1"); got.SessionID != sid1 || got.Disconnects != 0 {
		t.Errorf("a1's session did not survive the reload: %+v", got)
	}
	sid2 := peerByName(b, "a2").SessionID

	// Remove a1: its session is closed, a2's stays.
	writeFile(t, bPath, dialerText(bKey, control, p2))
	res, err = b.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Changes, "peer a1 removed (its session is closed)") {
		t.Errorf("changes %q", res.Changes)
	}
	if ps := b.Peers(); len(ps) != 1 || ps[0].Name != "a2" || ps[0].SessionID != sid2 {
		t.Errorf("peers after removing a1: %+v", ps)
	}
	waitFor(t, 5*time.Second, "a1's session closed", func() bool { return len(a1.Sessions()) == 0 && len(b.Sessions()) == 1 })
	if s := b.Sessions(); s[0].ID != sid2 {
		t.Errorf("B's sessions %+v, want only %s", s, sid2)
	}

	// What cannot change live is refused as a whole; the node keeps going.
	writeFile(t, bPath, strings.Replace(dialerText(bKey, control, p1, p2), `listen = "off"`, `listen = "off"`+"\nidle_timeout = \"45s\"", 1))
	_, err = b.Reload()
	if err == nil || !strings.Contains(err.Error(), `idle_timeout (`) || !strings.Contains(err.Error(), "restart") {
		t.Errorf("reload changing idle_timeout: %v", err)
	}
	if ps := b.Peers(); len(ps) != 1 || ps[0].SessionID != sid2 {
		t.Errorf("a refused reload changed the peers: %+v", ps)
	}

	// An invalid file is refused with its line; the old configuration stays.
	writeFile(t, bPath, "bogus = 1\n"+dialerText(bKey, control, p2))
	err = Call(context.Background(), control, "reload", nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "keeps its old configuration") ||
		!strings.Contains(err.Error(), bPath+":1: unknown key \"bogus\"") {
		t.Errorf("reload of an invalid file over the control socket: %v", err)
	}
	if st := b.Status(); st.PeersConnected != 1 || st.LogLevel != "info" {
		t.Errorf("status after refused reloads: %+v", st)
	}
}

// TestNodeReloadRevokes: a key taken out of authorized_peers loses its
// session at the reload and cannot come back.
func TestNodeReloadRevokes(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	_, other := newKeyFile(t, dir, "other.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", a.ListenAddr().String(), aID.Public})), Options{})
	waitFor(t, 10*time.Second, "B connected", func() bool {
		return peerByName(b, "a").State == StateConnected && len(a.Sessions()) == 1
	})

	writeFile(t, allowed, other.Public.String()+"\n")
	res, err := a.Reload()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"authorized_peers: " + allowed + " reloaded (1 keys)", "closed 1 inbound session(s) of keys no longer authorized"}
	if !slices.Equal(res.Changes, want) {
		t.Errorf("changes %q, want %q", res.Changes, want)
	}
	waitFor(t, 5*time.Second, "B's session closed", func() bool { return peerByName(b, "a").Disconnects == 1 })
	if p := peerByName(b, "a"); !strings.Contains(p.LastDisconnect, "closed by peer (AUTH_FAIL): key no longer authorized") {
		t.Errorf("B's peer: %+v", p)
	}
	waitFor(t, 10*time.Second, "B refused", func() bool {
		return strings.Contains(peerByName(b, "a").LastError, "refused the handshake")
	})
	if len(a.Sessions()) != 0 {
		t.Errorf("A still lists %+v", a.Sessions())
	}
}

// TestNodeRefusesChannels: until the node carries services, a channel a
// peer opens is reset with a reason.
func TestNodeRefusesChannels(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", a.ListenAddr().String(), aID.Public})), Options{})
	waitFor(t, 10*time.Second, "B connected", func() bool { return peerByName(b, "a").State == StateConnected })
	b.mu.Lock()
	s := b.peers[aID.Public].sess
	b.mu.Unlock()
	ch, err := s.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	ch.SetDeadline(time.Now().Add(5 * time.Second))
	ch.Write([]byte("hello"))
	_, err = io.ReadAll(ch)
	var ce *pool.CloseError
	if !errors.As(err, &ce) || ce.Code != pool.CodeConfigReject || ce.Reason != noService {
		t.Errorf("read from a refused channel: %v", err)
	}
	if p := peerByName(b, "a"); p.State != StateConnected {
		t.Errorf("the session ended: %+v", p)
	}
}

func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	key, id := newKeyFile(t, dir, "n.key")
	control := filepath.Join(dir, "run", "control.sock") // run/ is created 0700
	cfgPath := writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, control))
	n := startNode(t, cfgPath, Options{Version: "v9.9.9"})

	fi, err := os.Stat(control)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(control)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("control directory: %v %v", di.Mode(), err)
	}

	ctx := context.Background()
	var pong string
	if err := Call(ctx, control, "ping", &pong); err != nil || pong != "pong" {
		t.Fatalf("ping: %q %v", pong, err)
	}
	var st Status
	if err := Call(ctx, control, "status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "v9.9.9" || st.Identity != id.Public.String() || st.ConfigFile != cfgPath || st.Control != control ||
		st.PID != os.Getpid() || st.Started.IsZero() || !strings.HasPrefix(st.Address, "pool:") {
		t.Errorf("status %+v", st)
	}
	var raw json.RawMessage
	if err := Call(ctx, control, "sessions", &raw); err != nil || string(raw) != "[]" {
		t.Errorf("sessions of an idle node: %s %v", raw, err)
	}
	if err := Call(ctx, control, "peers", &raw); err != nil || string(raw) != "[]" {
		t.Errorf("peers of an idle node: %s %v", raw, err)
	}
	if err := Call(ctx, control, "frobnicate", nil); err == nil || !strings.Contains(err.Error(), `unknown method "frobnicate"`) {
		t.Errorf("unknown method: %v", err)
	}

	// Bad lines get an error reply; the connection keeps serving.
	c, err := net.Dial("unix", control)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	roundTrip := func(line string) Response {
		t.Helper()
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		reply, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("no reply to %q: %v", line, err)
		}
		var resp Response
		if err := json.Unmarshal(reply, &resp); err != nil {
			t.Fatalf("reply %q: %v", reply, err)
		}
		return resp
	}
	for _, bad := range []string{"not json\n", "{}\n", "[1,2]\n", "\n"} {
		if resp := roundTrip(bad); resp.OK || !strings.Contains(resp.Error, "bad request") {
			t.Errorf("request %q: %+v", bad, resp)
		}
	}
	if resp := roundTrip(`{"method":"ping"}` + "\n"); !resp.OK || string(resp.Result) != `"pong"` {
		t.Errorf("ping after bad requests: %+v", resp)
	}

	// An oversized line is refused and the connection closed.
	big, err := net.Dial("unix", control)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	big.SetDeadline(time.Now().Add(5 * time.Second))
	go big.Write([]byte(`{"method":"` + strings.Repeat("x", MaxRequest+10) + "\"}\n"))
	reply, _ := io.ReadAll(big)
	var resp Response
	if err := json.Unmarshal(reply, &resp); err != nil || resp.OK || !strings.Contains(resp.Error, "request longer than 65536 bytes") {
		t.Errorf("oversized request: %q %v", reply, err)
	}
	if err := Call(ctx, control, "ping", nil); err != nil {
		t.Errorf("ping after an oversized request: %v", err)
	}

	// A second node on the same control socket is refused.
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "another pool node is running") {
		t.Errorf("second node on the same socket: %v", err)
	}
	if err := Call(ctx, control, "ping", nil); err != nil {
		t.Errorf("the refused second node broke the first: %v", err)
	}

	// After shutdown the socket is gone and callers are told clearly.
	shutdown(t, n)
	err = Call(ctx, control, "status", nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "cannot reach the node's control socket "+control+": ") ||
		!strings.Contains(err.Error(), "is `pool node` running?") {
		t.Errorf("call without a node: %v", err)
	}
}

// TestControlSocketStale: a socket a dead node left is replaced; a file
// that is not a socket is not.
func TestControlSocketStale(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	control := filepath.Join(dir, "control.sock")
	cfgPath := writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, control))

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: control, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	n := startNode(t, cfgPath, Options{})
	if err := Call(context.Background(), n.ControlPath(), "ping", nil); err != nil {
		t.Fatalf("node over a stale socket: %v", err)
	}
	shutdown(t, n)

	writeFile(t, control, "precious")
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file in the way: %v", err)
	}
	if readFile(t, control) != "precious" {
		t.Error("the file in the way was replaced")
	}
}

func TestStartPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	control := filepath.Join(dir, "control.sock")
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf(
		"identity = %q\nlisten = %q\nallow_any = true\ncontrol = %q\n", key, busy.Addr().String(), control)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+busy.Addr().String()) ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a busy port: %v", err)
	}
	if _, err := os.Stat(control); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	d := time.Duration(0)
	var got []time.Duration
	for range 9 {
		d = nextDelay(d, time.Second, time.Minute)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v", got)
		}
	}
	for range 1000 {
		if j := jitter(10*time.Second, time.Minute); j < 8*time.Second || j > 12*time.Second {
			t.Fatalf("jitter(10s) = %v", j)
		}
		if j := jitter(time.Minute, time.Minute); j > time.Minute {
			t.Fatalf("jitter(60s) = %v, above the maximum", j)
		}
	}
}
