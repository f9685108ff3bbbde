//go:build integration

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/node"
)

// The daemon's integration test: two "pool node" processes, built from
// this package, on loopback. Run with make integration (no -race).

type nodeProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, once done
}

func startNodeProc(t *testing.T, bin, config, log string) *nodeProc {
	t.Helper()
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "node", "--config", config)
	cmd.Stderr, cmd.Stdout = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &nodeProc{t: t, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the exit status, failing the test after d.
func (p *nodeProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return ee.ExitCode()
		}
		if p.err != nil {
			p.t.Fatal(p.err)
		}
		return 0
	case <-time.After(d):
		p.t.Fatalf("pool node did not exit within %v; log:\n%s", d, readLog(p.log))
		return -1
	}
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// ask runs "pool METHOD --json --control SOCK" and decodes its output.
func ask(t *testing.T, bin, sock, method string, out any) error {
	t.Helper()
	cmd := exec.Command(bin, method, "--json", "--control", sock)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pool %s: %v: %s", method, err, stderr.String())
	}
	return json.Unmarshal(b, out)
}

func poll(t *testing.T, d time.Duration, what string, cond func() bool, logs ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				fmt.Fprintf(&b, "--- %s\n%s", l, readLog(l))
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", d, what, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIntegrationNodeReconnects(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pool")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	aKey, aID := nodeKey(t, dir, "a.key")
	bKey, bID := nodeKey(t, dir, "b.key")
	allowed := nodeWrite(t, filepath.Join(dir, "authorized_peers"), bID.Public.String()+" b\n")
	// A fixed port, so that A comes back where B looks for it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aAddr := l.Addr().String()
	l.Close()
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	aLog, bLog := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	aCfg := nodeWrite(t, filepath.Join(dir, "a.toml"), fmt.Sprintf(
		"identity = %q\nlisten = %q\nauthorized_peers = %q\ncontrol = %q\n", aKey, aAddr, allowed, aSock))
	bText := fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n\n"+
		"[[peer]]\nname = \"alpha\"\naddress = %q\nkey = %q\n", bKey, bSock, aAddr, aID.Public)
	bCfg := nodeWrite(t, filepath.Join(dir, "b.toml"), bText)

	a := startNodeProc(t, bin, aCfg, aLog)
	b := startNodeProc(t, bin, bCfg, bLog)
	peer := func() node.PeerInfo {
		var ps []node.PeerInfo
		if err := ask(t, bin, bSock, "peers", &ps); err != nil || len(ps) != 1 {
			return node.PeerInfo{}
		}
		return ps[0]
	}
	sessions := func(sock string) []node.SessionInfo {
		var ss []node.SessionInfo
		if err := ask(t, bin, sock, "sessions", &ss); err != nil {
			return nil
		}
		return ss
	}

	// The session comes up; both nodes list it.
	var bs, as []node.SessionInfo
	poll(t, 15*time.Second, "the session", func() bool {
		bs, as = sessions(bSock), sessions(aSock)
		return len(bs) == 1 && len(as) == 1
	}, aLog, bLog)
	if bs[0].ID != as[0].ID || bs[0].PeerName != "alpha" || as[0].PeerKey != bID.Public.String() {
		t.Fatalf("sessions: A %+v, B %+v", as, bs)
	}
	var st node.Status
	if err := ask(t, bin, aSock, "status", &st); err != nil || st.Sessions != 1 || st.Listen != aAddr {
		t.Fatalf("A's status %+v: %v", st, err)
	}

	// SIGKILL A: B sees the session go down.
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.wait(5 * time.Second)
	poll(t, 15*time.Second, "B to notice A is gone", func() bool {
		p := peer()
		return p.State != "" && p.State != node.StateConnected && p.Disconnects == 1
	}, bLog)
	if p := peer(); !strings.Contains(p.LastDisconnect, "peer vanished") || len(sessions(bSock)) != 0 {
		t.Errorf("after SIGKILL: %+v", p)
	}

	// A returns (over its stale control socket): the session comes back.
	a = startNodeProc(t, bin, aCfg, aLog)
	poll(t, 15*time.Second, "the session to come back", func() bool {
		bs2, as2 := sessions(bSock), sessions(aSock)
		return len(bs2) == 1 && len(as2) == 1 && bs2[0].ID == as2[0].ID && bs2[0].ID != bs[0].ID
	}, aLog, bLog)

	// SIGHUP reloads B's configuration.
	nodeWrite(t, bCfg, "log_level = \"debug\"\n"+bText)
	b.cmd.Process.Signal(syscall.SIGHUP)
	poll(t, 5*time.Second, "B to reload", func() bool {
		var st node.Status
		return ask(t, bin, bSock, "status", &st) == nil && st.LogLevel == "debug"
	}, bLog)
	if p := peer(); p.State != node.StateConnected || p.Disconnects != 1 {
		t.Errorf("the reload disturbed the session: %+v", p)
	}

	// SIGTERM A: it exits 0 and B sees its CLOSE.
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(15 * time.Second); code != 0 {
		t.Errorf("A exited with %d after SIGTERM:\n%s", code, readLog(aLog))
	}
	if _, err := os.Stat(aSock); !os.IsNotExist(err) {
		t.Errorf("A left its control socket: %v", err)
	}
	poll(t, 10*time.Second, "B to see A's CLOSE", func() bool { return peer().Disconnects == 2 }, bLog)
	if p := peer(); p.LastDisconnect != "closed by peer (NO_ERROR)" {
		t.Errorf("B's peer after A's SIGTERM: %+v", p)
	}

	// SIGTERM B, which has no session left.
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.wait(15 * time.Second); code != 0 {
		t.Errorf("B exited with %d after SIGTERM:\n%s", code, readLog(bLog))
	}
	if log := readLog(bLog); !strings.Contains(log, "configuration reloaded: log_level: info -> debug") || !strings.Contains(log, "node stopped") {
		t.Errorf("B's log:\n%s", log)
	}
}

// TestIntegrationNodeClosesOnSIGTERM: a node stopped with SIGTERM closes
// its inbound sessions with CLOSE NO_ERROR, which the dialing side logs.
func TestIntegrationNodeClosesOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pool")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	aKey, aID := nodeKey(t, dir, "a.key")
	bKey, _ := nodeKey(t, dir, "b.key")
	aSock, bSock := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	aLog, bLog := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aAddr := l.Addr().String()
	l.Close()
	a := startNodeProc(t, bin, nodeWrite(t, filepath.Join(dir, "a.toml"), fmt.Sprintf(
		"identity = %q\nlisten = %q\nallow_any = true\ncontrol = %q\n", aKey, aAddr, aSock)), aLog)
	b := startNodeProc(t, bin, nodeWrite(t, filepath.Join(dir, "b.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\n[[peer]]\naddress = %q\nkey = %q\n", bKey, bSock, aAddr, aID.Public)), bLog)
	poll(t, 15*time.Second, "the session", func() bool {
		var ss []node.SessionInfo
		return ask(t, bin, aSock, "sessions", &ss) == nil && len(ss) == 1
	}, aLog, bLog)

	// B (the dialer) stops: A logs the session's end by B's CLOSE.
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.wait(15 * time.Second); code != 0 {
		t.Errorf("B exited with %d:\n%s", code, readLog(bLog))
	}
	poll(t, 5*time.Second, "A to log B's CLOSE", func() bool {
		return strings.Contains(readLog(aLog), `msg="inbound session ended"`) &&
			strings.Contains(readLog(aLog), `err="closed by peer (NO_ERROR)"`)
	}, aLog)
	var ss []node.SessionInfo
	if err := ask(t, bin, aSock, "sessions", &ss); err != nil || len(ss) != 0 {
		t.Errorf("A's sessions after B stopped: %+v %v", ss, err)
	}
	a.cmd.Process.Signal(syscall.SIGINT)
	if code := a.wait(15 * time.Second); code != 0 {
		t.Errorf("A exited with %d after SIGINT:\n%s", code, readLog(aLog))
	}
}
