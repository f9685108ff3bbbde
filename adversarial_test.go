package pool_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/testutil"
)

// firstData returns a hook that applies f to the first DATA (type 3)
// packet from the client and forwards the rest untouched.
func firstData(f func(pkt []byte) [][]byte) testutil.Hook {
	var done atomic.Bool
	return func(d testutil.Direction, i int, pkt []byte) [][]byte {
		if d == testutil.ClientToServer && pkt[0] == 0x13 && done.CompareAndSwap(false, true) {
			return f(pkt)
		}
		return [][]byte{pkt}
	}
}

// sendSecret writes a recognisable message on channel 0 and reports what
// the server's application received before its session ended.
func sendSecret(t *testing.T, cs, ss *pool.Session) (received []byte, serverErr error) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		ch, err := ss.AcceptChannel(context.Background())
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(ch)
		got <- b
	}()
	ch, err := cs.OpenChannel(0)
	if err != nil {
		t.Fatal(err)
	}
	ch.Write([]byte("the secret payload"))
	select {
	case <-ss.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("server session did not end")
	}
	select {
	case b := <-got:
		return b, ss.Err()
	case <-time.After(5 * time.Second):
		t.Fatal("server channel read did not return after the session ended")
	}
	return nil, nil
}

// TestFlippedBitEndsSession flips one bit in each region of a live DATA
// packet. The receiver must refuse it (AEAD/HMAC or framing), deliver
// nothing of it, and end the session: over TCP the stream is
// desynchronised (DESIGN 2.8).
func TestFlippedBitEndsSession(t *testing.T) {
	for _, pos := range []int{0, 1, 3, 5, 14, 25, 38, 46, 47, 50, 79, 80, 90, -1} {
		t.Run(fmt.Sprintf("byte%d", pos), func(t *testing.T) {
			_, cs, ss := pair(t, pairOpts{hook: firstData(func(pkt []byte) [][]byte {
				p := bytes.Clone(pkt)
				i := pos
				if i < 0 {
					i = len(p) - 1 // the last tag byte
				}
				p[i] ^= 0x10
				return [][]byte{p}
			})})
			got, err := sendSecret(t, cs, ss)
			if bytes.Contains(got, []byte("secret")) {
				t.Fatalf("corrupted packet delivered: %q", got)
			}
			if err == nil {
				t.Fatal("session survived a corrupted packet")
			}
		})
	}
}

// TestReplayedPacketRejected sends the first DATA twice: the copy carries
// an old sequence number, so it is refused and the session ends; the
// message is delivered exactly once.
func TestReplayedPacketRejected(t *testing.T) {
	_, cs, ss := pair(t, pairOpts{hook: firstData(func(pkt []byte) [][]byte {
		return [][]byte{pkt, bytes.Clone(pkt)}
	})})
	got, err := sendSecret(t, cs, ss)
	if !errors.Is(err, pool.ErrAuthFailed) {
		t.Fatalf("server error = %v, want ErrAuthFailed", err)
	}
	if n := bytes.Count(got, []byte("the secret payload")); n > 1 {
		t.Fatalf("replayed packet delivered %d times", n)
	}
}

// TestDroppedPacketDetected: a missing packet breaks the exact-next rule.
func TestDroppedPacketDetected(t *testing.T) {
	var n atomic.Int32
	_, cs, ss := pair(t, pairOpts{hook: func(d testutil.Direction, i int, pkt []byte) [][]byte {
		if d == testutil.ClientToServer && pkt[0] == 0x13 && n.Add(1) == 1 {
			return nil
		}
		return [][]byte{pkt}
	}})
	ch, _ := cs.OpenChannel(0)
	ch.Write([]byte("lost"))
	ch.Write([]byte("next"))
	select {
	case <-ss.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("gap not detected")
	}
	if !errors.Is(ss.Err(), pool.ErrAuthFailed) {
		t.Fatalf("server error = %v", ss.Err())
	}
}

func dialCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestUnauthorizedClientRefused: a client whose key is not allowed never
// gets a session, and learns so promptly.
func TestUnauthorizedClientRefused(t *testing.T) {
	srv, allowed, stranger := newIdentity(t), newIdentity(t), newIdentity(t)
	reasons := make(chan error, 1)
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srv,
		Authorize:        func(k pool.PublicKey) bool { return k == allowed.Public },
		OnHandshakeError: func(_ netip.AddrPort, err error) { reasons <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, err = pool.Dial(dialCtx(t), l.Addr().String(), srv.Public, &pool.Config{Identity: stranger})
	if !errors.Is(err, pool.ErrRefused) {
		t.Fatalf("Dial error = %v, want ErrRefused", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusal took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if s, err := l.AcceptContext(ctx); err == nil {
		t.Fatalf("listener produced a session for a stranger: %v", s.Peer())
	}
	select {
	case err := <-reasons:
		if !errors.Is(err, handshake.ErrUnauthorized) || !strings.Contains(err.Error(), stranger.Public.String()) {
			t.Fatalf("server-side reason %v does not name the unauthorized key", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("listener did not report the refused handshake")
	}
	if st := l.Stats(); st.Handshake.Accepted != 0 || st.FailedHandshakes == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestWrongServerKey: pinning another key fails before any puzzle work.
func TestWrongServerKey(t *testing.T) {
	srv, cli, other := newIdentity(t), newIdentity(t), newIdentity(t)
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srv, AllowAny: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The INIT names the pinned key's node ID, so this server drops it.
	_, err = pool.Dial(dialCtx(t), l.Addr().String(), other.Public, &pool.Config{Identity: cli})
	if !errors.Is(err, pool.ErrNoChallenge) {
		t.Fatalf("Dial error = %v, want ErrNoChallenge", err)
	}
	// A server that ignored the hint would still fail the pin: rewrite
	// the hint in flight to the real server's node ID.
	nid := srv.Public.NodeID()
	r, err := testutil.NewRelay(l.Addr().String(), func(d testutil.Direction, i int, p []byte) [][]byte {
		if p[0] == 0x10 {
			p = bytes.Clone(p)
			copy(p[114:122], nid[:])
		}
		return [][]byte{p}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = pool.Dial(dialCtx(t), r.Addr(), other.Public, &pool.Config{Identity: cli})
	if !errors.Is(err, pool.ErrPinMismatch) {
		t.Fatalf("Dial error = %v, want ErrPinMismatch", err)
	}
}

// TestManInTheMiddle: M terminates POOL with its own identity on both
// sides. The client, pinning the real server, refuses M's CHALLENGE; the
// server, allowing only the real client, refuses M's RESPONSE.
func TestManInTheMiddle(t *testing.T) {
	srvID, cliID, mID := newIdentity(t), newIdentity(t), newIdentity(t)
	srv, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srvID,
		Authorize: func(k pool.PublicKey) bool { return k == cliID.Public }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mitm, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: mID, AllowAny: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mitm.Close()
	// Client side of M: the client dials M believing it is the server.
	_, err = pool.Dial(dialCtx(t), mitm.Addr().String(), srvID.Public, &pool.Config{Identity: cliID})
	if !errors.Is(err, pool.ErrPinMismatch) && !errors.Is(err, pool.ErrNoChallenge) {
		t.Fatalf("client did not detect the MITM: %v", err)
	}
	// Server side of M: M dials the server with its own key.
	_, err = pool.Dial(dialCtx(t), srv.Addr().String(), srvID.Public, &pool.Config{Identity: mID})
	if !errors.Is(err, pool.ErrRefused) {
		t.Fatalf("server did not refuse the MITM: %v", err)
	}
	// A relaying M that swaps the server key in CHALLENGE for its own is
	// caught by the pin as well; one that swaps e_S in ACCEPT fails the
	// ACCEPT's AEAD and HMAC.
	for name, swap := range map[string]func([]byte) []byte{
		"CHALLENGE s_S": func(p []byte) []byte {
			if p[0] == 0x11 {
				copy(p[80:112], mID.Public[:])
			}
			return p
		},
		"ACCEPT e_S": func(p []byte) []byte {
			if p[0] == 0x12 && len(p) == 136 {
				copy(p[80:112], mID.Public[:])
			}
			return p
		},
	} {
		r, err := testutil.NewRelay(srv.Addr().String(), func(d testutil.Direction, i int, p []byte) [][]byte {
			if d == testutil.ServerToClient {
				p = swap(bytes.Clone(p))
			}
			return [][]byte{p}
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = pool.Dial(dialCtx(t), r.Addr(), srvID.Public, &pool.Config{Identity: cliID})
		r.Close()
		if err == nil {
			t.Fatalf("%s: handshake completed through a tampering relay", name)
		}
	}
}

// TestHandshakeTimeout: a server that accepts TCP but never answers makes
// Dial fail with a clear timeout, not hang.
func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = pool.Dial(context.Background(), ln.Addr().String(), newIdentity(t).Public,
		&pool.Config{Identity: newIdentity(t), HandshakeTimeout: 300 * time.Millisecond})
	if !errors.Is(err, pool.ErrHandshakeTimeout) {
		t.Fatalf("error = %v, want ErrHandshakeTimeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if !strings.Contains(err.Error(), "CHALLENGE") {
		t.Errorf("error does not say what was awaited: %v", err)
	}
}

// TestBadFramesToListener sends garbage, truncated and oversized frames to
// a listener. Each connection must be closed (by the frame check or by the
// INIT deadline) and nothing may leak.
func TestBadFramesToListener(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: newIdentity(t), AllowAny: true,
		InitTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	oversized := make([]byte, 80)
	oversized[0] = 0x10
	binary.BigEndian.PutUint16(oversized[44:46], 65535) // and the payload never comes
	truncatedInit := make([]byte, 100)
	truncatedInit[0] = 0x10
	binary.BigEndian.PutUint16(truncatedInit[44:46], 64)
	cases := map[string][]byte{
		"garbage":        bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 100),
		"truncated INIT": truncatedInit,
		"oversized":      oversized,
		"nothing":        nil,
		"DATA first":     append([]byte{0x13}, make([]byte, 200)...),
		"header only":    make([]byte, 40),
	}
	for name, b := range cases {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err != nil && !isReset(err) {
			t.Errorf("%s: connection not closed by the server: %v", name, err)
		}
		if n != 0 {
			t.Errorf("%s: server answered %d bytes to a bad frame", name, n)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().PreAuthInUse != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := l.Stats(); st.FailedHandshakes != uint64(len(cases)) || st.PreAuthInUse != 0 {
		t.Errorf("stats after bad frames: %+v", st)
	}
	l.Close()
}

// TestGarbageAfterHandshake replaces a live packet with garbage whose
// length field promises 5119 bytes that never come: the session ends at
// the idle timeout with nothing delivered and nothing leaked.
func TestGarbageAfterHandshake(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("session", func(t *testing.T) { // its cleanups run before the leak check
		cfg := pool.Config{IdleTimeout: time.Second}
		_, cs, ss := pair(t, pairOpts{server: cfg, client: cfg, hook: firstData(func(pkt []byte) [][]byte {
			g := bytes.Repeat([]byte{0x13, 0xff}, 50)
			return [][]byte{g}
		})})
		if _, err := sendSecret(t, cs, ss); err == nil {
			t.Fatal("session survived garbage")
		}
		cs.Close()
	})
}

// TestVanishingPeer: the path is cut abruptly; both sides' blocked reads
// return an error instead of hanging.
func TestVanishingPeer(t *testing.T) {
	var r *testutil.Relay
	_, cs, ss := pair(t, pairOpts{relay: &r})
	ch, _ := cs.OpenChannel(0)
	ch.Write([]byte("hi"))
	sch, err := ss.AcceptChannel(dialCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 2)
	go func() { _, err := io.ReadAll(ch); readErr <- err }()
	go func() { _, err := io.ReadAll(sch); readErr <- err }()
	time.Sleep(50 * time.Millisecond)
	r.Cut()
	for i := 0; i < 2; i++ {
		select {
		case err := <-readErr:
			if !errors.Is(err, pool.ErrPeerVanished) {
				t.Errorf("read error = %v, want ErrPeerVanished", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("read hung after the peer vanished")
		}
	}
}

// TestSilentPeer: a black hole keeps TCP up but nothing arrives; the idle
// timeout declares the peer dead.
func TestSilentPeer(t *testing.T) {
	var r *testutil.Relay
	cfg := pool.Config{IdleTimeout: 600 * time.Millisecond}
	_, cs, ss := pair(t, pairOpts{relay: &r, client: cfg, server: cfg})
	r.Stall(testutil.ClientToServer)
	r.Stall(testutil.ServerToClient)
	for _, s := range []*pool.Session{cs, ss} {
		select {
		case <-s.Done():
			if !errors.Is(s.Err(), pool.ErrPeerVanished) {
				t.Errorf("error = %v", s.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("silent peer not detected")
		}
	}
}

// TestIdleSessionStaysUp: keepalives carry an idle session through several
// idle timeouts.
func TestIdleSessionStaysUp(t *testing.T) {
	cfg := pool.Config{IdleTimeout: 300 * time.Millisecond}
	_, cs, ss := pair(t, pairOpts{client: cfg, server: cfg})
	time.Sleep(1200 * time.Millisecond)
	if cs.Err() != nil || ss.Err() != nil {
		t.Fatalf("idle session ended: %v / %v", cs.Err(), ss.Err())
	}
}

// TestSlowReaderDoesNotBlockOthers: a channel nobody reads fills its
// window and its writer blocks (backpressure, bounded memory), while
// another channel of the same session moves 8 MiB.
func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	cfg := pool.Config{Window: 256 << 10}
	_, cs, ss := pair(t, pairOpts{server: cfg, client: cfg})
	stuck, _ := cs.OpenChannel(0)
	var stuckSrv *pool.Channel
	blocked := make(chan error, 1)
	go func() {
		stuck.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := stuck.Write(make([]byte, 8<<20))
		blocked <- err
	}()
	sch, err := ss.AcceptChannel(dialCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	stuckSrv = sch // never read
	fast, _ := cs.OpenChannel(2)
	go func() {
		fast.Write(make([]byte, 8<<20))
		fast.CloseWrite()
	}()
	fsch, err := ss.AcceptChannel(dialCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, fsch)
	if err != nil || n != 8<<20 {
		t.Fatalf("fast channel moved %d bytes, err %v", n, err)
	}
	if err := <-blocked; !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("stuck writer returned %v, want a deadline error", err)
	}
	if b := stuckSrv.Buffered(); b > 256<<10 {
		t.Fatalf("unread channel buffers %d bytes, more than its window", b)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
