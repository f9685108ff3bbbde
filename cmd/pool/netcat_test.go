package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/testutil"
	"github.com/pool-go/pool/internal/wire"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it
// (the netcat and node tests share it).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ncSink hashes and counts what a command writes to stdout; failAfter > 0
// makes writes fail once that many bytes have arrived.
type ncSink struct {
	mu        sync.Mutex
	h         hash.Hash
	n         atomic.Int64
	failAfter int64
}

func ncNewSink() *ncSink { return &ncSink{h: sha256.New()} }

func (s *ncSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAfter > 0 && s.n.Load()+int64(len(p)) > s.failAfter {
		return 0, errors.New("disk full (test)")
	}
	s.h.Write(p)
	s.n.Add(int64(len(p)))
	return len(p), nil
}

func (s *ncSink) sum() [32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return [32]byte(s.h.Sum(nil))
}

func ncData(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// ncKeys are identity files in a temporary directory: a server, a client
// it authorizes, and a stranger.
type ncKeys struct {
	server, client, stranger       string // identity files
	serverKey, clientKey, stranKey pool.PublicKey
	serverAddr                     pool.Address
	authorized                     string // lists clientKey only
}

func ncNewKeys(t *testing.T) *ncKeys {
	t.Helper()
	dir := t.TempDir()
	k := &ncKeys{authorized: filepath.Join(dir, "authorized")}
	// One with "pool keygen", as a user would; the others with the API.
	k.server = filepath.Join(dir, "server.key")
	if code, _, errOut := runCmd(t, "keygen", "--out", k.server); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	id, err := pool.LoadIdentity(k.server)
	if err != nil {
		t.Fatal(err)
	}
	k.serverKey, k.serverAddr = id.Public, pool.NewAddress(id.Public, 0, 0)
	gen := func(name string) (string, pool.PublicKey) {
		id, err := pool.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := id.Save(path, false); err != nil {
			t.Fatal(err)
		}
		return path, id.Public
	}
	k.client, k.clientKey = gen("client.key")
	k.stranger, k.stranKey = gen("stranger.key")
	if err := os.WriteFile(k.authorized, []byte("# test clients\n"+k.clientKey.String()+" client\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// ncProc is a command running in-process.
type ncProc struct {
	stderr syncBuffer
	done   chan int
	start  time.Time
}

func ncStart(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) *ncProc {
	p := &ncProc{done: make(chan int, 1), start: time.Now()}
	go func() { p.done <- run(ctx, args, stdin, stdout, &p.stderr) }()
	return p
}

// wait returns the exit status, failing the test if the command runs
// longer than d.
func (p *ncProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(d):
		t.Fatalf("command still running after %v; stderr so far:\n%s", d, p.stderr.String())
		return -1
	}
}

var ncListeningRE = regexp.MustCompile(`listening on (\S+) as (\S+)`)

// ncListen starts "pool listen" on a free loopback port and returns it
// with the address it announced on stderr.
func ncListen(t *testing.T, ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (*ncProc, string) {
	t.Helper()
	args = append([]string{"listen", "--listen", "127.0.0.1:0"}, args...)
	p := ncStart(ctx, args, stdin, stdout)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := ncListeningRE.FindStringSubmatch(p.stderr.String()); m != nil {
			return p, m[1]
		}
		select {
		case code := <-p.done:
			t.Fatalf("listen exited with %d before listening:\n%s", code, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("listen did not announce its address:\n%s", p.stderr.String())
	return nil, ""
}

func TestNetcatBothWays(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	up, down := ncData(1, 3<<20+123), ncData(2, 2<<20+7)
	srvOut, cliOut := ncNewSink(), ncNewSink()
	lp, addr := ncListen(t, ctx, bytes.NewReader(down), srvOut,
		"--identity", k.server, "--authorized", k.authorized, "--progress")
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), "--quiet", addr},
		bytes.NewReader(up), cliOut)
	if code := cp.wait(t, 30*time.Second); code != 0 {
		t.Errorf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("listen: exit %d:\n%s", code, lp.stderr.String())
	}
	if srvOut.n.Load() != int64(len(up)) || srvOut.sum() != sha256.Sum256(up) {
		t.Errorf("server received %d bytes, want %d, or their SHA-256 differs", srvOut.n.Load(), len(up))
	}
	if cliOut.n.Load() != int64(len(down)) || cliOut.sum() != sha256.Sum256(down) {
		t.Errorf("client received %d bytes, want %d, or their SHA-256 differs", cliOut.n.Load(), len(down))
	}
	if s := cp.stderr.String(); s != "" {
		t.Errorf("connect --quiet wrote to stderr: %q", s)
	}
	errOut := lp.stderr.String()
	for _, want := range []string{
		"listening on " + addr + " as " + k.serverKey.String(),
		"address " + k.serverAddr.String(),
		"session from " + k.clientKey.String() + " at 127.0.0.1:",
		fmt.Sprintf("sent %s, received %s in ", ncBytes(int64(len(down))), ncBytes(int64(len(up)))),
		"MB/s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("listen's stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestNetcatChannel(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	data := ncData(3, 1<<20)
	out := ncNewSink()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), out,
		"--identity", k.server, "--allow-any", "--channel", "7")
	cp := ncStart(ctx, []string{"connect", "--identity", k.stranger, "--peer", k.serverKey.String(), "--channel", "7", addr},
		bytes.NewReader(data), io.Discard)
	if code := cp.wait(t, 20*time.Second); code != 0 {
		t.Errorf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("listen: exit %d:\n%s", code, lp.stderr.String())
	}
	if out.sum() != sha256.Sum256(data) {
		t.Errorf("channel 7: received %d bytes that do not match", out.n.Load())
	}

	// Different channels: both fail, and say so.
	lp, addr = ncListen(t, ctx, bytes.NewReader(nil), io.Discard,
		"--identity", k.server, "--allow-any", "--channel", "7")
	cp = ncStart(ctx, []string{"connect", "--identity", k.stranger, "--peer", k.serverKey.String(), addr},
		bytes.NewReader(data), io.Discard)
	for name, p := range map[string]*ncProc{"connect": cp, "listen": lp} {
		if code := p.wait(t, 10*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "--channel must match") {
			t.Errorf("%s on another channel: exit %d, stderr:\n%s", name, code, p.stderr.String())
		}
	}
}

func TestNetcatByAddress(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	out := ncNewSink()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), out, "--identity", k.server, "--allow-any")
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverAddr.String(), addr},
		strings.NewReader("hello\n"), io.Discard)
	if code := cp.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	lp.wait(t, 10*time.Second)
	errOut := cp.stderr.String()
	if !strings.Contains(errOut, "warning: --peer is an address: only its 64-bit node ID was checked") ||
		!strings.Contains(errOut, "pin it next time with --peer "+k.serverKey.String()) {
		t.Errorf("no TOFU warning with the server's key:\n%s", errOut)
	}
	if out.n.Load() != 6 {
		t.Errorf("server received %d bytes, want 6", out.n.Load())
	}
}

// A client that pinned another key: both sides fail fast and say why.
func TestNetcatWrongPeerKey(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	for _, peer := range []string{k.stranKey.String(), pool.NewAddress(k.stranKey, 0, 0).String()} {
		lp, addr := ncListen(t, ctx, bytes.NewReader(nil), io.Discard, "--identity", k.server, "--authorized", k.authorized)
		cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", peer, addr},
			bytes.NewReader(ncData(4, 1<<20)), io.Discard)
		code := cp.wait(t, 5*time.Second)
		if el := time.Since(cp.start); el > 5*time.Second {
			t.Errorf("connect took %v to fail", el)
		}
		if errOut := cp.stderr.String(); code != 1 || !strings.Contains(errOut, "not the identity we pinned (wrong --peer key?)") {
			t.Errorf("connect --peer %s: exit %d, stderr:\n%s", peer, code, errOut)
		}
		code = lp.wait(t, 5*time.Second)
		if errOut := lp.stderr.String(); code != 1 || !strings.Contains(errOut, "pool: refused connection from 127.0.0.1:") ||
			!strings.Contains(errOut, "INIT names another server identity") || !strings.Contains(errOut, "the client pinned another key") {
			t.Errorf("listen: exit %d, stderr:\n%s", code, errOut)
		}
	}
}

// A client not in --authorized: both sides fail fast and say why.
func TestNetcatUnauthorized(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), io.Discard, "--identity", k.server, "--authorized", k.authorized)
	cp := ncStart(ctx, []string{"connect", "--identity", k.stranger, "--peer", k.serverKey.String(), addr},
		bytes.NewReader(ncData(5, 1<<20)), io.Discard)
	code := cp.wait(t, 5*time.Second)
	if errOut := cp.stderr.String(); code != 1 || !strings.Contains(errOut, "refused the handshake") ||
		!strings.Contains(errOut, "authorized peers") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, errOut)
	}
	code = lp.wait(t, 5*time.Second)
	if errOut := lp.stderr.String(); code != 1 ||
		!strings.Contains(errOut, "client identity not authorized: "+k.stranKey.String()+" (not in "+k.authorized+")") {
		t.Errorf("listen: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestNetcatUsage(t *testing.T) {
	k := ncNewKeys(t)
	key := k.serverKey.String()
	for _, args := range [][]string{
		{"listen", "--identity", k.server},
		{"listen", "--identity", k.server, "--allow-any", "--authorized", k.authorized},
		{"listen", "--allow-any"},
		{"listen", "--identity", k.server, "--allow-any", "--channel", "256"},
		{"listen", "--identity", k.server, "--allow-any", "extra"},
		{"listen", "--identity", k.server, "--allow-any", "--listen", ""},
		{"listen", "--identity", k.server, "--allow-any", "--bogus"},
		{"connect", "--identity", k.client, "127.0.0.1"},
		{"connect", "--identity", k.client, "--peer", "not-a-key", "127.0.0.1"},
		{"connect", "--identity", k.client, "--peer", "pool:1234", "127.0.0.1"},
		{"connect", "--identity", k.client, "--peer", key},
		{"connect", "--identity", k.client, "--peer", key, "a", "b"},
		{"connect", "--peer", key, "127.0.0.1"},
		{"connect", "--identity", k.client, "--peer", key, "--channel", "-1", "127.0.0.1"},
		{"connect", "--identity", k.client, "--peer", key, "--timeout", "0s", "127.0.0.1"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.HasPrefix(errOut.String(), "pool: ") || !strings.Contains(errOut.String(), "--help") {
			t.Errorf("pool %s: exit %d, stdout %q, stderr %q; want exit 2 and a usage message",
				strings.Join(args, " "), code, out.String(), errOut.String())
		}
	}
}

func TestNetcatFileErrors(t *testing.T) {
	k := ncNewKeys(t)
	missing := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"listen", "--identity", missing, "--allow-any"}, "pool keygen"},
		{[]string{"listen", "--identity", k.server, "--authorized", missing}, missing},
		{[]string{"connect", "--identity", missing, "--peer", k.serverKey.String(), "127.0.0.1"}, missing},
	}
	if runtime.GOOS != "windows" {
		loose := filepath.Join(t.TempDir(), "loose.key")
		data, _ := os.ReadFile(k.client)
		if err := os.WriteFile(loose, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cases = append(cases,
			struct {
				args []string
				want string
			}{[]string{"listen", "--identity", loose, "--allow-any"}, "chmod 600 " + loose},
			struct {
				args []string
				want string
			}{[]string{"connect", "--identity", loose, "--peer", k.serverKey.String(), "127.0.0.1"}, "chmod 600 " + loose})
	}
	for _, c := range cases {
		var errOut bytes.Buffer
		if code := run(context.Background(), c.args, strings.NewReader(""), io.Discard, &errOut); code != 1 ||
			!strings.Contains(errOut.String(), c.want) {
			t.Errorf("pool %s: exit %d, stderr %q; want exit 1 naming %q", strings.Join(c.args, " "), code, errOut.String(), c.want)
		}
	}
}

func TestNetcatPortInUse(t *testing.T) {
	k := ncNewKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"listen", "--identity", k.server, "--allow-any", "--listen", addr},
		strings.NewReader(""), io.Discard, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "cannot listen on "+addr) || !strings.Contains(errOut.String(), "in use") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestNetcatConnectionRefused(t *testing.T) {
	k := ncNewKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := ncStart(context.Background(), []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr},
		strings.NewReader("x"), io.Discard)
	if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "connection refused") {
		t.Errorf("exit %d, stderr %q", code, p.stderr.String())
	}
}

func TestNetcatHandshakeTimeout(t *testing.T) {
	k := ncNewKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ncStart(context.Background(), []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(),
		"--timeout", "300ms", ln.Addr().String()}, strings.NewReader("x"), io.Discard)
	if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "handshake timed out") {
		t.Errorf("exit %d, stderr %q", code, p.stderr.String())
	}
}

// ncEndless is a stdin that never ends: it yields data until closed.
type ncEndless struct {
	closed atomic.Bool
	buf    []byte
}

func (e *ncEndless) Read(p []byte) (int, error) {
	if e.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	time.Sleep(time.Millisecond)
	return copy(p, e.buf), nil
}

// ncWaitBytes waits until s has received at least n bytes while procs run.
func ncWaitBytes(t *testing.T, s *ncSink, n int64, procs ...*ncProc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.n.Load() < n {
		failed := time.Now().After(deadline)
		for _, p := range procs {
			select {
			case code := <-p.done:
				p.done <- code
				failed = true
			default:
			}
		}
		if failed {
			msg := fmt.Sprintf("only %d bytes arrived", s.n.Load())
			for _, p := range procs {
				msg += "\n" + p.stderr.String()
			}
			t.Fatal(msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The connection dies mid-transfer: both sides report the vanished peer,
// and neither hangs.
func TestNetcatPeerVanishes(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	out := ncNewSink()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), out, "--identity", k.server, "--allow-any")
	relay, err := testutil.NewRelay(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	in := &ncEndless{buf: ncData(6, 64<<10)}
	defer in.closed.Store(true)
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), relay.Addr()}, in, io.Discard)
	ncWaitBytes(t, out, 256<<10, lp, cp)
	relay.Cut()
	if code := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "peer vanished before confirming delivery") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 1 || !strings.Contains(lp.stderr.String(), "peer vanished") {
		t.Errorf("listen: exit %d, stderr:\n%s", code, lp.stderr.String())
	}
}

// One side is interrupted (Ctrl-C) while the other still reads an endless
// stdin: the interrupted side tells the other, which stops at once.
func TestNetcatInterrupted(t *testing.T) {
	k := ncNewKeys(t)
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := ncNewSink()
	lp, addr := ncListen(t, lctx, bytes.NewReader(nil), out, "--identity", k.server, "--allow-any")
	in := &ncEndless{buf: ncData(7, 64<<10)}
	defer in.closed.Store(true)
	cp := ncStart(context.Background(), []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr}, in, io.Discard)
	ncWaitBytes(t, out, 256<<10, lp, cp)
	cancel()
	if code := lp.wait(t, 10*time.Second); code != 1 || !strings.Contains(lp.stderr.String(), "pool: interrupted") {
		t.Errorf("listen: exit %d, stderr:\n%s", code, lp.stderr.String())
	}
	if code := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "the peer gave up: interrupted") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, cp.stderr.String())
	}
}

// A receiver whose stdout fails tells the sender, and both exit 1.
func TestNetcatStdoutFails(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	out := ncNewSink()
	out.failAfter = 100 << 10
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), out, "--identity", k.server, "--allow-any")
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr},
		bytes.NewReader(ncData(8, 4<<20)), io.Discard)
	if code := lp.wait(t, 10*time.Second); code != 1 || !strings.Contains(lp.stderr.String(), "writing stdout: disk full") {
		t.Errorf("listen: exit %d, stderr:\n%s", code, lp.stderr.String())
	}
	if code := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "the peer gave up: the receiver could not write its output") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, cp.stderr.String())
	}
}

type ncFailingReader struct{ n int }

func (r *ncFailingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("input/output error (test)")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

// A sender whose stdin fails tells the receiver, and both exit 1.
func TestNetcatStdinFails(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), io.Discard, "--identity", k.server, "--allow-any")
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr},
		&ncFailingReader{n: 300 << 10}, io.Discard)
	if code := cp.wait(t, 10*time.Second); code != 1 || !strings.Contains(cp.stderr.String(), "reading stdin: input/output error") {
		t.Errorf("connect: exit %d, stderr:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 1 || !strings.Contains(lp.stderr.String(), "the peer gave up: the sender could not read its input") {
		t.Errorf("listen: exit %d, stderr:\n%s", code, lp.stderr.String())
	}
}

// Empty input both ways is a complete, successful transfer.
func TestNetcatEmpty(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), io.Discard, "--identity", k.server, "--allow-any")
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr},
		bytes.NewReader(nil), io.Discard)
	if code := cp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("listen: exit %d:\n%s", code, lp.stderr.String())
	}
}

// While a session is served, a second client is turned away, saying why;
// the first transfer is unaffected.
func TestNetcatSecondClientTurnedAway(t *testing.T) {
	k := ncNewKeys(t)
	ctx := context.Background()
	out := ncNewSink()
	lp, addr := ncListen(t, ctx, bytes.NewReader(nil), out, "--identity", k.server, "--allow-any")
	pr, pw := io.Pipe()
	defer pr.Close()
	first := ncData(9, 512<<10)
	cp := ncStart(ctx, []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), addr}, pr, io.Discard)
	if _, err := pw.Write(first[:256<<10]); err != nil {
		t.Fatal(err)
	}
	ncWaitBytes(t, out, 256<<10, lp, cp)
	second := ncStart(ctx, []string{"connect", "--identity", k.stranger, "--peer", k.serverKey.String(), addr},
		strings.NewReader("intruder"), io.Discard)
	if code := second.wait(t, 10*time.Second); code != 1 || !strings.Contains(second.stderr.String(), "busy: this pool listen serves one session") {
		t.Errorf("second client: exit %d, stderr:\n%s", code, second.stderr.String())
	}
	if _, err := pw.Write(first[256<<10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := cp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("connect: exit %d:\n%s", code, cp.stderr.String())
	}
	if code := lp.wait(t, 10*time.Second); code != 0 {
		t.Errorf("listen: exit %d:\n%s", code, lp.stderr.String())
	}
	if out.sum() != sha256.Sum256(first) {
		t.Errorf("server received %d bytes that do not match", out.n.Load())
	}
}

// A server that speaks only another protocol version: connect says so.
func TestNetcatVersionRefused(t *testing.T) {
	k := ncNewKeys(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		init := make([]byte, wire.InitLen)
		if _, err := io.ReadFull(c, init); err != nil {
			return
		}
		c.Write(wire.AppendVersionClose(nil, [8]byte(init[4:12]), 1<<2)) // version 2 only
		io.Copy(io.Discard, c)
	}()
	p := ncStart(context.Background(), []string{"connect", "--identity", k.client, "--peer", k.serverKey.String(), ln.Addr().String()},
		strings.NewReader("x"), io.Discard)
	if code := p.wait(t, 5*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "server does not speak this protocol version") {
		t.Errorf("exit %d, stderr %q", code, p.stderr.String())
	}
}
