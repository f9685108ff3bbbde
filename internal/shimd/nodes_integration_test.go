//go:build integration

package shimd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/node"
	"github.com/pool-go/pool/internal/shimd"
)

// TestShimThroughNodesIntegration is the whole path an operator builds:
// curl, unmodified, under LD_PRELOAD on the client's host; the shim hands
// its connect() to node B ([shim], a route to A); B carries it over POOL to
// node A, whose [[bridge.pool2tcp]] connects to the HTTP server. The
// download's SHA-256 matches; with redis installed, redis-cli too.
func TestShimThroughNodesIntegration(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl; .ci/run installs it): skipping")
	}
	lib, _ := shimd.BuildShimForTest(t)

	blob := make([]byte, 64<<20)
	rand.Read(blob)
	want := sha256.Sum256(blob)
	web, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	})}
	go srv.Serve(web)
	defer srv.Close()
	webPort := web.Addr().(*net.TCPAddr).Port
	ports := []string{strconv.Itoa(webPort)}

	var redisPort int
	if rs, err := exec.LookPath("redis-server"); err == nil {
		if _, err := exec.LookPath("redis-cli"); err == nil {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			redisPort = l.Addr().(*net.TCPAddr).Port
			l.Close()
			cmd := exec.Command(rs, "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			for i := 0; i < 100; i++ {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort)); err == nil {
					c.Close()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			ports = append(ports, strconv.Itoa(redisPort))
		}
	}

	dir := t.TempDir()
	key := func(name string) (string, *pool.Identity) {
		id, err := pool.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".key")
		if err := id.Save(p, false); err != nil {
			t.Fatal(err)
		}
		return p, id
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := func(path string) *node.Node {
		cfg, err := node.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.Start(cfg, node.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	aKey, aID := key("a")
	bKey, bID := key("b")
	write("allowed", bID.Public.String()+"\n")
	a := start(write("a.toml", fmt.Sprintf("identity = %q\nlisten = \"127.0.0.1:0\"\nauthorized_peers = %q\ncontrol = %q\n\n[[bridge.pool2tcp]]\nallow = [\"127.0.0.1:*\"]\n",
		aKey, filepath.Join(dir, "allowed"), filepath.Join(dir, "a.sock"))))
	sock := filepath.Join(dir, "shim.sock")
	start(write("b.toml", fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n\n[[peer]]\nname = \"a\"\naddress = %q\nkey = %q\n\n[shim]\nsocket = %q\n\n[[shim.route]]\ndestination = \"127.0.0.1:%s\"\npeer = \"a\"\n",
		bKey, filepath.Join(dir, "b.sock"), a.ListenAddr().String(), aID.Public.String(), sock, strings.Join(ports, ","))))

	env := append(os.Environ(), "LD_PRELOAD="+lib, "POOL_SHIM_SOCKET="+sock, "POOL_SHIM_PORTS="+strings.Join(ports, ","),
		"POOL_SHIM_FALLBACK=refuse", "no_proxy=*")
	out := filepath.Join(dir, "blob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sS", "--fail", "-o", out, fmt.Sprintf("http://127.0.0.1:%d/blob", webPort))
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl under the shim: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil || sha256.Sum256(got) != want {
		t.Fatalf("curl's download through the shim and POOL: %d bytes, SHA-256 match %v (%v)", len(got), sha256.Sum256(got) == want, err)
	}

	// It went over POOL: B's shim route counted it (nothing was direct:
	// the fallback is refuse, and A's bridge connected it).
	var rows []node.BridgeRoute
	if err := node.Call(ctx, filepath.Join(dir, "b.sock"), "bridge.status", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Side != "shim" || rows[0].Conns == 0 || rows[0].BytesDown < uint64(len(blob)) {
		t.Errorf("B's shim route after the download: %+v", rows)
	}

	if redisPort == 0 {
		t.Log("redis-server/redis-cli not installed: the redis-cli part is skipped")
		return
	}
	rc := exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(redisPort), "SET", "pool", "shim")
	rc.Env = env
	if b, err := rc.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "OK" {
		t.Fatalf("redis-cli SET under the shim: %q, %v", b, err)
	}
	rc = exec.CommandContext(ctx, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(redisPort), "GET", "pool")
	rc.Env = env
	if b, err := rc.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "shim" {
		t.Fatalf("redis-cli GET under the shim: %q, %v", b, err)
	}
}
