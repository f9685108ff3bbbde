package pmtu_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/pmtu"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// endpoint is the slice of a session this test needs: a sealer for its own
// direction and an opener for the peer's, as in PROTOCOL.md §6.
type endpoint struct {
	conn *transport.PipeConn
	out  *seal.Protector
	in   *seal.Protector
	seq  uint64
}

// send seals a DISCOVER plaintext (channel 0, flags ENCRYPTED, §7.10) and
// writes it.
func (e *endpoint) send(t *testing.T, pt []byte) int {
	b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(pt)+wire.TagLen)
	e.seq++
	wire.PutHeader(b, &wire.Header{Version: wire.Version1, Type: wire.TypeDiscover,
		Flags: wire.FlagEncrypted, Seq: e.seq, Length: uint16(len(pt) + wire.TagLen)})
	b = e.out.Seal(append(b, pt...))
	if err := e.conn.WritePackets([][]byte{b}); err != nil {
		t.Errorf("write: %v", err)
	}
	return len(b)
}

// receive reads DISCOVER packets, drops (and counts) any that do not
// authenticate — over raw IP a forged packet is dropped, not fatal (DESIGN
// 2.8) — and hands the parsed rest to fn, until the transport closes.
func (e *endpoint) receive(t *testing.T, forged *int, fn func(d wire.Discover, pktLen int)) {
	for {
		b, err := e.conn.ReadPacket()
		if err != nil {
			return
		}
		pkt := *b
		if wire.PacketType(pkt) != wire.TypeDiscover || wire.HeaderLen+wire.PayloadLen(pkt) != len(pkt) {
			t.Errorf("unexpected packet: %x", pkt[:min(len(pkt), 48)])
		} else if pt, err := e.in.Open(pkt); err != nil {
			*forged++
		} else if d, err := wire.ParseDiscover(pt); err != nil {
			t.Errorf("parse: %v", err)
		} else {
			fn(d, len(pkt))
		}
		bufpool.Put(b)
	}
}

type probeRec struct {
	size int
	id   uint32
}

// The integration shape: a session's owner goroutine drives a Prober over a
// datagram transport.Pipe whose path drops packets above N, with real
// sealed wire.Discover probes and acks; the peer answers through a
// Responder. An attacker who guesses every probe id (they are sequential,
// §7.10) and injects an ack naming it and its size gets nowhere, because the
// ack does not authenticate and never reaches the Prober (P05: responses
// only from the established session). The MTU settles exactly at
// N, every probe above N is lost in the pipe, and no probe is ever sent
// within a second of the previous one.
func TestPipeExchange(t *testing.T) {
	for _, n := range []int{1280, 1500, 9000} {
		synctest.Test(t, func(t *testing.T) {
			master := [seal.KeyLen]byte{1, 2, 3}
			keys := seal.DeriveEpoch(&master)
			c, s := transport.Pipe(transport.PipeConfig{Datagram: true, DropAbove: n})
			client := &endpoint{conn: c, out: seal.NewProtector(&keys.C2S), in: seal.NewProtector(&keys.S2C)}
			server := &endpoint{conn: s, out: seal.NewProtector(&keys.S2C), in: seal.NewProtector(&keys.C2S)}

			// The peer: answers every authenticated probe it receives.
			resp := pmtu.NewResponder(nil)
			var serverForged int
			serverDone := make(chan struct{})
			go func() {
				defer close(serverDone)
				server.receive(t, &serverForged, func(d wire.Discover, pktLen int) {
					if d.Kind != wire.DiscoverProbe || int(d.Size) != pktLen {
						t.Errorf("peer got %+v in %d bytes", d, pktLen)
						return
					}
					if ack, ok := resp.Answer(d); ok {
						server.send(t, wire.AppendDiscover(nil, &ack))
					}
				})
			}()

			// The attacker: for every probe, an ack with its id and size,
			// carrying a header that looks right and a made-up tag and HMAC.
			guesses := make(chan probeRec, 64)
			attackerDone := make(chan struct{})
			go func() {
				defer close(attackerDone)
				for g := range guesses {
					pt := wire.AppendDiscover(nil, &wire.Discover{Kind: wire.DiscoverProbeAck, Size: uint16(g.size), ID: g.id})
					b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(pt)+wire.TagLen)
					wire.PutHeader(b, &wire.Header{Version: wire.Version1, Type: wire.TypeDiscover,
						Flags: wire.FlagEncrypted, Seq: 1 << 40, Length: uint16(len(pt) + wire.TagLen),
						HMAC: [32]byte{0xde, 0xad}})
					b = append(append(b, pt...), make([]byte, wire.TagLen)...)
					if err := s.WritePackets([][]byte{b}); err != nil {
						return
					}
				}
			}()

			// The client's reader hands authenticated acks to the owner.
			acks := make(chan wire.Discover)
			stop := make(chan struct{})
			var clientForged int
			readerDone := make(chan struct{})
			go func() {
				defer close(readerDone)
				client.receive(t, &clientForged, func(d wire.Discover, _ int) {
					if d.Kind != wire.DiscoverProbeAck {
						t.Errorf("client got %+v", d)
						return
					}
					select {
					case acks <- d:
					case <-stop:
					}
				})
			}()

			// The owner goroutine: the Prober and its one timer.
			p := pmtu.New(pmtu.Config{Limit: c.MaxPacket(), Reliable: c.Reliable()})
			var sent []time.Time
			above, refused := 0, 0
			start := time.Now()
			for !p.Stats().Converged {
				if time.Since(start) > 5*time.Minute {
					t.Fatalf("no convergence: %+v", p.Stats())
				}
				size, id, ok, wait := p.NextProbe()
				if ok {
					if k := len(sent); k > 0 && time.Since(sent[k-1]) < pmtu.MinInterval {
						t.Fatalf("probe %v after the previous one", time.Since(sent[k-1]))
					}
					sent = append(sent, time.Now())
					pt := wire.AppendDiscover(nil, &wire.Discover{Kind: wire.DiscoverProbe, Size: uint16(size), ID: id})
					if got := client.send(t, pt); got != size {
						t.Fatalf("probe of %d bytes on the wire, asked %d", got, size)
					}
					if size > n {
						above++
					}
					guesses <- probeRec{size, id}
					continue
				}
				if p.Stats().Converged {
					break
				}
				timer := time.NewTimer(wait)
				select {
				case a := <-acks:
					if err := p.OnAck(a.ID, int(a.Size)); err != nil {
						if !errors.Is(err, pmtu.ErrRefused) {
							t.Fatalf("OnAck: %v", err)
						}
						refused++
					}
				case <-timer.C:
				}
				timer.Stop()
			}
			close(stop)
			close(guesses)
			<-attackerDone
			c.Close()
			<-readerDone
			<-serverDone

			st := p.Stats()
			if st.MTU > n || st.MTU <= n-pmtu.Resolution {
				t.Fatalf("MTU %d on a path of %d", st.MTU, n)
			}
			if got := c.Dropped(); got != uint64(above) || above == 0 {
				t.Fatalf("pipe dropped %d probes, %d were above %d", got, above, n)
			}
			if clientForged != len(sent) || serverForged != 0 {
				t.Fatalf("forged acks dropped: %d for %d probes (peer dropped %d)", clientForged, len(sent), serverForged)
			}
			if refused != 0 || st.Refused != 0 || st.Acks != uint64(len(sent)-above) {
				t.Fatalf("%d refused; stats %+v; %d probes, %d above the path", refused, st, len(sent), above)
			}
			if a, d := resp.Counts(); a != st.Acks || d != 0 {
				t.Fatalf("responder answered %d, dropped %d", a, d)
			}
			t.Logf("path %d: MTU %d, %d probes (%d lost), %d forged acks dropped, %v", n, st.MTU, len(sent), above, clientForged, time.Since(start))
		})
	}
}

// Over the TCP overlay (a reliable Pipe) the session MTU is MaxPacket() at
// once and no DISCOVER is ever sent (§7.10).
func TestPipeReliable(t *testing.T) {
	c, _ := transport.Pipe(transport.PipeConfig{})
	defer c.Close()
	p := pmtu.New(pmtu.Config{Limit: c.MaxPacket(), Reliable: c.Reliable()})
	if p.MTU() != wire.HeaderLen+wire.MaxPayload {
		t.Fatalf("MTU %d over TCP", p.MTU())
	}
	if _, _, ok, _ := p.NextProbe(); ok {
		t.Fatal("probe over TCP")
	}
}
