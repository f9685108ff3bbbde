package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/testutil"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// handshakePair runs a real handshake in memory and returns both results.
func handshakePair(t *testing.T) (cli, srv *handshake.Established) {
	t.Helper()
	cid, _ := addr.Generate()
	sid, _ := addr.Generate()
	s, err := handshake.NewServer(handshake.ServerConfig{Identity: sid, InitRate: -1,
		Authorize: func(k addr.PublicKey) bool { return k == cid.Public }})
	if err != nil {
		t.Fatal(err)
	}
	pin := sid.Public
	c, err := handshake.NewClient(handshake.ClientConfig{Identity: cid, PeerKey: &pin})
	if err != nil {
		t.Fatal(err)
	}
	p := handshake.Path{Transport: handshake.TransportTCP,
		Client: netip.MustParseAddrPort("127.0.0.1:1"), Server: netip.MustParseAddrPort("127.0.0.1:2")}
	ch, err := s.HandleInit(nil, c.Init(), p)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HandleChallenge(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	srv, acc, err := s.HandleResponse(resp, p)
	if err != nil {
		t.Fatal(err)
	}
	cli, err = c.HandleAccept(acc)
	if err != nil {
		t.Fatal(err)
	}
	return cli, srv
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *transport.TCPConn) {
	t.Helper()
	c, sc := testutil.TCPPair(t)
	client, server = transport.NewTCPConn(c, false), transport.NewTCPConn(sc, true)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func sessionPair(t *testing.T, cfg Config) (cli, srv *Session) {
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	cli, srv = New(cc, ce, cfg), New(sc, se, cfg)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	waitConfirmed(t, srv)
	return cli, srv
}

func waitConfirmed(t *testing.T, s *Session) {
	t.Helper()
	select {
	case <-s.Confirmed():
	case <-s.Done():
		t.Fatalf("session ended before confirmation: %v", s.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("not confirmed")
	}
}

func waitDone(t *testing.T, s *Session) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
		return nil
	}
}

// rawPeer is a hand-driven client: it seals packets with the real c2s keys
// and writes them straight to the socket, so tests can send what a
// well-behaved Session never would.
type rawPeer struct {
	t      *testing.T
	conn   *transport.TCPConn
	prot   *seal.Protector
	seq    uint64
	sid    [16]byte
	closes chan *wire.Close // session CLOSEs received from the server
	ended  chan struct{}
}

// closeReceived waits for the server to end the connection and returns
// the session CLOSE it sent, if any.
func (r *rawPeer) closeReceived(t *testing.T) *wire.Close {
	select {
	case <-r.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not end the connection")
	}
	select {
	case c := <-r.closes:
		return c
	default:
		return nil
	}
}

func rawPair(t *testing.T, cfg Config) (*rawPeer, *Session) {
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	srv := New(sc, se, cfg)
	t.Cleanup(func() { srv.Close() })
	r := &rawPeer{t: t, conn: cc, prot: seal.NewProtector(&ce.Keys.C2S), seq: ce.SendSeq, sid: ce.SID,
		closes: make(chan *wire.Close, 1), ended: make(chan struct{})}
	opener := seal.NewProtector(&ce.Keys.S2C)
	go func() { // read what the server sends, keeping its session CLOSE
		defer close(r.ended)
		for {
			p, err := cc.ReadPacket()
			if err != nil {
				return
			}
			pt, err := opener.Open(*p)
			if err == nil && wire.PacketType(*p) == wire.TypeClose {
				if c, err := wire.ParseClose(pt); err == nil && c.Scope == wire.ScopeSession {
					r.closes <- &c
				}
			}
			bufpool.Put(p)
		}
	}()
	return r, srv
}

func (r *rawPeer) send(typ wire.Type, flags uint16, ch uint8, pt []byte) {
	b := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
	wire.PutHeader(b, &wire.Header{Version: 1, Type: typ, Flags: flags, Seq: r.seq, SID: r.sid,
		Length: uint16(len(pt) + wire.TagLen), Channel: ch})
	copy(b[wire.HeaderLen:], pt)
	r.seq++
	if _, err := r.conn.Write(r.prot.Seal(b)); err != nil {
		r.t.Fatal(err)
	}
}

func TestCloseCarriesCodeAndReason(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	cli.CloseWithError(wire.CodeConfigReject, "policy says no")
	err := waitDone(t, srv)
	var ce *CloseError
	if !errors.As(err, &ce) || !ce.Remote || ce.Code != wire.CodeConfigReject || ce.Reason != "policy says no" {
		t.Fatalf("server saw %v", err)
	}
	if err := waitDone(t, cli); !errors.As(err, &ce) || ce.Remote || ce.Code != wire.CodeConfigReject {
		t.Fatalf("client saw %v", err)
	}
}

// TestGracefulCloseDeliversEverything: data written before Close arrives
// in full, then the peer sees CLOSE(NO_ERROR) and EOF after the FIN.
func TestGracefulCloseDeliversEverything(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	got := make(chan []byte, 1)
	go func() {
		sch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(sch)
		got <- b
	}()
	ch, _ := cli.OpenChannel(0)
	data := bytes.Repeat([]byte("x"), 3<<20)
	if _, err := ch.Write(data); err != nil {
		t.Fatal(err)
	}
	ch.CloseWrite()
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("received %d of %d bytes", len(b), len(data))
	}
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeNoError || !ce.Remote {
		t.Fatalf("server error %v", err)
	}
}

// TestPeerClosedSeenWhileDraining: when both ends close, each still learns
// of the other's CLOSE, which is how an application knows the peer
// finished consuming what it sent.
func TestPeerClosedSeenWhileDraining(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	go cli.Close()
	go srv.Close()
	waitDone(t, cli)
	waitDone(t, srv)
	for _, s := range []*Session{cli, srv} {
		if pc := s.PeerClosed(); pc == nil || pc.Code != wire.CodeNoError || !pc.Remote {
			t.Errorf("PeerClosed = %v", pc)
		}
	}
}

func TestChannelResetPropagates(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	ch, _ := cli.OpenChannel(4)
	ch.Write([]byte("x"))
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ch.Reset(wire.CodeOverload, "shedding")
	buf := make([]byte, 10)
	for {
		_, err = sch.Read(buf)
		if err != nil {
			break
		}
	}
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != wire.CodeOverload || ce.Reason != "shedding" || !ce.Channel || !ce.Remote {
		t.Fatalf("read error %v", err)
	}
	if !strings.Contains(err.Error(), "channel reset by peer") {
		t.Errorf("error text %q does not say the channel was reset", err)
	}
	// The peer answers with its own RST; then the number is free again
	// at both ends and the session lives on.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := cli.OpenChannel(4)
		if err == nil {
			c2.Write([]byte("again"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel 4 never freed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sch2, err := srv.AcceptChannel(context.Background())
	if err != nil || sch2.ID() != 4 {
		t.Fatalf("reopened channel: %v %v", sch2, err)
	}
	if got, _ := io.ReadAll(io.LimitReader(sch2, 5)); string(got) != "again" {
		t.Fatalf("reopened channel read %q", got)
	}
	if srv.Err() != nil {
		t.Fatal(srv.Err())
	}
}

func TestHalfClose(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	ch, _ := cli.OpenChannel(0)
	ch.Write([]byte("request"))
	ch.CloseWrite()
	if _, err := ch.Write([]byte("more")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after FIN: %v", err)
	}
	sch, _ := srv.AcceptChannel(context.Background())
	req, err := io.ReadAll(sch)
	if err != nil || string(req) != "request" {
		t.Fatalf("server read %q %v", req, err)
	}
	sch.Write([]byte("response")) // the other direction still works
	sch.CloseWrite()
	resp, err := io.ReadAll(ch)
	if err != nil || string(resp) != "response" {
		t.Fatalf("client read %q %v", resp, err)
	}
}

func TestDeadlines(t *testing.T) {
	cli, _ := sessionPair(t, Config{})
	ch, _ := cli.OpenChannel(0)
	ch.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := ch.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read error %v, want a timeout", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("deadline not honoured")
	}
	// A deadline set while a Read blocks wakes it.
	ch.SetReadDeadline(time.Time{})
	res := make(chan error, 1)
	go func() { _, err := ch.Read(make([]byte, 1)); res <- err }()
	time.Sleep(20 * time.Millisecond)
	ch.SetReadDeadline(time.Now())
	select {
	case err := <-res:
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("blocked read: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("blocked read not woken by a new deadline")
	}
}

// TestEncryptedFlagRequired: protection is decided by session state; a
// sealed packet claiming to be unencrypted is an authenticated protocol
// error, never processed as plaintext (handshake.md §4.3).
func TestEncryptedFlagRequired(t *testing.T) {
	r, srv := rawPair(t, Config{})
	r.send(wire.TypeAck, 0, 0, nil) // confirms the client...
	waitConfirmed(t, srv)
	r.send(wire.TypeData, 0, 0, []byte("flagless"))
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
		t.Fatalf("server ended with %v", err)
	}
}

// TestFlowControlEnforced: DATA beyond the granted credit ends the session
// with PROTOCOL_ERROR, so a peer cannot make us buffer without bound.
func TestFlowControlEnforced(t *testing.T) {
	r, srv := rawPair(t, Config{Window: InitialWindow})
	chunk := make([]byte, 16<<10)
	for i := 0; i < InitialWindow/len(chunk); i++ {
		r.send(wire.TypeData, wire.FlagEncrypted, 7, chunk)
	}
	time.Sleep(50 * time.Millisecond)
	if srv.Err() != nil {
		t.Fatalf("session ended within the window: %v", srv.Err())
	}
	r.send(wire.TypeData, wire.FlagEncrypted, 7, []byte{1})
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
		t.Fatalf("server ended with %v", err)
	}
}

func TestMalformedControlPackets(t *testing.T) {
	for name, send := range map[string]func(r *rawPeer){
		"ACK of 5 bytes":     func(r *rawPeer) { r.send(wire.TypeAck, wire.FlagEncrypted, 0, make([]byte, 5)) },
		"CLOSE too short":    func(r *rawPeer) { r.send(wire.TypeClose, wire.FlagEncrypted, 0, []byte{0}) },
		"CLOSE scope 9":      func(r *rawPeer) { r.send(wire.TypeClose, wire.FlagEncrypted, 0, []byte{0, 9, 0, 0, 0, 0, 0, 0}) },
		"COMPRESSED DATA":    func(r *rawPeer) { r.send(wire.TypeData, wire.FlagEncrypted|wire.FlagCompressed, 0, []byte("zz")) },
		"ACK on channel 5":   func(r *rawPeer) { r.send(wire.TypeAck, wire.FlagEncrypted, 5, nil) },
		"session CLOSE on 5": func(r *rawPeer) { r.send(wire.TypeClose, wire.FlagEncrypted, 5, make([]byte, 8)) },
		"DATA after FIN":     func(r *rawPeer) { r.fin(3); r.send(wire.TypeData, wire.FlagEncrypted, 3, []byte("late")) },
		"second FIN":         func(r *rawPeer) { r.fin(3); r.fin(3) },
	} {
		t.Run(name, func(t *testing.T) {
			r, srv := rawPair(t, Config{})
			send(r)
			var ce *CloseError
			if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
				t.Fatalf("server ended with %v", err)
			}
			if got := r.closeReceived(t); got == nil || got.Code != wire.CodeProtocolError || got.Reason == "" {
				t.Fatalf("peer received CLOSE %+v, want PROTOCOL_ERROR with a reason", got)
			}
		})
	}
}

// TestHandshakeTypesRefusedUnauthenticated: handshake and reserved types
// in an established session are refused before any cryptography and never
// answered (handshake.md §4.4 step 2).
func TestHandshakeTypesRefusedUnauthenticated(t *testing.T) {
	for _, typ := range []wire.Type{wire.TypeInit, wire.TypeChallenge, wire.TypeResponse, 0xD, 0xE, 0xF} {
		r, srv := rawPair(t, Config{})
		r.send(typ, wire.FlagEncrypted, 0, nil)
		if err := waitDone(t, srv); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("%v: server ended with %v, want ErrAuthFailed", typ, err)
		}
		if got := r.closeReceived(t); got != nil {
			t.Fatalf("%v: an unauthenticated packet was answered with %+v", typ, got)
		}
	}
}

func TestRekeyRefusedWithCode(t *testing.T) {
	r, srv := rawPair(t, Config{})
	r.send(wire.TypeRekey, wire.FlagEncrypted, 0, make([]byte, 40))
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeRekeyFail {
		t.Fatalf("server ended with %v", err)
	}
}

func (r *rawPeer) fin(ch uint8) {
	r.send(wire.TypeClose, wire.FlagEncrypted, ch, wire.AppendClose(nil, &wire.Close{Scope: wire.ScopeChannelFIN}))
}

// TestWrongKeysRejected: a packet sealed under the server's own send keys
// (swapped direction) or another session's keys never authenticates.
func TestWrongKeysRejected(t *testing.T) {
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	srv := New(sc, se, Config{})
	defer srv.Close()
	r := &rawPeer{t: t, conn: cc, prot: seal.NewProtector(&ce.Keys.S2C), seq: ce.SendSeq, sid: ce.SID}
	r.send(wire.TypeAck, wire.FlagEncrypted, 0, nil)
	if err := waitDone(t, srv); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("server ended with %v, want ErrAuthFailed", err)
	}
	if srv.isConfirmed() {
		t.Fatal("a packet under the wrong keys confirmed the client")
	}
}

// TestUnconfirmedExpires: a client that completes RESPONSE but never sends
// its first traffic packet is dropped (handshake.md §3).
func TestUnconfirmedExpires(t *testing.T) {
	_, se := handshakePair(t)
	_, sc := tcpPair(t)
	srv := New(sc, se, Config{ConfirmTimeout: 100 * time.Millisecond})
	if err := waitDone(t, srv); !errors.Is(err, ErrUnconfirmed) {
		t.Fatalf("got %v, want ErrUnconfirmed", err)
	}
}

// TestSequenceLimit: the session refuses to send at or beyond 2^63-2^32
// (P01: a nonce must never repeat; rekeying comes long before).
func TestSequenceLimit(t *testing.T) {
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	ce.SendSeq = SeqLimit - 2
	se.RecvSeq = SeqLimit - 2
	cli, srv := New(cc, ce, Config{}), New(sc, se, Config{})
	defer srv.Close()
	waitConfirmed(t, srv) // the first HEARTBEAT and ACK used SeqLimit-2 and -1
	ch, _ := cli.OpenChannel(0)
	ch.Write([]byte("one too many"))
	if err := waitDone(t, cli); err == nil || !bytes.Contains([]byte(err.Error()), []byte("sequence space")) {
		t.Fatalf("client ended with %v", err)
	}
}

// TestResetCrossingFINDoesNotLoop: an RST that crosses the peer's FIN lands
// on a freed number; it must be ignored (its generation is stale), not
// answered, or the two ends would bounce RSTs forever.
func TestResetCrossingFINDoesNotLoop(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	ch, _ := cli.OpenChannel(0)
	ch.Write([]byte("x"))
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sch.CloseWrite()
	ch.CloseWrite()
	ch.Reset(wire.CodeOverload, "changed my mind")
	time.Sleep(100 * time.Millisecond)
	before := cli.Stats().PacketsReceived + srv.Stats().PacketsReceived
	time.Sleep(300 * time.Millisecond)
	after := cli.Stats().PacketsReceived + srv.Stats().PacketsReceived
	if after-before > 4 {
		t.Fatalf("%d packets exchanged on an idle session: RSTs are looping", after-before)
	}
	if cli.Err() != nil || srv.Err() != nil {
		t.Fatalf("session ended: %v / %v", cli.Err(), srv.Err())
	}
	// Both ends freed channel 0 exactly once: a new use works both ways.
	c2, err := cli.OpenChannel(0)
	if err != nil {
		t.Fatal(err)
	}
	c2.Write([]byte("again"))
	c2.CloseWrite()
	s2, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(s2); string(b) != "again" {
		t.Fatalf("reused channel read %q", b)
	}
}

// TestResetOfUnsentChannelIsSilent: a channel the peer never heard of ends
// locally; nothing goes on the wire and the number is free at once.
func TestResetOfUnsentChannelIsSilent(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	time.Sleep(50 * time.Millisecond)
	before := srv.Stats().PacketsReceived
	ch, _ := cli.OpenChannel(9)
	ch.Reset(wire.CodeNoError, "")
	ch9, err := cli.OpenChannel(9)
	if err != nil {
		t.Fatalf("number not freed: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := srv.Stats().PacketsReceived - before; got != 0 {
		t.Fatalf("peer received %d packets for a channel it never saw", got)
	}
	// The generations still agree: a real use of the number moves more
	// than the initial window and ends with a FIN both sides honour.
	go func() {
		ch9.Write(make([]byte, 3*InitialWindow))
		ch9.CloseWrite()
	}()
	s9, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s9.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, s9)
	if err != nil || n != 3*InitialWindow {
		t.Fatalf("reused number after a silent reset: %d bytes, %v", n, err)
	}
}

// TestNewWorkWhileAnsweringPeerClose: between the peer's CLOSE and our
// answer reaching the wire, the session is closing but not yet ended; new
// channels and writes must report the peer's CLOSE, not "use of closed".
func TestNewWorkWhileAnsweringPeerClose(t *testing.T) {
	cli, _ := sessionPair(t, Config{})
	ch, err := cli.OpenChannel(0)
	if err != nil {
		t.Fatal(err)
	}
	peer := &CloseError{Remote: true, Code: wire.CodeConfigReject, Reason: "bye"}
	cli.mu.Lock()
	cli.closing, cli.closeErr = true, peer // the state closeAs leaves
	cli.mu.Unlock()
	defer func() {
		cli.mu.Lock()
		cli.closing, cli.closeErr = false, nil
		cli.mu.Unlock()
	}()
	if _, err := cli.OpenChannel(2); err != peer {
		t.Errorf("OpenChannel while answering CLOSE: %v, want the peer's CLOSE", err)
	}
	if _, err := ch.Write([]byte("x")); err != peer {
		t.Errorf("Write while answering CLOSE: %v, want the peer's CLOSE", err)
	}
	cli.mu.Lock()
	cli.closeErr = &CloseError{Code: wire.CodeNoError}
	cli.mu.Unlock()
	if _, err := cli.OpenChannel(2); err != ErrClosed {
		t.Errorf("OpenChannel after our own Close: %v, want ErrClosed", err)
	}
}

// TestReadDrainsBeforeSessionError: data and FIN that arrived just before
// the session ended are read before the session's error, however the
// reader's wake-up interleaves with the end.
func TestReadDrainsBeforeSessionError(t *testing.T) {
	for i := 0; i < 20; i++ {
		cli, srv := sessionPair(t, Config{})
		got := make(chan error, 1)
		go func() {
			sch, err := srv.AcceptChannel(context.Background())
			if err != nil {
				got <- err
				return
			}
			b, err := io.ReadAll(sch)
			if err == nil && string(b) != "last words" {
				err = errors.New("read " + strconv.Quote(string(b)))
			}
			got <- err
		}()
		ch, _ := cli.OpenChannel(0)
		ch.Write([]byte("last words"))
		ch.CloseWrite()
		cli.Close()
		if err := <-got; err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// TestCloseContext: closing a session whose peer reads nothing returns
// when ctx ends, with the session torn down, not after WriteTimeout.
func TestCloseContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, _ := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{Queue: 1})
		defer sc.Close()
		cli := New(cc, ce, Config{WriteTimeout: time.Hour})
		ch, err := cli.OpenChannel(0)
		if err != nil {
			t.Fatal(err)
		}
		go ch.Write(make([]byte, 1<<20)) // fills the pipe: nobody reads the far end
		time.Sleep(time.Second)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		if err := cli.CloseContext(ctx, wire.CodeNoError, ""); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("CloseContext = %v", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("CloseContext returned after %v", d)
		}
		<-cli.Done()
	})
}
