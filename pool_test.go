package pool_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// pair starts a listener that accepts cli and dials it.
func pair(t *testing.T) (*pool.Listener, *pool.Session, *pool.Session) {
	t.Helper()
	srvID, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cliID, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srvID,
		Authorize: func(k pool.PublicKey) bool { return k == cliID.Public }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := pool.Dial(ctx, l.Addr().String(), srvID.Public, &pool.Config{Identity: cliID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	ss, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	if ss.Peer() != cliID.Public || cs.Peer() != srvID.Public {
		t.Fatal("peer identities wrong")
	}
	return l, cs, ss
}

func TestEcho(t *testing.T) {
	_, cs, ss := pair(t)
	go func() {
		ch, err := ss.AcceptChannel(context.Background())
		if err != nil {
			return
		}
		io.Copy(ch, ch)
		ch.CloseWrite()
	}()
	ch, err := cs.OpenChannel(0)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("hello pool "), 100000)
	go func() {
		ch.Write(msg)
		ch.CloseWrite()
	}()
	got, err := io.ReadAll(ch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: %d bytes back, want %d", len(got), len(msg))
	}
}
