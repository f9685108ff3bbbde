//go:build integration

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/bridge"
)

// The bridge acceptance tests (issue 7): real programs — curl and nginx,
// pgbench and PostgreSQL, redis-benchmark and redis-server — talk through
// "pool bridge tcp2pool" → "pool bridge pool2tcp", each a separate pool
// process, on loopback. Each test starts its own server with its own
// temporary configuration, and skips, saying what is missing, when the
// Debian program is not installed (.ci/run installs them).

var bridgeListenRE = regexp.MustCompile(`listening" listen=(\S+)`)

// needProgram returns the path of a program, or skips the test.
func needProgram(t *testing.T, name string, where ...string) string {
	t.Helper()
	for _, dir := range where {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package; .ci/run installs it): skipping", name)
	}
	return p
}

// freeLoopbackPort returns a port that was free a moment ago, for servers
// (nginx, postgres, redis) that cannot report the port they picked.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until something accepts connections on addr.
func waitTCP(t *testing.T, addr string, p *exec.Cmd, log func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if p != nil && p.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 30 s:\n%s", addr, log())
}

// bridgeUp starts pool2tcp (to target) and tcp2pool, both with a control
// socket, and returns tcp2pool's TCP address and the two control paths.
func bridgeUp(t *testing.T, s *ncIntegrationSetup, target string) (addr, ctlIn, ctlOut string) {
	t.Helper()
	ctlOut = filepath.Join(s.dir, "pool2tcp.sock")
	ctlIn = filepath.Join(s.dir, "tcp2pool.sock")
	srv := s.start(t, "", "", "bridge", "pool2tcp", "--identity", s.serverKey, "--listen", "127.0.0.1:0",
		"--target", target, "--authorized", s.authorized, "--control", ctlOut)
	pport := waitLogged(t, srv, "pool2tcp")
	cli := s.start(t, "", "", "bridge", "tcp2pool", "--identity", s.clientKey, "--listen", "127.0.0.1:0",
		"--peer", s.serverPub, "--control", ctlIn, pport)
	addr = waitLogged(t, cli, "tcp2pool")
	return addr, ctlIn, ctlOut
}

// waitLogged waits for a bridge command's "listening" line and returns
// the address it names (the commands are started on port 0).
func waitLogged(t *testing.T, p *ncProcess, name string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := bridgeListenRE.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited before listening:\n%s", name, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not say where it listens:\n%s", name, p.stderr.String())
	return ""
}

// bridgeStats asks a bridge for its counters with "pool bridge status".
func bridgeStats(t *testing.T, s *ncIntegrationSetup, ctl string, show bool) []bridge.RouteStats {
	t.Helper()
	out, err := exec.Command(s.bin, "bridge", "status", "--control", ctl, "--json").Output()
	if err != nil {
		t.Fatalf("pool bridge status: %v", err)
	}
	var rs []bridge.RouteStats
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("pool bridge status --json: %v\n%s", err, out)
	}
	if !show {
		return rs
	}
	table, err := exec.Command(s.bin, "bridge", "status", "--control", ctl).CombinedOutput()
	if err != nil || !strings.Contains(string(table), "SIDE") {
		t.Fatalf("pool bridge status: %v\n%s", err, table)
	}
	t.Logf("pool bridge status --control %s:\n%s", filepath.Base(ctl), table)
	return rs
}

func checkNoBridgeErrors(t *testing.T, s *ncIntegrationSetup, ctlIn, ctlOut string, minConns uint64) {
	t.Helper()
	// The program has exited; its last connections may still be closing
	// through the bridge, but none may stay open.
	if open := waitBridgesIdle(t, s, ctlIn, ctlOut); open != 0 {
		t.Errorf("%d bridged connections still open 10 s after the program exited", open)
	}
	in := bridgeStats(t, s, ctlIn, true)
	if len(in) != 1 || in[0].Errors != 0 || in[0].Refused != 0 || in[0].Conns < minConns {
		t.Errorf("tcp2pool counters %+v", in)
	}
	for _, r := range bridgeStats(t, s, ctlOut, true) {
		if r.Errors != 0 || r.Refused != 0 {
			t.Errorf("pool2tcp counters %+v", r)
		}
	}
}

// asPostgres runs name as the user "postgres" when we are root (initdb
// and postgres refuse to run as root). It sets the process's credentials
// itself rather than going through runuser, so that signals reach
// postgres directly and its fast shutdown (SIGINT) works.
func asPostgres(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.WaitDelay = 5 * time.Second // never wait for ever on a child's pipes
	if os.Geteuid() != 0 {
		return cmd
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("running as root and there is no user \"postgres\" to run PostgreSQL as: skipping")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER=postgres", "LOGNAME=postgres")
	return cmd
}

// startNginx serves the directory www with nginx on a free loopback port,
// as a single process with its own configuration and prefix under s.dir,
// and returns the process and its address.
func startNginx(t *testing.T, s *ncIntegrationSetup, www string) (*exec.Cmd, string) {
	t.Helper()
	nginx := needProgram(t, "nginx", "/usr/sbin")
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	// master_process off: one process that serves as whoever started it,
	// so the test directory needs no permissions for a worker user.
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	sendfile on;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
	}
}
`, s.dir, port, www)
	confPath := filepath.Join(s.dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ng := exec.Command(nginx, "-p", s.dir, "-c", confPath, "-e", filepath.Join(s.dir, "error.log"))
	var ngOut syncBuffer
	ng.Stdout, ng.Stderr = &ngOut, &ngOut
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ng.Process.Kill(); ng.Wait() })
	target := "127.0.0.1:" + strconv.Itoa(port)
	waitTCP(t, target, ng, func() string {
		b, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
		return ngOut.String() + string(b)
	})
	return ng, target
}

// TestBridgeIntegrationCurlNginx: curl downloads a 1 GiB file from nginx
// through the bridge; the SHA-256 of what curl wrote matches the file's.
func TestBridgeIntegrationCurlNginx(t *testing.T) {
	curl := needProgram(t, "curl")
	needProgram(t, "nginx", "/usr/sbin")
	s := ncNewIntegrationSetup(t)
	www := filepath.Join(s.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	want := writeRandomHashed(t, filepath.Join(www, "big.bin"), size)
	_, target := startNginx(t, s, www)

	addr, ctlIn, ctlOut := bridgeUp(t, s, target)
	start := time.Now()
	cu := exec.Command(curl, "--silent", "--show-error", "--fail", "--max-time", "300", "http://"+addr+"/big.bin")
	var cuErr syncBuffer
	cu.Stderr = &cuErr
	out, err := cu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cu.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := cu.Wait(); err != nil {
		t.Fatalf("curl: %v: %s", err, cuErr.String())
	}
	elapsed := time.Since(start)
	if n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("curl got %d bytes with SHA-256 %x; the file has %d, %s", n, h.Sum(nil), size, want)
	}
	t.Logf("1 GiB through the bridge in %v (%.2f Gbit/s, curl and nginx on the same 2 cores)", elapsed.Round(time.Millisecond), float64(size)*8/elapsed.Seconds()/1e9)
	checkNoBridgeErrors(t, s, ctlIn, ctlOut, 1)
}

// writeRandomHashed writes size pseudo-random bytes to path and returns
// their SHA-256 in hex.
func writeRandomHashed(t *testing.T, path string, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{7}), size); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestBridgeIntegrationPgbench: a 30-second TPC-B load from pgbench
// against a PostgreSQL the test starts itself, through the bridge, with
// no failed transaction and no error.
func TestBridgeIntegrationPgbench(t *testing.T) {
	pgbin := "/usr/lib/postgresql/15/bin"
	initdb := needProgram(t, "initdb", pgbin)
	postgres := needProgram(t, "postgres", pgbin)
	pgbench := needProgram(t, "pgbench", pgbin)
	s := ncNewIntegrationSetup(t)
	pgdir := filepath.Join(s.dir, "pg")
	if err := os.MkdirAll(pgdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no user \"postgres\" to run PostgreSQL as: skipping")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The test directory (and testing's directory above it) is
		// root's, mode 0700; postgres must reach its own part.
		for _, d := range []string{filepath.Dir(s.dir), s.dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(pgdir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(pgdir, "data")
	if out, err := asPostgres(t, initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freeLoopbackPort(t)
	pg := asPostgres(t, postgres, "-D", data, "-k", pgdir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	var pgOut syncBuffer
	pg.Stdout, pg.Stderr = &pgOut, &pgOut
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown.
		pg.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { pg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			pg.Process.Kill()
			<-done
		}
	})
	target := "127.0.0.1:" + strconv.Itoa(port)
	waitTCP(t, target, pg, pgOut.String)

	addr, ctlIn, ctlOut := bridgeUp(t, s, target)
	host, bport, _ := net.SplitHostPort(addr)
	common := []string{"-h", host, "-p", bport, "-U", "postgres"}
	if out, err := exec.Command(pgbench, append(append([]string{"-i", "-s", "2", "-q"}, common...), "postgres")...).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i through the bridge: %v\n%s", err, out)
	}
	out, err := exec.Command(pgbench, append(append([]string{"-c", "8", "-j", "2", "-T", "30", "-P", "10"}, common...), "postgres")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench through the bridge: %v\n%s\npostgres:\n%s", err, out, pgOut.String())
	}
	text := string(out)
	m := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(text)
	if m == nil || m[1] == "0" || !strings.Contains(text, "number of failed transactions: 0 ") {
		t.Fatalf("pgbench reported a problem:\n%s", text)
	}
	if strings.Contains(strings.ToLower(text), "error") {
		t.Fatalf("pgbench printed an error:\n%s", text)
	}
	t.Logf("pgbench through the bridge:\n%s", text)
	checkNoBridgeErrors(t, s, ctlIn, ctlOut, 8)
}

// TestBridgeIntegrationRedisBenchmark: redis-benchmark through the bridge
// against a redis-server the test starts, with no error.
func TestBridgeIntegrationRedisBenchmark(t *testing.T) {
	server := needProgram(t, "redis-server")
	bench := needProgram(t, "redis-benchmark")
	s := ncNewIntegrationSetup(t)
	port := freeLoopbackPort(t)
	rs := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--protected-mode", "no")
	var rsOut syncBuffer
	rs.Stdout, rs.Stderr = &rsOut, &rsOut
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Process.Kill(); rs.Wait() })
	target := "127.0.0.1:" + strconv.Itoa(port)
	waitTCP(t, target, rs, rsOut.String)

	addr, ctlIn, ctlOut := bridgeUp(t, s, target)
	host, bport, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bench, "-h", host, "-p", bport, "-c", "50", "-n", "10000",
		"-t", "ping,set,get,incr,lpush,rpop,sadd,hset,lrange_100", "--csv").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark through the bridge: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(strings.ToLower(text), "error") || !strings.Contains(text, `"SET"`) {
		t.Fatalf("redis-benchmark reported a problem:\n%s", text)
	}
	t.Logf("redis-benchmark through the bridge:\n%s", text)
	checkNoBridgeErrors(t, s, ctlIn, ctlOut, 50)
}

// TestBridgeIntegrationKilledNginx: nginx is killed (SIGKILL) in the
// middle of a download through the bridge; curl's connection must end
// within a second, and curl must report the transfer incomplete.
func TestBridgeIntegrationKilledNginx(t *testing.T) {
	curl := needProgram(t, "curl")
	needProgram(t, "nginx", "/usr/sbin")
	s := ncNewIntegrationSetup(t)
	www := filepath.Join(s.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRandomHashed(t, filepath.Join(www, "big.bin"), 256<<20)
	ng, target := startNginx(t, s, www)
	addr, ctlIn, ctlOut := bridgeUp(t, s, target)

	// 100 MB/s: the transfer lasts about 3 s unless something ends it. What
	// the dead nginx's kernel had buffered still arrives (it closes with a
	// FIN), then the end of stream; the bound below includes that drain.
	cu := exec.Command(curl, "--silent", "--show-error", "--limit-rate", "100M", "--max-time", "60", "http://"+addr+"/big.bin")
	var cuErr syncBuffer
	cu.Stderr = &cuErr
	out, err := cu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cu.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, out, 8<<20); err != nil {
		t.Fatalf("the download did not start: %v: %s", err, cuErr.String())
	}
	drained := make(chan int64, 1)
	go func() { n, _ := io.Copy(io.Discard, out); drained <- n }()
	if err := ng.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	exited := make(chan error, 1)
	go func() { <-drained; exited <- cu.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(killed)
		t.Logf("curl's connection ended %v after nginx was killed (%v: %s)", took.Round(time.Millisecond), err, strings.TrimSpace(cuErr.String()))
		if took > time.Second {
			t.Errorf("curl's connection outlived nginx by %v (more than a second)", took)
		}
		if err == nil {
			t.Errorf("curl reported success for a transfer cut short")
		}
	case <-time.After(30 * time.Second):
		cu.Process.Kill()
		t.Fatalf("curl still running 30 s after nginx was killed")
	}
	// Nothing stays open on either side of the bridge.
	if open := waitBridgesIdle(t, s, ctlIn, ctlOut); open != 0 {
		t.Fatalf("%d bridged connections still open 10 s after the target died", open)
	}
}

// waitBridgesIdle waits up to 10 s for both sides of the bridge to carry
// no connection, and returns how many are still open.
func waitBridgesIdle(t *testing.T, s *ncIntegrationSetup, ctls ...string) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int64
		for _, ctl := range ctls {
			for _, r := range bridgeStats(t, s, ctl, false) {
				open += r.Active
			}
		}
		if open == 0 || time.Now().After(deadline) {
			return open
		}
		time.Sleep(50 * time.Millisecond)
	}
}
