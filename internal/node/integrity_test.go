package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/selftest"
)

// The tests here corrupt a known-answer test through selftest's
// process-wide hook; none of this package's tests runs in parallel.

// syncBuffer is a bytes.Buffer safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartRefusedWhenKATFails: a node whose primitive gives a wrong
// answer does not start, says which primitive, and leaves nothing behind.
func TestStartRefusedWhenKATFails(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	control := filepath.Join(dir, "control.sock")
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nallow_any = true\ncontrol = %q\n", key, control)))
	if err != nil {
		t.Fatal(err)
	}
	var alert syncBuffer
	restore := selftest.CorruptForTest(selftest.PrimChaChaPoly)
	n, err := Start(cfg, Options{Logger: testLogger(), Alert: &alert})
	restore()
	if err == nil {
		shutdown(t, n)
		t.Fatal("a node with a failing known-answer test started")
	}
	for _, w := range []string{"refusing to start", "self-test failed", "known-answer test of ChaCha20-Poly1305 failed",
		"RFC 8439", "SELF-TESTS AND THE COMPROMISED STATE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
	if !errors.Is(err, ErrSelftestFailed) {
		t.Errorf("error %q does not wrap ErrSelftestFailed", err)
	}
	if _, err := os.Stat(control); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket created by a node that refused to start: %v", err)
	}
	if alert.String() != "" {
		t.Errorf("a node that never ran alerted: %q", alert.String())
	}

	// Sound again: the same configuration starts.
	n = startNode(t, cfg.File, Options{})
	if st := n.Status(); st.Compromised || st.Integrity.State != IntegrityOK || st.Integrity.SelftestRuns != 1 ||
		st.Integrity.SelftestIntervalS != 60 || st.Integrity.Failures != 0 {
		t.Errorf("status of a sound node: %+v", st.Integrity)
	}
}

// TestNodeCompromised: a running node whose periodic self-test fails
// alerts, shows it in status and peers, refuses new inbound sessions,
// does not redial its peer, and leaves its established sessions up.
func TestNodeCompromised(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	_, cID := newKeyFile(t, dir, "c.key")

	// A listens and authorizes B; its self-tests run every minute, so
	// they do not run again during the test and A stays sound.
	allowB := writeFile(t, filepath.Join(dir, "allow_b"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowB)
	a := startNode(t, aPath, Options{})

	// B listens (authorizing C), keeps a session to A, and repeats its
	// self-tests every second (the shortest selftest_interval).
	allowC := writeFile(t, filepath.Join(dir, "allow_c"), cID.Public.String()+"\n")
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", a.ListenAddr().String(), aID.Public})
	bText = strings.Replace(bText, `listen = "off"`, fmt.Sprintf("listen = \"127.0.0.1:0\"\nauthorized_peers = %q\nselftest_interval = \"1s\"", allowC), 1)
	bCfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "b.toml"), bText))
	if err != nil {
		t.Fatal(err)
	}
	var alert, logBuf syncBuffer
	b, err := Start(bCfg, Options{Alert: &alert,
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, b) })
	bAddr := b.ListenAddr().String()

	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cCfg := &pool.Config{Identity: cID}
	cs, err := pool.Dial(ctx, bAddr, bID.Public, cCfg)
	if err != nil {
		t.Fatalf("C's session to the sound B: %v", err)
	}
	defer cs.Close()
	waitFor(t, 5*time.Second, "B lists C's session", func() bool { return len(b.Sessions()) == 2 })
	if st := b.Status(); st.Compromised || st.Integrity.State != IntegrityOK || st.Integrity.SelftestRuns < 1 {
		t.Fatalf("B before the fault: %+v", st.Integrity)
	}

	// A primitive starts answering wrongly; B's next round catches it.
	restore := selftest.CorruptForTest(selftest.PrimHMAC)
	// The state is set first (refusing sessions comes before alerting),
	// then the alert is written and logged.
	waitFor(t, 5*time.Second, "B compromised and alerting", func() bool {
		return b.Status().Compromised && alert.String() != "" && strings.Contains(logBuf.String(), "level=ERROR")
	})
	restore() // "recovers": B must stay compromised all the same
	before := time.Now()

	st := b.Status()
	in := st.Integrity
	if in.State != IntegrityCompromised || !strings.Contains(in.Reason, "known-answer test of HMAC-SHA256 failed") ||
		in.Since.IsZero() || in.Failures != 1 || in.SelftestIntervalS != 1 || in.SelftestRuns < 2 {
		t.Errorf("B's integrity: %+v", in)
	}
	if a := alert.String(); !strings.HasPrefix(a, "POOL NODE COMPROMISED at ") || !strings.Contains(a, in.Reason) ||
		strings.Count(a, "\n") != 1 || !strings.Contains(a, "refuses every new session") {
		t.Errorf("alert %q", a)
	}
	if l := logBuf.String(); !strings.Contains(l, "level=ERROR msg=\"node compromised: a runtime integrity self-test failed") ||
		!strings.Contains(l, "HMAC-SHA256") {
		t.Errorf("no ERROR line in B's log:\n%s", l)
	}

	// New inbound sessions are refused, at once and without a word.
	start := time.Now()
	if s, err := pool.Dial(ctx, bAddr, bID.Public, cCfg); err == nil {
		s.Close()
		t.Error("the compromised B accepted a new session")
	} else if !errors.Is(err, pool.ErrNoChallenge) || time.Since(start) > 5*time.Second {
		t.Errorf("Dial to the compromised B: %v after %v", err, time.Since(start))
	}
	if n := b.Status().Handshakes.RefusedCompromised; n != 1 {
		t.Errorf("refused_compromised = %d, want 1", n)
	}

	// Established sessions are left alone.
	if len(b.Sessions()) != 2 || peerByName(b, "a").State != StateConnected {
		t.Fatalf("B's sessions after the fault: %+v", b.Sessions())
	}
	select {
	case <-cs.Done():
		t.Errorf("C's established session ended: %v", cs.Err())
	default:
	}

	// A ends its session with B (A is sound and still authorizes B): B
	// does not dial A again.
	challenges := a.Status().Handshakes.Challenges
	a.mu.Lock()
	for s := range a.sessions {
		go s.Close()
	}
	a.mu.Unlock()
	waitFor(t, 5*time.Second, "B parks its dialer", func() bool { return peerByName(b, "a").State == StateCompromised })
	time.Sleep(500 * time.Millisecond) // over twice reconnect_max
	p := peerByName(b, "a")
	if p.State != StateCompromised || p.Attempts != 1 || p.Disconnects != 1 ||
		!strings.HasPrefix(p.LastError, "not dialing: this node failed a runtime integrity self-test (known-answer test of HMAC-SHA256") {
		t.Errorf("B's peer a: %+v", p)
	}
	if got := a.Status().Handshakes.Challenges; got != challenges {
		t.Errorf("A sent %d CHALLENGEs to the compromised B", got-challenges)
	}

	// A peer added by a reload is not dialed either; the state survives.
	writeFile(t, bCfg.File, bText+fmt.Sprintf("\n[[peer]]\nname = \"c\"\naddress = %q\nkey = %q\n", a.ListenAddr(), cID.Public))
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new peer parked", func() bool { return peerByName(b, "c").State == StateCompromised })
	if p := peerByName(b, "c"); p.Attempts != 0 {
		t.Errorf("B dialed the new peer: %+v", p)
	}
	if st := b.Status(); !st.Compromised || st.Integrity.Since != in.Since || st.Integrity.SelftestRuns != in.SelftestRuns {
		t.Errorf("B's integrity changed after the primitive recovered (%v ago): %+v", time.Since(before), st.Integrity)
	}
	if strings.Count(alert.String(), "\n") != 1 {
		t.Errorf("alerted more than once: %q", alert.String())
	}
}

// TestSelftestIntervalFrozen: selftest_interval needs a restart.
func TestSelftestIntervalFrozen(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	text := fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, filepath.Join(dir, "n.sock"))
	path := writeFile(t, filepath.Join(dir, "n.toml"), text)
	n := startNode(t, path, Options{})
	writeFile(t, path, text+"selftest_interval = \"30s\"\n")
	if _, err := n.Reload(); err == nil || !strings.Contains(err.Error(), "selftest_interval (1m0s -> 30s) cannot change") {
		t.Errorf("reload changing selftest_interval: %v", err)
	}
}
