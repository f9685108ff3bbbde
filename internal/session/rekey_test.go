package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// pipePair runs a real handshake and starts both sessions over an
// in-memory pipe, so that inside a synctest bubble their timers run on
// simulated time. The caller closes them (closeBoth) before the bubble ends.
func pipePair(t *testing.T, cfg Config) (cli, srv *Session) {
	ce, se := handshakePair(t)
	cc, sc := transport.Pipe(transport.PipeConfig{})
	cli, srv = New(cc, ce, cfg), New(sc, se, cfg)
	waitConfirmed(t, srv)
	return cli, srv
}

// discardAll reads and drops everything that arrives on c until it closes:
// the far end of a peer that never answers.
func discardAll(c *transport.PipeConn) {
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return
		}
		bufpool.Put(p)
	}
}

func closeBoth(cli, srv *Session) {
	cli.Close()
	srv.Close()
	<-cli.Done()
	<-srv.Done()
}

// exchange moves n bytes each way on channel 0 and checks them by hash.
func exchange(t *testing.T, cli, srv *Session, n int) {
	t.Helper()
	ch, err := cli.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Write([]byte{0}); err != nil { // the first byte opens the channel
		t.Fatal(err)
	}
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	io.ReadFull(sch, one)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	check := func(name string, c *Channel) {
		defer wg.Done()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("%s: data differs", name)
		}
	}
	wg.Add(2)
	go check("server read", sch)
	go check("client read", ch)
	for _, c := range []*Channel{ch, sch} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Write(data); err != nil {
				t.Errorf("write: %v", err)
			}
			c.CloseWrite()
		}()
	}
	wg.Wait()
}

// TestRekeyUnderLoad: with a rekey every 64 packets, megabytes flow both
// ways over TCP with every byte verified and no packet rejected, and both
// sides end in the same epoch.
func TestRekeyUnderLoad(t *testing.T) {
	var reported atomic.Int64
	cli, srv := sessionPair(t, Config{RekeyPackets: 64, OnRekey: func(uint32, bool) { reported.Add(1) }})
	exchange(t, cli, srv, 24<<20)
	cs, ss := cli.Stats(), srv.Stats()
	if cs.Rekeys < 5 || ss.Rekeys < 5 {
		t.Fatalf("rekeys: client %d, server %d; want several", cs.Rekeys, ss.Rekeys)
	}
	if cli.Err() != nil || srv.Err() != nil {
		t.Fatalf("session failed: %v / %v", cli.Err(), srv.Err())
	}
	waitEpochsMatch(t, cli, srv)
	want := int64(cli.Stats().Rekeys + srv.Stats().Rekeys)
	for deadline := time.Now().Add(time.Second); reported.Load() != want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the last callback runs just after the count moves
	}
	if got := reported.Load(); got != want {
		t.Errorf("OnRekey called %d times for %d rekeys", got, want)
	}
}

func waitEpochsMatch(t *testing.T, a, b *Session) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Epoch != b.Stats().Epoch {
		if time.Now().After(deadline) {
			t.Fatalf("epochs differ: %d and %d", a.Stats().Epoch, b.Stats().Epoch)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRekeyAfterOneHour: an idle session rekeys when its keys are an hour
// old, not before, on simulated time.
func TestRekeyAfterOneHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{})
		defer closeBoth(cli, srv)
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if e := cli.Stats().Epoch; e != 0 {
			t.Fatalf("epoch %d after 59 minutes", e)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if c, s := cli.Stats(), srv.Stats(); c.Epoch != 1 || s.Epoch != 1 || c.Rekeys != 1 {
			t.Fatalf("after 61 minutes: client epoch %d (%d rekeys), server epoch %d", c.Epoch, c.Rekeys, s.Epoch)
		}
		if cli.Err() != nil || srv.Err() != nil {
			t.Fatalf("sessions ended: %v / %v", cli.Err(), srv.Err())
		}
	})
}

// TestRekeyAfterPacketThreshold: a side that has sent RekeyPackets
// packets under one key rekeys.
func TestRekeyAfterPacketThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{RekeyPackets: 100})
		defer closeBoth(cli, srv)
		ch, _ := cli.OpenChannel(0)
		writes := 0
		for cli.Stats().PacketsSent < 99 {
			ch.Write([]byte{1})
			writes++
			synctest.Wait() // one packet per write
			if e := cli.Stats().Epoch; e != 0 {
				t.Fatalf("epoch %d after %d packets", e, cli.Stats().PacketsSent)
			}
		}
		// The 100th packet reaches the threshold: the writer starts the
		// rekey at once, before anything else is sent.
		ch.Write([]byte{2})
		writes++
		synctest.Wait()
		if c := cli.Stats(); c.Epoch != 1 || c.PacketsSent != 101 {
			t.Fatalf("epoch %d after %d packets sent, want 1 after 100 + REKEY_INIT", c.Epoch, c.PacketsSent)
		}
		sch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 200)
		if n, _ := io.ReadAtLeast(sch, buf, writes); n != writes {
			t.Fatalf("read %d bytes, want %d", n, writes)
		}
	})
}

// TestSimultaneousRekey: both sides start a rekey at once; the handshake
// initiator's wins, both end in one epoch, and data still flows.
func TestSimultaneousRekey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{})
		defer closeBoth(cli, srv)
		collisions := 0
		for i := 1; i <= 20; i++ {
			cli.Rekey()
			srv.Rekey()
			synctest.Wait()
			c, s := cli.Stats(), srv.Stats()
			if c.Epoch != s.Epoch {
				t.Fatalf("round %d: epochs %d and %d", i, c.Epoch, s.Epoch)
			}
			if c.Epoch < uint32(i) {
				t.Fatalf("round %d: epoch %d", i, c.Epoch)
			}
			srv.mu.Lock()
			collisions = int(srv.rk.collisions)
			srv.mu.Unlock()
		}
		if collisions == 0 {
			t.Fatal("no rekey collided; the test did not exercise the tie-break")
		}
		exchange(t, cli, srv, 1<<20)
	})
}

// TestRekeyAckNeverComes: a peer that ignores our REKEY_INIT gets 30 s,
// then the session ends with a REKEY_FAIL error.
func TestRekeyAckNeverComes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, _ := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{})
		go discardAll(sc) // a peer that reads and never answers
		defer sc.Close()
		cli := New(cc, ce, Config{IdleTimeout: time.Hour})
		defer func() { cli.Close(); sc.Close(); <-cli.Done() }()
		cli.Rekey()
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if cli.Err() != nil {
			t.Fatalf("gave up before 30 s: %v", cli.Err())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if !errors.Is(cli.Err(), ErrRekeyTimeout) {
			t.Fatalf("session error %v, want ErrRekeyTimeout", cli.Err())
		}
	})
}

// rekeyPeer is a hand-driven client that rekeys with the server itself,
// so tests can send what a correct Session never would.
type rekeyPeer struct {
	*rawPeer
	est  *handshake.Established
	acks chan wire.Rekey
}

func newRekeyPeer(t *testing.T) (*rekeyPeer, *Session) {
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	srv := New(sc, se, Config{})
	t.Cleanup(func() { srv.Close() })
	r := &rekeyPeer{rawPeer: &rawPeer{t: t, conn: cc, prot: seal.NewProtector(&ce.Keys.C2S), seq: ce.SendSeq, sid: ce.SID,
		closes: make(chan *wire.Close, 1), ended: make(chan struct{})}, est: ce, acks: make(chan wire.Rekey, 1)}
	opener := seal.NewProtector(&ce.Keys.S2C)
	go func() {
		defer close(r.ended)
		for {
			p, err := cc.ReadPacket()
			if err != nil {
				return
			}
			pt, err := opener.Open(*p)
			if err == nil {
				switch wire.PacketType(*p) {
				case wire.TypeRekey:
					m, _ := wire.ParseRekey(pt)
					r.acks <- m
					bufpool.Put(p)
					return // what follows is under keys this reader does not follow
				case wire.TypeClose:
					if c, err := wire.ParseClose(pt); err == nil && c.Scope == wire.ScopeSession {
						r.closes <- &c
					}
				}
			}
			bufpool.Put(p)
		}
	}()
	return r, srv
}

// rekey runs REKEY_INIT/ACK as the client and returns the new c2s keys.
func (r *rekeyPeer) rekey(t *testing.T) seal.DirectionKeys {
	e, _ := handshake.RekeyEphemeral()
	init := wire.Rekey{Kind: wire.RekeyInit, Epoch: 1, E: [32]byte(e.PublicKey().Bytes())}
	r.send(wire.TypeRekey, wire.FlagEncrypted, 0, wire.AppendRekey(nil, &init))
	var ack wire.Rekey
	select {
	case ack = <-r.acks:
	case <-time.After(5 * time.Second):
		t.Fatal("no REKEY_ACK")
	}
	ratchet := r.est.Keys.Rekey
	x := handshake.RekeyExchange{SID: r.sid, Ratchet: &ratchet, Epoch: 1, Role: handshake.RekeyByClient, Init: &init, Ack: &ack}
	keys, err := x.DeriveAsInitiator(e, r.est.Static, r.est.Peer)
	if err != nil {
		t.Fatal(err)
	}
	return keys.C2S
}

// TestOldKeysRefusedAfterRekey: after the switch point, a packet sealed
// under the previous epoch's keys is rejected and ends the session, while
// the same packet under the new keys is accepted.
func TestOldKeysRefusedAfterRekey(t *testing.T) {
	for _, useOld := range []bool{false, true} {
		r, srv := newRekeyPeer(t)
		newKeys := r.rekey(t)
		if !useOld {
			r.prot = seal.NewProtector(&newKeys)
		}
		r.send(wire.TypeData, wire.FlagEncrypted, 0, []byte("after the switch"))
		if useOld {
			if err := waitDone(t, srv); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("old keys after the switch: server ended with %v, want ErrAuthFailed", err)
			}
			continue
		}
		ch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _ := ch.Read(buf)
		if string(buf[:n]) != "after the switch" || srv.Stats().Epoch != 1 {
			t.Fatalf("read %q in epoch %d", buf[:n], srv.Stats().Epoch)
		}
	}
}

// TestRekeyProtocolViolations: a REKEY for the wrong epoch, an ACK nobody
// asked for and a malformed REKEY each end the session with REKEY_FAIL.
func TestRekeyProtocolViolations(t *testing.T) {
	e, _ := handshake.RekeyEphemeral()
	pub := [32]byte(e.PublicKey().Bytes())
	for name, pt := range map[string][]byte{
		"epoch 2 from epoch 0": wire.AppendRekey(nil, &wire.Rekey{Kind: wire.RekeyInit, Epoch: 2, E: pub}),
		"epoch 0 again":        wire.AppendRekey(nil, &wire.Rekey{Kind: wire.RekeyInit, Epoch: 0, E: pub}),
		"unsolicited ACK":      wire.AppendRekey(nil, &wire.Rekey{Kind: wire.RekeyAck, Epoch: 1, E: pub}),
		"low-order key":        wire.AppendRekey(nil, &wire.Rekey{Kind: wire.RekeyInit, Epoch: 1}),
		"short":                make([]byte, 39),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, srv := rawPair(t, Config{})
			r.send(wire.TypeRekey, wire.FlagEncrypted, 0, pt)
			var ce *CloseError
			if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeRekeyFail {
				t.Errorf("server ended with %v", err)
			}
			if c := r.closeReceived(t); c == nil || c.Code != wire.CodeRekeyFail {
				t.Errorf("CLOSE sent %+v, want REKEY_FAIL", c)
			}
		})
	}
}
