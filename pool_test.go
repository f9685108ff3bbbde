package pool_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/testutil"
)

type pairOpts struct {
	server, client pool.Config      // Identity and policy filled in when empty
	hook           testutil.Hook    // when set, traffic goes through a relay
	relay          **testutil.Relay // receives the relay
	onListen       func(*pool.Listener)
}

type node struct {
	id *pool.Identity
}

func newIdentity(t testing.TB) *pool.Identity {
	t.Helper()
	id, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pair starts a listener, dials it (through a relay if asked) and returns
// both sessions, closed at the end of the test.
func pair(t *testing.T, o pairOpts) (*pool.Listener, *pool.Session, *pool.Session) {
	t.Helper()
	if o.server.Identity == nil {
		o.server.Identity = newIdentity(t)
	}
	if o.client.Identity == nil {
		o.client.Identity = newIdentity(t)
	}
	cliKey := o.client.Identity.Public
	if o.server.AllowList == nil && !o.server.AllowAny && o.server.Authorize == nil {
		o.server.Authorize = func(k pool.PublicKey) bool { return k == cliKey }
	}
	l, err := pool.Listen("127.0.0.1:0", &o.server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if o.onListen != nil {
		o.onListen(l)
	}
	addr := l.Addr().String()
	if o.hook != nil || o.relay != nil {
		r, err := testutil.NewRelay(addr, o.hook)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		addr = r.Addr()
		if o.relay != nil {
			*o.relay = r
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := pool.Dial(ctx, addr, o.server.Identity.Public, &o.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	ss, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	if ss.Peer() != cliKey || cs.Peer() != o.server.Identity.Public {
		t.Fatal("peer identities wrong")
	}
	if cs.ID() != ss.ID() || cs.SessionHash() != ss.SessionHash() {
		t.Fatal("session ID or hash differ between the ends")
	}
	return l, cs, ss
}

// echo serves every channel the session accepts by echoing it.
func echo(s *pool.Session) {
	for {
		ch, err := s.AcceptChannel(context.Background())
		if err != nil {
			return
		}
		go func() {
			io.Copy(ch, ch)
			ch.CloseWrite()
		}()
	}
}

func TestEcho(t *testing.T) {
	_, cs, ss := pair(t, pairOpts{})
	go echo(ss)
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

// TestManyChannels runs concurrent channels in both directions, each
// verified by hash (the integration suite runs the full 200 x 1000).
func TestManyChannels(t *testing.T) {
	_, cs, ss := pair(t, pairOpts{})
	nch, nmsg := 50, 100
	if testing.Short() {
		nch, nmsg = 10, 20
	}
	if err := manyChannels(cs, ss, nch, nmsg); err != nil {
		t.Fatal(err)
	}
}

// manyChannels sends nmsg small messages on each of nch channels opened by
// the client; the server hashes what arrives and sends the hash back.
func manyChannels(cs, ss *pool.Session, nch, nmsg int) error {
	go func() {
		for {
			ch, err := ss.AcceptChannel(context.Background())
			if err != nil {
				return
			}
			go func() {
				h := sha256.New()
				io.Copy(h, ch)
				ch.Write(h.Sum(nil))
				ch.CloseWrite()
			}()
		}
	}()
	return manyChannelsNoServer(cs, nch, nmsg)
}

// manyChannelsNoServer is the client half: channels 0..nch-1 at once, each
// verified by the hash the peer sends back.
func manyChannelsNoServer(cs *pool.Session, nch, nmsg int) error {
	errs := make(chan error, nch)
	var wg sync.WaitGroup
	for i := 0; i < nch; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := cs.OpenChannel(i)
			if err != nil {
				errs <- err
				return
			}
			defer ch.Close()
			h := sha256.New()
			for j := 0; j < nmsg; j++ {
				msg := fmt.Appendf(nil, "channel %d message %d %s", ch.ID(), j, bytes.Repeat([]byte{byte(j)}, j%200))
				h.Write(msg)
				if _, err := ch.Write(msg); err != nil {
					errs <- err
					return
				}
			}
			ch.CloseWrite()
			got, err := io.ReadAll(ch)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, h.Sum(nil)) {
				errs <- fmt.Errorf("channel %d: hash mismatch", ch.ID())
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(c chan error) []error {
	var out []error
	for e := range c {
		out = append(out, e)
	}
	return out
}

// TestAcceptedSessionOutlivesListener: Close leaves accepted sessions up,
// even when it comes right after Accept. The listener once kept a hook
// that closed the session's socket on Close until its serve goroutine
// returned; the test holds serve in exactly that window (after the
// handoff, before it returns) while Close begins.
func TestAcceptedSessionOutlivesListener(t *testing.T) {
	handedOff, release := make(chan struct{}), make(chan struct{})
	l, cs, ss := pair(t, pairOpts{onListen: func(l *pool.Listener) {
		pool.SetHandoffHookForTest(l, func() { close(handedOff); <-release })
	}})
	<-handedOff
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // also on failure, or Close would wait forever
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	<-pool.ListenerClosingForTest(l)
	select {
	case <-ss.Done(): // the old hook closed the socket at once
		t.Fatalf("closing the listener ended an accepted session: %v", ss.Err())
	case <-time.After(200 * time.Millisecond):
	}
	free()
	<-closed
	go echo(ss)
	ch, err := cs.OpenChannel(0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		ch.Write([]byte("still here"))
		ch.CloseWrite()
	}()
	got, err := io.ReadAll(ch)
	if err != nil || string(got) != "still here" {
		t.Fatalf("echo after listener Close: %q, %v", got, err)
	}
}
