//go:build integration

package shimd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real programs under the shim, unmodified: each is pointed at a TEST-NET
// address (192.0.2.1) that only the shim can reach, since shimd's fake router
// sends it to a server on loopback.

func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s; .ci/run installs it): skipping", name, pkg)
	}
	return p
}

// shimEnv returns the environment of a program run under the shim, without
// the proxy variables that would send curl elsewhere.
func shimEnv(lib, socket, ports string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LD_PRELOAD="+lib, "POOL_SHIM_SOCKET="+socket, "POOL_SHIM_PORTS="+ports, "POOL_SHIM_FALLBACK=refuse")
}

func run(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestShimCurlIntegration: curl downloads a file over the shim, and its
// SHA-256 matches.
func TestShimCurlIntegration(t *testing.T) {
	curl := needProgram(t, "curl", "curl")
	lib, _ := buildShim(t)
	blob := make([]byte, 32<<20)
	rand.Read(blob)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	d := &mapDialer{to: ln.Addr().(*net.TCPAddr).AddrPort()}
	s := startServer(t, Config{Dialer: d})
	out := filepath.Join(t.TempDir(), "blob")
	env := shimEnv(lib, s.Path(), "80,6379,5432")
	run(t, env, curl, "-sS", "--fail", "--max-time", "60", "-o", out, "http://192.0.2.1/blob")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(blob) {
		t.Fatalf("downloaded %d bytes whose SHA-256 differs from the served %d", len(got), len(blob))
	}
	// And a second request: a range, over a new connection.
	part := run(t, env, curl, "-sS", "--fail", "--max-time", "30", "-r", "1000-1999", "http://192.0.2.1/blob")
	if !bytes.Equal(part, blob[1000:2000]) {
		t.Fatalf("range request returned %d bytes that differ", len(part))
	}
	if asks := d.asked(); len(asks) != 2 || asks[0] != netip.MustParseAddrPort("192.0.2.1:80") {
		t.Errorf("router asked for %v", asks)
	}
}

// TestShimRedisIntegration: redis-cli (and redis-benchmark, when present)
// talk to a redis-server through the shim.
func TestShimRedisIntegration(t *testing.T) {
	server := needProgram(t, "redis-server", "redis-server")
	cli := needProgram(t, "redis-cli", "redis-tools")
	lib, _ := buildShim(t)

	port := freePort(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	rs := exec.CommandContext(ctx, server, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "no")
	logPath := filepath.Join(dir, "redis.log")
	rlog, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rlog.Close()
	rs.Stdout, rs.Stderr = rlog, rlog
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); rs.Wait() }()
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	waitListening(t, target, logPath)

	d := &mapDialer{to: target}
	s := startServer(t, Config{Dialer: d})
	env := shimEnv(lib, s.Path(), "80,6379,5432")
	if out := run(t, env, cli, "-h", "192.0.2.1", "-p", "6379", "SET", "pool", "shimmed"); strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("SET answered %q", out)
	}
	if out := run(t, env, cli, "-h", "192.0.2.1", "-p", "6379", "GET", "pool"); strings.TrimSpace(string(out)) != "shimmed" {
		t.Fatalf("GET answered %q", out)
	}
	if bench, err := exec.LookPath("redis-benchmark"); err == nil {
		// Its event loop connects 20 clients with non-blocking connects.
		out := run(t, env, bench, "-h", "192.0.2.1", "-p", "6379", "-c", "20", "-n", "20000", "-t", "set,get", "-q")
		if !strings.Contains(string(out), "SET") || !strings.Contains(string(out), "GET") {
			t.Fatalf("redis-benchmark printed %q", out)
		}
	}
	if n := s.Stats().Connected; n < 2 {
		t.Errorf("shimd relayed %d connections, want at least 2", n)
	}
	for _, a := range d.asked() {
		if a != netip.MustParseAddrPort("192.0.2.1:6379") {
			t.Errorf("router asked for %v", a)
		}
	}
}

func freePort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

func waitListening(t *testing.T, a netip.AddrPort, logPath string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", a.String(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	out, _ := os.ReadFile(logPath)
	t.Fatalf("nothing listens on %v after 5 s; server output:\n%s", a, out)
}
