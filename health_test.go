package pool_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// errTampered stands for a failed self-test.
var errTampered = errors.New("selftest: known-answer test failed: X25519: test")

// switchHealth is a Config.Health whose answer the test sets.
type switchHealth struct{ err atomic.Pointer[error] }

func (h *switchHealth) fail(err error) { h.err.Store(&err) }
func (h *switchHealth) recover()       { h.err.Store(nil) }
func (h *switchHealth) check() error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

// roundTrip sends a message over a fresh channel of cs that ss echoes.
func roundTrip(t *testing.T, cs *pool.Session) {
	t.Helper()
	ch, err := cs.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	ch.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("still here")
	if _, err := ch.Write(msg); err != nil {
		t.Fatal(err)
	}
	ch.CloseWrite()
	got, err := io.ReadAll(ch)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo over the established session: %q, %v", got, err)
	}
}

// TestHealthListenerRefuses: once the listener's Health fails, the next
// Dial is refused at once (no CHALLENGE, no wait for the handshake
// timeout), the session established before is left alone, and the
// refusal is permanent even when Health answers nil again.
func TestHealthListenerRefuses(t *testing.T) {
	var h switchHealth
	cli := pool.Config{Identity: newIdentity(t), HandshakeTimeout: 20 * time.Second}
	l, cs, ss := pair(t, pairOpts{server: pool.Config{Health: h.check}, client: cli})
	go echo(ss)
	srvKey := l.Identity()

	h.fail(errTampered)
	for i, state := range []string{"failing", "answering nil again"} {
		start := time.Now()
		s, err := pool.Dial(context.Background(), l.Addr().String(), srvKey, &cli)
		if err == nil {
			s.Close()
			t.Fatalf("Dial to a compromised listener (Health %s) succeeded", state)
		}
		if !errors.Is(err, pool.ErrNoChallenge) {
			t.Errorf("Dial (Health %s): %v, want ErrNoChallenge", state, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Dial (Health %s) took %v to fail; the listener should close at once", state, d)
		}
		if got := l.Stats().RefusedUnhealthy; got != uint64(i+1) {
			t.Errorf("RefusedUnhealthy = %d after %d refusals", got, i+1)
		}
		h.recover() // compromise is permanent: the listener latched it
	}
	st := l.Stats()
	if st.Sessions != 1 || st.FailedHandshakes != 0 || st.Handshake.Challenges != 1 {
		t.Errorf("stats %+v: the refused handshakes must not reach the handshake", st)
	}
	roundTrip(t, cs)
}

// TestHealthListenerRefusesBeforeAccept: a failure found while a
// handshake runs stops the listener from sending ACCEPT; the client is
// refused and no session is made.
func TestHealthListenerRefusesBeforeAccept(t *testing.T) {
	var calls atomic.Int32
	health := func() error {
		if calls.Add(1) > 1 { // healthy when the connection arrives only
			return errTampered
		}
		return nil
	}
	srv := pool.Config{Identity: newIdentity(t), AllowAny: true, Health: health}
	l, err := pool.Listen("127.0.0.1:0", &srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = pool.Dial(dialCtx(t), l.Addr().String(), srv.Identity.Public, &pool.Config{Identity: newIdentity(t)})
	if !errors.Is(err, pool.ErrRefused) {
		t.Fatalf("Dial: %v, want ErrRefused", err)
	}
	st := l.Stats()
	if st.RefusedUnhealthy != 1 || st.Sessions != 0 || st.FailedHandshakes != 0 || st.Handshake.Challenges != 1 {
		t.Errorf("stats %+v", st)
	}
	if calls.Load() != 2 {
		t.Errorf("Health called %d times, want 2 (arrival, before ACCEPT)", calls.Load())
	}
}

// TestHealthDialRefuses: a compromised client does not even connect, and
// says why.
func TestHealthDialRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli := pool.Config{Identity: newIdentity(t), Health: func() error { return errTampered }}
	start := time.Now()
	_, err = pool.Dial(dialCtx(t), ln.Addr().String(), newIdentity(t).Public, &cli)
	if !errors.Is(err, pool.ErrCompromised) || !errors.Is(err, errTampered) {
		t.Fatalf("Dial: %v, want ErrCompromised wrapping the Health error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v", d)
	}
	want := "pool: this node failed a runtime integrity check and refuses new sessions (draft §17.3): not dialing " +
		ln.Addr().String() + ": " + errTampered.Error()
	if err.Error() != want {
		t.Errorf("error\n %q, want\n %q", err, want)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("a compromised client connected")
	}
}

// TestHealthDialRefusesMidHandshake: a failure found while the client's
// handshake runs abandons it before the session is confirmed; the server
// never hands out a session.
func TestHealthDialRefusesMidHandshake(t *testing.T) {
	srv := pool.Config{Identity: newIdentity(t), AllowAny: true, ConfirmTimeout: 5 * time.Second}
	l, err := pool.Listen("127.0.0.1:0", &srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var calls atomic.Int32
	cli := pool.Config{Identity: newIdentity(t), Health: func() error {
		if calls.Add(1) > 1 {
			return errTampered
		}
		return nil
	}}
	_, err = pool.Dial(dialCtx(t), l.Addr().String(), srv.Identity.Public, &cli)
	if !errors.Is(err, pool.ErrCompromised) || !errors.Is(err, errTampered) {
		t.Fatalf("Dial: %v, want ErrCompromised", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if s, err := l.AcceptContext(ctx); err == nil {
		s.Close()
		t.Fatal("the server accepted a session the client abandoned")
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().FailedHandshakes != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the unconfirmed session was not counted as failed", l.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := l.Stats(); st.Sessions != 0 {
		t.Errorf("stats %+v", st)
	}
}

type failingRand struct{}

func (failingRand) Read([]byte) (int, error) {
	return 0, errors.New("random source failed its health test")
}

// TestFailingRandStopsHandshakes: a Config.Rand that fails (a tripped
// health test, draft §17.3) makes handshakes fail with that error on
// either side instead of proceeding with weak secrets.
func TestFailingRandStopsHandshakes(t *testing.T) {
	id := newIdentity(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var failures atomic.Int32
	bad, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: id, AllowAny: true, Rand: failingRand{},
		OnHandshakeError: func(_ netip.AddrPort, err error) {
			if strings.Contains(err.Error(), "health test") {
				failures.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := pool.Dial(ctx, bad.Addr().String(), id.Public, &pool.Config{Identity: newIdentity(t)}); err == nil {
		t.Fatal("a listener with a failing source completed a handshake")
	}
	// The client may see the connection end before the listener's
	// callback has run: wait for it, bounded.
	for deadline := time.Now().Add(5 * time.Second); failures.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if failures.Load() == 0 {
		t.Error("the listener did not report its random source failing")
	}
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: id, AllowAny: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = pool.Dial(ctx, l.Addr().String(), id.Public, &pool.Config{Identity: newIdentity(t), Rand: failingRand{}})
	if err == nil || !strings.Contains(err.Error(), "health test") {
		t.Fatalf("Dial with a failing source: %v", err)
	}
}
