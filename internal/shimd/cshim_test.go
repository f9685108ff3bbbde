package shimd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The C shim (shim/poolshim.c) tested from C (shim/test/shimtest.c) against
// an in-process shimd whose fake router sends every destination to a local
// echo server, or answers "no route" or "refused".

// shimFlags are the Makefile's (target "shim").
var shimFlags = []string{"-O2", "-Wall", "-Wextra", "-Werror"}

// buildShim compiles libpoolshim.so and shimtest into a temporary
// directory, or skips the test when there is no C compiler.
func buildShim(t *testing.T) (lib, prog string) {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler (%s): the LD_PRELOAD shim cannot be built here; install gcc (.ci/run does) to run this test", cc)
	}
	dir := t.TempDir()
	lib = filepath.Join(dir, "libpoolshim.so")
	prog = filepath.Join(dir, "shimtest")
	for _, args := range [][]string{
		append(append([]string{}, shimFlags...), "-fPIC", "-shared", "-o", lib, "../../shim/poolshim.c", "-ldl", "-lpthread"),
		append(append([]string{}, shimFlags...), "-o", prog, "../../shim/test/shimtest.c"),
	} {
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
		}
	}
	return lib, prog
}

// mapDialer serves every destination with a TCP connection to one address
// and records the destinations asked for.
type mapDialer struct {
	to   netip.AddrPort
	mu   sync.Mutex
	asks []netip.AddrPort
}

func (d *mapDialer) DialDestination(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	d.mu.Lock()
	d.asks = append(d.asks, dst)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.to.String())
}

func (d *mapDialer) asked() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.asks...)
}

// runShimtest runs one scenario of shimtest under the shim.
func runShimtest(t *testing.T, lib, prog string, env []string, scenario, host string, port uint16) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, scenario, host, fmt.Sprint(port))
	cmd.Env = append(append(os.Environ(), "LD_PRELOAD="+lib), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("shimtest %s %s %d (%s): %v\n%s", scenario, host, port, strings.Join(env, " "), err, out)
	}
	return string(out)
}

// unixEcho is an echo server on a Unix socket, for the "untouched" case.
func unixEcho(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.UnixConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return path
}

// TestCShim: every scenario of shimtest, each checking the shimd side too
// (which destination the router was asked for, what was counted).
func TestCShim(t *testing.T) {
	lib, prog := buildShim(t)
	echo := startEcho(t)
	echoPort := echo.addr().Port()
	const listed = 6379 // a listed port; the destination 192.0.2.1 (TEST-NET) is reachable only through the shim

	t.Run("through shimd", func(t *testing.T) {
		d := &mapDialer{to: echo.addr()}
		s := startServer(t, Config{Dialer: d})
		env := []string{"POOL_SHIM_SOCKET=" + s.Path(), fmt.Sprintf("POOL_SHIM_PORTS=80,%d,5432", listed)}
		want := 0
		for _, sc := range []struct {
			name, host string
			conns      int
		}{
			{"blocking", "192.0.2.1", 1},
			{"blocking", "2001:db8::1", 1},
			{"nonblock-poll", "192.0.2.1", 1},
			{"select", "192.0.2.1", 1},
			{"epoll", "192.0.2.1", 1},
			{"fork", "192.0.2.1", 2},
			{"dup2", "192.0.2.1", 1},
			{"fastopen", "192.0.2.1", 2},
		} {
			t.Run(sc.name+" "+sc.host, func(t *testing.T) {
				runShimtest(t, lib, prog, env, sc.name, sc.host, listed)
				want += sc.conns
				asks := d.asked()
				if len(asks) != want || asks[len(asks)-1] != netip.AddrPortFrom(netip.MustParseAddr(sc.host), listed) {
					t.Errorf("router asked for %v, want %d asks ending with %s port %d", asks, want, sc.host, listed)
				}
				if st := s.Stats(); st.Connected != uint64(want) {
					t.Errorf("shimd counted %d connected, want %d", st.Connected, want)
				}
			})
		}
	})

	t.Run("port list", func(t *testing.T) {
		// Ranges are expanded; bad entries are reported and skipped.
		d := &mapDialer{to: echo.addr()}
		s := startServer(t, Config{Dialer: d})
		env := []string{"POOL_SHIM_SOCKET=" + s.Path(), "POOL_SHIM_PORTS=junk,70000,6370-6380,0"}
		out := runShimtest(t, lib, prog, env, "blocking", "192.0.2.1", listed)
		for _, bad := range []string{`"junk"`, `"70000"`, `"0"`} {
			if !strings.Contains(out, "ignoring "+bad) {
				t.Errorf("no warning about %s in %q", bad, out)
			}
		}
		if n := s.Stats().Connected; n != 1 {
			t.Errorf("port %d of the range 6370-6380 was not intercepted", listed)
		}
		runShimtest(t, lib, prog, env, "direct", "127.0.0.1", echoPort)
		if n := s.Stats().Accepted; n != 1 {
			t.Errorf("an unlisted port was intercepted")
		}
	})

	t.Run("untouched", func(t *testing.T) {
		s := startServer(t, Config{Dialer: &mapDialer{to: echo.addr()}})
		env := []string{"POOL_SHIM_SOCKET=" + s.Path(), fmt.Sprintf("POOL_SHIM_PORTS=%d", listed),
			"SHIMTEST_UNIX=" + unixEcho(t)}
		// A port not listed, then UDP and a Unix socket to a listed port.
		runShimtest(t, lib, prog, env, "direct", "127.0.0.1", echoPort)
		udpEnv := []string{"POOL_SHIM_SOCKET=" + s.Path(), fmt.Sprintf("POOL_SHIM_PORTS=%d", echoPort)}
		runShimtest(t, lib, prog, udpEnv, "udp", "127.0.0.1", echoPort)
		runShimtest(t, lib, prog, env, "unix", "127.0.0.1", listed)
		if n := s.Stats().Accepted; n != 0 {
			t.Errorf("shimd saw %d connections for destinations the shim must leave alone", n)
		}
	})

	t.Run("fallback", func(t *testing.T) {
		s := startServer(t, Config{Dialer: errDialer{fmt.Errorf("route: %w", ErrNoRoute)}})
		ports := fmt.Sprintf("POOL_SHIM_PORTS=%d", echoPort)
		sock := "POOL_SHIM_SOCKET=" + s.Path()
		// No POOL route: tcp connects directly, refuse (and the default) refuses.
		runShimtest(t, lib, prog, []string{sock, ports, "POOL_SHIM_FALLBACK=tcp"}, "direct", "127.0.0.1", echoPort)
		runShimtest(t, lib, prog, []string{sock, ports, "POOL_SHIM_FALLBACK=refuse"}, "refused", "127.0.0.1", echoPort)
		runShimtest(t, lib, prog, []string{sock, ports}, "refused", "127.0.0.1", echoPort)
		if n := s.Stats().NoRoute; n != 5 {
			t.Errorf("shimd answered no-route %d times, want 5", n)
		}
		// shimd unreachable: the same choice.
		gone := "POOL_SHIM_SOCKET=" + filepath.Join(t.TempDir(), "none.sock")
		runShimtest(t, lib, prog, []string{gone, ports, "POOL_SHIM_FALLBACK=tcp"}, "direct", "127.0.0.1", echoPort)
		runShimtest(t, lib, prog, []string{gone, ports, "POOL_SHIM_FALLBACK=refuse"}, "refused", "127.0.0.1", echoPort)
	})

	t.Run("refused far away", func(t *testing.T) {
		// A route exists but the far side refuses: ECONNREFUSED, never a
		// direct connection, whatever the fallback.
		s := startServer(t, Config{Dialer: errDialer{ErrRefused}})
		env := []string{"POOL_SHIM_SOCKET=" + s.Path(), fmt.Sprintf("POOL_SHIM_PORTS=%d", echoPort), "POOL_SHIM_FALLBACK=tcp"}
		runShimtest(t, lib, prog, env, "refused", "127.0.0.1", echoPort)
		if n := s.Stats().Refused; n != 2 {
			t.Errorf("shimd answered refused %d times, want 2", n)
		}
	})
}
