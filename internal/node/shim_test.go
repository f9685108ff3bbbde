package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/shimd"
)

// TestNodeShim: a node with a [shim] section answers the LD_PRELOAD shim on
// its socket and carries a routed destination over POOL to the node that
// serves it (pool2tcp), which connects to it; an unrouted destination is
// "no POOL route" (the shim's fallback decides), a refused one "refused".
func TestNodeShim(t *testing.T) {
	echo := echoServer(t)
	dst := netip.MustParseAddrPort(echo.Addr().String())
	closedPort := netip.MustParseAddrPort(freeAddr(t))

	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	aText := readFile(t, aPath) + "\n[[bridge.pool2tcp]]\nallow = [\"127.0.0.1:*\"]\n"
	a := startNode(t, writeFile(t, aPath, aText), Options{})
	defer shutdown(t, a)

	sock := filepath.Join(dir, "shim.sock")
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", a.ListenAddr().String(), aID.Public}) +
		fmt.Sprintf("\n[shim]\nsocket = %q\n\n[[shim.route]]\ndestination = \"127.0.0.1:%d,%d\"\npeer = \"a\"\n",
			sock, dst.Port(), closedPort.Port())
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), bText), Options{})
	defer shutdown(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := shimd.Connect(ctx, sock, dst)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("hello shim"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello shim" {
		t.Fatalf("echo through the shim: %q, %v", buf, err)
	}
	c.Close()

	var se *shimd.StatusError
	if _, err := shimd.Connect(ctx, sock, netip.MustParseAddrPort("192.0.2.1:80")); !errors.As(err, &se) || se.Status != shimd.StatusNoRoute {
		t.Errorf("an unrouted destination: %v", err)
	}
	if _, err := shimd.Connect(ctx, sock, closedPort); !errors.As(err, &se) || se.Status != shimd.StatusRefused {
		t.Errorf("a routed destination that refuses: %v", err)
	}
	var rows []BridgeRoute
	if err := Call(ctx, filepath.Join(dir, "b.sock"), "bridge.status", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Side != "shim" || rows[0].Conns != 2 || rows[0].Refused != 1 || rows[0].Route != "a" {
		t.Errorf("bridge.status of the shim: %+v", rows)
	}
}

func TestShimConfigErrors(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "k.key")
	base := fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n\n[[peer]]\nname = \"a\"\naddress = \"127.0.0.1:9253\"\nkey = %q\n",
		key, filepath.Join(dir, "c.sock"), strings.Repeat("A", 43)+"=")
	writeFile(t, filepath.Join(dir, "bad_routes"), "# comment\n10.0.0.0/8:80 onlytwo\n")
	good := writeFile(t, filepath.Join(dir, "routes"), "10.0.0.0/8:5432 "+strings.Repeat("E", 43)+"= db.example:9253 db\n")
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "ok.toml"), base+"\n[shim]\nknown_peers = \"routes\"\n[[shim.route]]\ndestination = \"10.1.0.1:80\"\npeer = \"a\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Shim.KnownPeers != good || len(cfg.Shim.Routes) != 2 || cfg.Shim.Routes[1].Name != "db" || cfg.Shim.Routes[0].Name != "a" {
		t.Fatalf("known_peers with a [[shim.route]]: %+v, %v", cfg.Shim, err)
	}
	for _, tc := range []struct{ text, want string }{
		{"\n[shim]\n", "needs routes"},
		{"\n[shim]\nknown_peers = \"missing\"\n", "no such file"},
		{"\n[shim]\nknown_peers = \"bad_routes\"\n", "line 2: want DEST:PORTS"},
		{"\n[shim]\n[[shim.route]]\npeer = \"a\"\n", "destination"},
		{"\n[shim]\n[[shim.route]]\ndestination = \"10.0.0.1:80\"\npeer = \"nope\"\n", `no [[peer]] is named "nope"`},
		{"\n[shim]\n[[shim.route]]\ndestination = \"10.0.0.1:80\"\n", "required: peer"},
		{"\n[shim]\ndial_timeout = \"1h\"\n[[shim.route]]\ndestination = \"10.0.0.1:80\"\npeer = \"a\"\n", "dial_timeout"},
		{"\n[shim]\nsokcet = \"x\"\n", `did you mean "socket"`},
		{"\n[shim]\n[[shim.route]]\ndestnation = \"x\"\n", `did you mean "destination"`},
	} {
		_, err := LoadConfig(writeFile(t, filepath.Join(dir, "n.toml"), base+tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}
