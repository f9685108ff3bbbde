package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/bridge"
	"github.com/pool-go/pool/internal/journal"
)

// TestNodeBridge: node B's [[bridge.tcp2pool]] carries TCP connections to
// node A, whose [[bridge.pool2tcp]] connects them to an echo server; the
// counters are on both control sockets ("bridge.status"), each connection
// is in the journal, and the metrics have the bridge series.
func TestNodeBridge(t *testing.T) {
	echo := echoServer(t)
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	aText := readFile(t, aPath) + fmt.Sprintf("metrics_listen = \"127.0.0.1:0\"\n\n[[bridge.pool2tcp]]\ntarget = %q\n", echo.Addr().String())
	a := startNode(t, writeFile(t, aPath, aText), Options{})

	// Reserve a port for B's bridge listener.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	bridgeAddr := l.Addr().String()
	l.Close()
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", a.ListenAddr().String(), aID.Public}) +
		fmt.Sprintf("\n[[bridge.tcp2pool]]\nname = \"echo\"\nlisten = %q\npeer = \"a\"\n", bridgeAddr)
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), bText), Options{})

	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", bridgeAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte("hello bridge"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "hello bridge" {
			t.Fatalf("echo through the node bridge: %q, %v", got, err)
		}
	}
	waitFor(t, 10*time.Second, "the connections to end on both sides", func() bool {
		var open int64
		for _, r := range append(a.BridgeStatus(), b.BridgeStatus()...) {
			open += r.Active
		}
		return open == 0
	})
	var rs []BridgeRoute
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Call(ctx, filepath.Join(dir, "b.sock"), "bridge.status", &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Side != "tcp2pool" || rs[0].Route != "echo" || rs[0].Conns != 3 || rs[0].BytesUp != 36 || rs[0].BytesDown != 36 || rs[0].Errors != 0 {
		t.Fatalf("B's bridge.status: %+v", rs)
	}
	if err := Call(ctx, filepath.Join(dir, "a.sock"), "bridge.status", &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Side != "pool2tcp" || rs[0].Conns != 3 || rs[0].BytesUp != 36 {
		t.Fatalf("A's bridge.status: %+v", rs)
	}

	body := scrape(t, "http://"+a.MetricsAddr().String())
	if v := metricValue(t, body, `pool_bridge_bytes_total{direction="down",route="default `+echo.Addr().String()+`",side="pool2tcp"}`); v != 36 {
		t.Errorf("pool_bridge_bytes_total down = %v", v)
	}

	shutdown(t, b)
	var found int
	for _, e := range journalEntries(t, filepath.Join(dir, "b.journal")) {
		if e.Type == journal.TypeDisconnect && e.Detail["bridge"] == "tcp2pool" {
			found++
			if e.Detail["route"] != "echo" || e.Detail["up"] != "12" || e.Detail["reason"] != "closed" {
				t.Errorf("journal entry %v", e.Detail)
			}
		}
	}
	if found != 3 {
		t.Errorf("%d bridge entries in B's journal, want 3", found)
	}
}

// TestNodeBridgeStatusWithout: a node without bridges says so.
func TestNodeBridgeStatusWithout(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	startNode(t, writeFile(t, filepath.Join(dir, "n.toml"), dialerText(key, filepath.Join(dir, "n.sock"))), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Call(ctx, filepath.Join(dir, "n.sock"), "bridge.status", nil)
	if err == nil || !strings.Contains(err.Error(), "runs no bridge") {
		t.Fatalf("bridge.status without bridges: %v", err)
	}
}

// TestBridgeConfigErrors: each mistake in a bridge section is reported
// with its line and a reason.
func TestBridgeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := newKeyFile(t, dir, "node.key")
	_, peer := newKeyFile(t, dir, "peer.key")
	head := fmt.Sprintf("identity = %q\nlisten = \"off\"\n\n[[peer]]\nname = \"gw\"\naddress = \"127.0.0.1:1\"\nkey = %q\n\n", keyPath, peer.Public) // lines 1-8
	for _, tc := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"no listen", "[[bridge.tcp2pool]]\npeer = \"gw\"\n", 9, "bridge.tcp2pool[0].listen: required"},
		{"bad listen", "[[bridge.tcp2pool]]\nlisten = \"8080\"\npeer = \"gw\"\n", 10, "not host:port"},
		{"unknown peer", "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\npeer = \"nope\"\n", 11, `no [[peer]] is named "nope"`},
		{"no peer", "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\n", 9, "required: peer"},
		{"bad destination", "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\npeer = \"gw\"\ndestination = \"x\"\n", 12, "want HOST:PORT"},
		{"typo", "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\npeer = \"gw\"\ndestinaton = \"x:1\"\n", 12, `did you mean "destination"`},
		{"empty pool2tcp", "[[bridge.pool2tcp]]\n", 9, "needs target"},
		{"bad allow", "[[bridge.pool2tcp]]\nallow = [\"10.0.0.0/8\"]\n", 10, "want DEST:PORTS"},
		{"two pool2tcp", "[[bridge.pool2tcp]]\ntarget = \"127.0.0.1:80\"\n[[bridge.pool2tcp]]\ntarget = \"127.0.0.1:81\"\n", 11, "only one"},
		{"duplicate listen", "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\npeer = \"gw\"\n[[bridge.tcp2pool]]\nname = \"b\"\nlisten = \"127.0.0.1:8080\"\npeer = \"gw\"\n", 14, "same address"},
	} {
		path := writeFile(t, filepath.Join(dir, tc.name+".toml"), head+tc.text)
		_, err := LoadConfig(path)
		ce, ok := err.(*ConfigError)
		if !ok || ce.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v (line %d), want line %d and %q", tc.name, err, lineOf(ce), tc.line, tc.want)
		}
	}
	ok := head + "[[bridge.tcp2pool]]\nlisten = \"127.0.0.1:8080\"\npeer = \"gw\"\ndestination = \"db.internal:5432\"\n" +
		"[[bridge.pool2tcp]]\ntarget = \"127.0.0.1:80\"\nallow = [\"10.0.0.0/8:80,443\", \"[2001:db8::/32]:*\"]\n"
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "ok.toml"), ok))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Bridges
	if len(b.TCP2Pool) != 1 || b.TCP2Pool[0].PeerKey != peer.Public || b.TCP2Pool[0].Destination != (bridge.Target{Host: "db.internal", Port: 5432}) ||
		b.Pool2TCP == nil || len(b.Pool2TCP.Allow) != 2 || b.Pool2TCP.Target.Port != 80 {
		t.Fatalf("parsed %+v %+v", b, b.Pool2TCP)
	}
}

func lineOf(ce *ConfigError) int {
	if ce == nil {
		return -1
	}
	return ce.Line
}

// echoServer is a TCP echo server on loopback that half-closes after the
// client does; it stops when the test ends.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return echo
}
