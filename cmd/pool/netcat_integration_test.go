//go:build integration

package main

import (
	"bufio"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The netcat integration tests run the real pool binary as two processes
// on loopback, as a user would in two shells. They are built with the
// "integration" tag and run without -race (make integration).

// ncBuild builds the pool command into dir and returns its path.
func ncBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pool")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pool")
	cmd.Dir = filepath.Join("..", "..") // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ncIntegrationSetup is a freshly built pool binary, three identities
// made with "pool keygen" (server, client, stranger) and an authorized
// file listing only the client's key.
type ncIntegrationSetup struct {
	bin, dir                    string
	serverKey, clientKey        string // identity files
	serverPub, clientPub        string // public keys as keygen printed them
	authorized, strangerKeyFile string
	strangerPub                 string
}

func ncNewIntegrationSetup(t *testing.T) *ncIntegrationSetup {
	t.Helper()
	s := &ncIntegrationSetup{dir: t.TempDir()}
	s.bin = ncBuild(t, s.dir)
	bin := s.bin
	keygen := func(name string) (file, pub string) {
		file = filepath.Join(s.dir, name)
		out, err := exec.Command(bin, "keygen", "--out", file).Output()
		if err != nil {
			t.Fatalf("pool keygen: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if k, ok := strings.CutPrefix(line, "public key: "); ok {
				return file, k
			}
		}
		t.Fatalf("pool keygen printed no public key:\n%s", out)
		return "", ""
	}
	s.serverKey, s.serverPub = keygen("server.key")
	s.clientKey, s.clientPub = keygen("client.key")
	s.strangerKeyFile, s.strangerPub = keygen("stranger.key")
	s.authorized = filepath.Join(s.dir, "authorized")
	if err := os.WriteFile(s.authorized, []byte(s.clientPub+" the client\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// ncProcess is a running pool process.
type ncProcess struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan error
	start  time.Time
}

func (s *ncIntegrationSetup) start(t *testing.T, stdin, stdout string, args ...string) *ncProcess {
	t.Helper()
	p := &ncProcess{cmd: exec.Command(s.bin, args...), done: make(chan error, 1)}
	p.cmd.Stderr = &p.stderr
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // the child has its own descriptor
		p.cmd.Stdin = f
	}
	if stdout != "" {
		f, err := os.Create(stdout)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p.cmd.Stdout = f
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit status and how long the process ran, failing the
// test if it runs longer than d.
func (p *ncProcess) wait(t *testing.T, d time.Duration) (int, time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return p.cmd.ProcessState.ExitCode(), time.Since(p.start)
	case <-time.After(d):
		t.Fatalf("%s still running after %v; stderr so far:\n%s", strings.Join(p.cmd.Args, " "), d, p.stderr.String())
		return -1, 0
	}
}

// listen starts "pool listen" on a free loopback port and returns it
// with the address it announced.
func (s *ncIntegrationSetup) listen(t *testing.T, stdout string, args ...string) (*ncProcess, string) {
	t.Helper()
	p := s.start(t, "", stdout, append([]string{"listen", "--listen", "127.0.0.1:0", "--identity", s.serverKey}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := ncListeningRE.FindStringSubmatch(p.stderr.String()); m != nil {
			return p, m[1]
		}
		select {
		case <-p.done:
			p.done <- nil
			t.Fatalf("listen exited before listening:\n%s", p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("listen did not announce its address:\n%s", p.stderr.String())
	return nil, ""
}

func ncFileSHA256(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil)), n
}

// ncWriteRandomFile writes size pseudo-random bytes (ChaCha8) to path.
func ncWriteRandomFile(t *testing.T, path string, size int64, seed byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{seed}), size); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The acceptance test: keygen twice, listen in one "shell",
// connect in another, 200 MB random file, SHA-256 equal at the far end.
func TestNetcatIntegration200MB(t *testing.T) {
	const size = 200_000_000
	s := ncNewIntegrationSetup(t)
	in, out := filepath.Join(s.dir, "in.bin"), filepath.Join(s.dir, "out.bin")
	ncWriteRandomFile(t, in, size, 1)
	lp, addr := s.listen(t, out, "--authorized", s.authorized)
	cp := s.start(t, in, os.DevNull, "connect", "--identity", s.clientKey, "--peer", s.serverPub, "--progress", addr)
	code, elapsed := cp.wait(t, 2*time.Minute)
	if code != 0 {
		t.Errorf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	if code, _ := lp.wait(t, 30*time.Second); code != 0 {
		t.Errorf("listen: exit %d:\n%s", code, lp.stderr.String())
	}
	inSum, _ := ncFileSHA256(t, in)
	outSum, n := ncFileSHA256(t, out)
	if n != size || outSum != inSum {
		t.Fatalf("received %d bytes, want %d; SHA-256 %x, want %x", n, size, outSum, inSum)
	}
	progress := cp.stderr.String()
	if i := strings.LastIndex(progress, "\r"); i >= 0 {
		progress = progress[i+1:]
	}
	t.Logf("200 MB (%d bytes) in %v including process start and handshake: %.1f MB/s (%.0f Mbit/s); SHA-256 %x matches",
		n, elapsed.Round(time.Millisecond), float64(n)/1e6/elapsed.Seconds(), float64(n)*8/1e6/elapsed.Seconds(), outSum[:8])
	t.Logf("connect's own progress line: %s", strings.TrimSpace(progress))
}

// A wrong --peer key: both processes exit non-zero quickly, naming the cause.
func TestNetcatIntegrationWrongPeer(t *testing.T) {
	s := ncNewIntegrationSetup(t)
	in := filepath.Join(s.dir, "in.bin")
	ncWriteRandomFile(t, in, 1<<20, 2)
	lp, addr := s.listen(t, os.DevNull, "--authorized", s.authorized)
	cp := s.start(t, in, os.DevNull, "connect", "--identity", s.clientKey, "--peer", s.strangerPub, addr)
	if code, el := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "wrong --peer key?") {
		t.Errorf("connect: exit %d after %v, stderr:\n%s", code, el, cp.stderr.String())
	}
	if code, el := lp.wait(t, 10*time.Second); code != 1 || !strings.Contains(lp.stderr.String(), "the client pinned another key") {
		t.Errorf("listen: exit %d after %v, stderr:\n%s", code, el, lp.stderr.String())
	}
}

// An identity missing from --authorized: both exit non-zero quickly, naming the cause.
func TestNetcatIntegrationUnauthorized(t *testing.T) {
	s := ncNewIntegrationSetup(t)
	in := filepath.Join(s.dir, "in.bin")
	ncWriteRandomFile(t, in, 1<<20, 3)
	lp, addr := s.listen(t, os.DevNull, "--authorized", s.authorized)
	cp := s.start(t, in, os.DevNull, "connect", "--identity", s.strangerKeyFile, "--peer", s.serverPub, addr)
	if code, el := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "authorized peers") {
		t.Errorf("connect: exit %d after %v, stderr:\n%s", code, el, cp.stderr.String())
	}
	if code, el := lp.wait(t, 10*time.Second); code != 1 ||
		!strings.Contains(lp.stderr.String(), "client identity not authorized: "+s.strangerPub) {
		t.Errorf("listen: exit %d after %v, stderr:\n%s", code, el, lp.stderr.String())
	}
}

// The listening process is killed mid-transfer: connect says the peer
// vanished and exits 1 at once.
func TestNetcatIntegrationPeerKilled(t *testing.T) {
	s := ncNewIntegrationSetup(t)
	in := filepath.Join(s.dir, "in.bin")
	ncWriteRandomFile(t, in, 256<<20, 4) // more than can move before the kill
	lp, addr := s.listen(t, os.DevNull, "--authorized", s.authorized)
	cp := s.start(t, in, os.DevNull, "connect", "--identity", s.clientKey, "--peer", s.serverPub, addr)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(lp.stderr.String(), "session from") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	lp.cmd.Process.Kill()
	killed := time.Now()
	code, _ := cp.wait(t, 10*time.Second)
	if code != 1 || !strings.Contains(cp.stderr.String(), "peer vanished before confirming delivery") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, cp.stderr.String())
	}
	t.Logf("connect exited %v after the kill: %s", time.Since(killed).Round(time.Millisecond), lastLine(cp.stderr.String()))
}
