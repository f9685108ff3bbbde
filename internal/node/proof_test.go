package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/session"
)

// TestNodeCompromisedByInboundProof: an authorized client whose INTEGRITY
// proofs are wrong makes the listening node compromised (draft §17.3): it
// alerts, counts it, names the peer, ends that session, refuses new
// inbound sessions, and leaves its other sessions up.
func TestNodeCompromisedByInboundProof(t *testing.T) {
	dir := t.TempDir()
	_, cID := newKeyFile(t, dir, "c.key")
	_, dID := newKeyFile(t, dir, "d.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), cID.Public.String()+"\n"+dID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	aCfg, err := LoadConfig(aPath)
	if err != nil {
		t.Fatal(err)
	}
	var alert, logBuf syncBuffer
	a, err := Start(aCfg, Options{Alert: &alert,
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, a) })
	aAddr := a.ListenAddr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := pool.Dial(ctx, aAddr, aID.Public, &pool.Config{Identity: cID})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ds, err := pool.Dial(ctx, aAddr, aID.Public, &pool.Config{Identity: dID})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	waitFor(t, 5*time.Second, "A lists both sessions", func() bool { return len(a.Sessions()) == 2 })

	// A sound exchange first: the proof verifies and nothing happens.
	as := nodeSession(a, cID.Public)
	if err := as.VerifyIntegrity(ctx); err != nil {
		t.Fatalf("a sound INTEGRITY check: %v", err)
	}
	if st := a.Status(); st.Compromised || st.Integrity.ProofFailures != 0 {
		t.Fatalf("A after a sound check: %+v", st.Integrity)
	}

	// C's crypto path starts misbehaving: A's next challenge gets a wrong
	// proof.
	session.CorruptIntegrityForTest(cs)
	if err := as.VerifyIntegrity(ctx); !errors.Is(err, pool.ErrIntegrity) {
		t.Fatalf("checking the corrupted peer: %v, want ErrIntegrity", err)
	}
	waitFor(t, 5*time.Second, "A compromised and alerting", func() bool {
		return a.Status().Compromised && alert.String() != "" && len(a.Sessions()) == 1
	})
	st := a.Status()
	in := st.Integrity
	if in.State != IntegrityCompromised || in.Cause != CauseProof || in.ProofFailures != 1 || in.Failures != 0 ||
		!strings.Contains(in.Reason, "INTEGRITY proof mismatch from peer "+cID.Public.String()) ||
		!strings.Contains(in.Reason, "inbound session") || in.Since.IsZero() {
		t.Errorf("A's integrity: %+v", in)
	}
	if al := alert.String(); !strings.HasPrefix(al, "POOL NODE COMPROMISED at ") || !strings.Contains(al, in.Reason) ||
		strings.Count(al, "\n") != 1 {
		t.Errorf("alert %q", al)
	}
	for _, w := range []string{
		`level=ERROR msg="INTEGRITY proof mismatch: a peer answered an INTEGRITY challenge with a wrong proof`,
		`level=ERROR msg="node compromised: a peer answered an INTEGRITY challenge with a wrong proof; refusing every new session`,
		`peer="` + cID.Public.String() + `"`,
	} {
		if !strings.Contains(logBuf.String(), w) {
			t.Errorf("A's log lacks %q:\n%s", w, logBuf.String())
		}
	}
	// The session layer closed C's session with PROTOCOL_ERROR.
	select {
	case <-cs.Done():
		if pc := cs.PeerClosed(); pc == nil || pc.Code != pool.CodeProtocolError || !strings.Contains(pc.Reason, "INTEGRITY proof mismatch") {
			t.Errorf("C's session ended with %v (peer close %v)", cs.Err(), pc)
		}
	case <-time.After(5 * time.Second):
		t.Error("C's session is still up")
	}

	// New inbound sessions are refused, even from a sound, authorized key.
	if s, err := pool.Dial(ctx, aAddr, aID.Public, &pool.Config{Identity: dID}); err == nil {
		s.Close()
		t.Error("the compromised A accepted a new session")
	} else if !errors.Is(err, pool.ErrNoChallenge) {
		t.Errorf("Dial to the compromised A: %v", err)
	}
	if n := a.Status().Handshakes.RefusedCompromised; n != 1 {
		t.Errorf("refused_compromised = %d, want 1", n)
	}
	// D's established session stays up.
	select {
	case <-ds.Done():
		t.Errorf("D's established session ended: %v", ds.Err())
	default:
	}
	if ss := a.Sessions(); len(ss) != 1 || ss[0].PeerKey != dID.Public.String() {
		t.Errorf("A's sessions: %+v", ss)
	}
}

// TestNodeCompromisedByOutboundProof: a configured peer whose INTEGRITY
// proofs are wrong makes the dialing node compromised: the dialer's
// OnIntegrityFailure is routed the same way, and the node stops dialing.
func TestNodeCompromisedByOutboundProof(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	_, lID := newKeyFile(t, dir, "l.key")
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: lID, AllowList: pool.NewAllowList(bID.Public)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sessions := make(chan *pool.Session, 4)
	go func() {
		for {
			s, err := l.AcceptContext(ctx)
			if err != nil {
				return
			}
			sessions <- s
		}
	}()
	var alert syncBuffer
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"lsrv", l.Addr().String(), lID.Public})), Options{Alert: &alert})
	waitFor(t, 10*time.Second, "B connected to L", func() bool { return peerByName(b, "lsrv").State == StateConnected })
	ls := <-sessions
	defer ls.Close()

	session.CorruptIntegrityForTest(ls)
	if err := nodeSession(b, lID.Public).VerifyIntegrity(ctx); !errors.Is(err, pool.ErrIntegrity) {
		t.Fatalf("checking the corrupted peer: %v, want ErrIntegrity", err)
	}
	waitFor(t, 5*time.Second, "B parks its dialer", func() bool { return peerByName(b, "lsrv").State == StateCompromised })
	st := b.Status()
	want := fmt.Sprintf("INTEGRITY proof mismatch from peer lsrv (%s) (outbound session ", lID.Public)
	if !st.Compromised || st.Integrity.Cause != CauseProof || st.Integrity.ProofFailures != 1 ||
		!strings.HasPrefix(st.Integrity.Reason, want) {
		t.Errorf("B's integrity: %+v, want a reason starting %q", st.Integrity, want)
	}
	p := peerByName(b, "lsrv")
	if p.Attempts != 1 || p.Disconnects != 1 || !strings.HasPrefix(p.LastError, "not dialing: this node is compromised (INTEGRITY proof mismatch from peer lsrv") {
		t.Errorf("B's peer: %+v", p)
	}
	if !strings.Contains(alert.String(), "POOL NODE COMPROMISED") {
		t.Errorf("alert %q", alert.String())
	}
	select {
	case s := <-sessions:
		s.Close()
		t.Error("B dialed L again")
	case <-time.After(300 * time.Millisecond): // over reconnect_max
	}
}
