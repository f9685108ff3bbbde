package pool_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/wire"
)

// TestDualStackListener: one listener on ":port" serves IPv4 and IPv6
// clients and host names; IPv4 clients appear as IPv4-mapped addresses
// (draft §12).
func TestDualStackListener(t *testing.T) {
	srv, cli := newIdentity(t), newIdentity(t)
	l, err := pool.Listen(":0", &pool.Config{Identity: srv, AllowAny: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	targets := []string{"127.0.0.1:" + port, "localhost:" + port}
	if c, err := net.Dial("tcp", "[::1]:"+port); err == nil {
		c.Close()
		targets = append(targets, "[::1]:"+port)
	} else {
		t.Logf("no IPv6 loopback here (%v); IPv6 case skipped", err)
	}
	for _, target := range targets {
		s, err := pool.Dial(dialCtx(t), target, srv.Public, &pool.Config{Identity: cli})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		ss, err := l.AcceptContext(dialCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		client := ss.Path().Client.Addr()
		if target[0] == '1' && !client.Is4In6() {
			t.Errorf("%s: IPv4 client seen as %v, want IPv4-mapped", target, client)
		}
		if target[0] == '[' && (!client.Is6() || client.Is4In6()) {
			t.Errorf("%s: IPv6 client seen as %v", target, client)
		}
		s.Close()
		ss.Close()
	}
}

func TestDefaultPort(t *testing.T) {
	if pool.DefaultPort != 9253 {
		t.Fatal("the TCP overlay port is 9253")
	}
	// A host without a port dials 9253; nothing listens there in tests,
	// so the error must name that port.
	_, err := pool.Dial(context.Background(), "127.0.0.1", newIdentity(t).Public,
		&pool.Config{Identity: newIdentity(t), HandshakeTimeout: time.Second})
	if err == nil {
		t.Skip("something is listening on 127.0.0.1:9253")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:9253") {
		t.Fatalf("error does not name the default port: %v", err)
	}
}

// TestResponseDeadline: a client that sends INIT and then nothing is cut
// off at the RESPONSE deadline, and its pre-auth slot is released.
func TestResponseDeadline(t *testing.T) {
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: newIdentity(t), AllowAny: true,
		ResponseTimeout: 200 * time.Millisecond, InitRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(validInit(t))
	var ch [wire.ChallengeLen]byte
	if _, err := io.ReadFull(c, ch[:]); err != nil {
		t.Fatalf("no CHALLENGE: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection not closed at the RESPONSE deadline: %v", err)
	}
	waitPreAuth(t, l, 0)
}

// TestPreAuthCap: connections still in their handshake are capped per
// source prefix; the next one is closed at once.
func TestPreAuthCap(t *testing.T) {
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: newIdentity(t), AllowAny: true,
		MaxPreAuthPerPrefix: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitPreAuth(t, l, 2)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("third pre-auth connection not refused: %v", err)
	}
	if st := l.Stats(); st.RefusedPreAuth != 1 {
		t.Fatalf("refused %d, want 1", st.RefusedPreAuth)
	}
	for _, c := range held {
		c.Close()
	}
}

func waitPreAuth(t *testing.T, l *pool.Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().PreAuthInUse != n {
		if time.Now().After(deadline) {
			t.Fatalf("pre-auth connections %d, want %d", l.Stats().PreAuthInUse, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// validInit builds a canonical INIT with the current time.
func validInit(t *testing.T) []byte {
	id := newIdentity(t)
	return wire.AppendInit(nil, &wire.Init{Seq: 1, Timestamp: uint64(time.Now().UnixNano()),
		EC: id.Public, Versions: wire.VersionsV1})
}
