package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// TestMTUBlackHole: over a datagram path that silently drops every packet
// above N bytes, DISCOVER finds exactly N (PROTOCOL.md §7.10), a 1 MB
// message arrives whole before and after, and
// no packet but a probe is ever lost: DATA is never sent above the MTU.
func TestMTUBlackHole(t *testing.T) {
	for _, n := range []int{576, 1280} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ce, se := handshakePair(t)
				cc, sc := transport.Pipe(transport.PipeConfig{Datagram: true, DropAbove: n, Queue: 4096})
				var events stateLog
				cli, srv := New(cc, ce, Config{OnEvent: events.add}), New(sc, se, Config{})
				defer closeBoth(cli, srv)

				sendMessage(t, cli, srv, 1<<20) // at the 512-byte floor
				start := time.Now()
				var mtu int
				var st MTUStats
				for {
					time.Sleep(time.Second)
					synctest.Wait()
					if mtu, st = cli.PathMTU(); st.Converged || time.Since(start) > 5*time.Minute {
						break
					}
				}
				if !st.Converged || mtu != n {
					t.Fatalf("path %d: MTU %d, %+v", n, mtu, st)
				}
				t.Logf("path %d: MTU %d after %v of simulated time, %d probes", n, mtu, time.Since(start), st.Probes)
				checkMTUEvents(t, events.get(), n)
				// Re-probing every 60 s never lowers the MTU below what
				// the path carries, nor raises it above.
				time.Sleep(3 * time.Minute)
				synctest.Wait()
				if m, _ := cli.PathMTU(); m != mtu {
					t.Fatalf("MTU moved from %d to %d while the path stayed the same", mtu, m)
				}
				checkMTUEvents(t, events.get(), n) // re-probes report nothing
				_, st = cli.PathMTU()
				if tm := cli.Telemetry(); tm.Peer.MTU == 0 || tm.Anomalies != 0 {
					t.Errorf("telemetry after discovery: peer MTU %d, anomalies %d (%s)", tm.Peer.MTU, tm.Anomalies, tm.LastAnomaly)
				}
				// Both sides probe; only probes may have been lost.
				_, sst := srv.PathMTU()
				cLost, sLost := cc.Dropped(), sc.Dropped()
				if cLost == 0 || cLost > st.Probes || sLost > sst.Probes {
					t.Errorf("dropped %d and %d packets, probes sent %d and %d: something else was too big", cLost, sLost, st.Probes, sst.Probes)
				}
				synctest.Wait()
				sendMessage(t, cli, srv, 1<<20) // at the discovered MTU
				synctest.Wait()
				_, st2 := cli.PathMTU()
				_, sst2 := srv.PathMTU()
				if cc.Dropped()-cLost > st2.Probes-st.Probes || sc.Dropped()-sLost > sst2.Probes-sst.Probes {
					t.Fatalf("packets above the MTU were sent with the message: dropped %d and %d more", cc.Dropped()-cLost, sc.Dropped()-sLost)
				}
				if cli.Err() != nil || srv.Err() != nil {
					t.Fatalf("sessions ended: %v / %v", cli.Err(), srv.Err())
				}
			})
		})
	}
}

// sendMessage writes size bytes on a new channel and checks that they
// arrive whole.
func sendMessage(t *testing.T, cli, srv *Session, size int) {
	t.Helper()
	msg := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	ch, err := cli.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		ch.Write(msg)
		ch.CloseWrite()
	}()
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, sch); err != nil {
		t.Fatal(err)
	}
	if [32]byte(h.Sum(nil)) != sha256.Sum256(msg) {
		t.Fatal("message corrupted")
	}
	sch.Close()
	ch.Close()
}

// TestProbeAnsweredOverTCP: over TCP a node never probes, reports the TCP
// limit, and still answers a peer's probe.
func TestProbeAnsweredOverTCP(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	if mtu, st := cli.PathMTU(); mtu != wire.HeaderLen+wire.MaxPayload || st.Probes != 0 {
		t.Fatalf("MTU %d, %+v", mtu, st)
	}
	_ = srv
}

// TestDatagramDropsForgeriesAndReplays: over a datagram transport a forged
// packet and a replayed one are dropped and counted (DESIGN 2.8), the
// session lives on, and a packet ahead of a gap is accepted (the window).
func TestDatagramDropsForgeriesAndReplays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, se := handshakePair(t)
		keys := ce.Keys.C2S
		cc, sc := transport.Pipe(transport.PipeConfig{Datagram: true})
		var events stateLog
		cli, srv := New(cc, ce, Config{}), New(sc, se, Config{OnEvent: events.add})
		defer closeBoth(cli, srv)
		synctest.Wait()

		seq := ce.SendSeq + 1000 // far ahead: the gap is for lost packets
		pt := []byte("ahead of a gap")
		pkt := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
		wire.PutHeader(pkt, &wire.Header{Version: 1, Type: wire.TypeData, Flags: wire.FlagEncrypted, Seq: seq,
			SID: ce.SID, Length: uint16(len(pt) + wire.TagLen), Channel: 9})
		copy(pkt[wire.HeaderLen:], pt)
		sealed := seal.NewProtector(&keys).Seal(pkt)
		replay := append([]byte(nil), sealed...)
		forged := append([]byte(nil), sealed...)
		forged[len(forged)-1] ^= 1
		forged[5]++ // another seq, so it is not a replay but a forgery

		cc.WritePackets([][]byte{forged})
		synctest.Wait()
		if d := srv.Stats().Dropped; d != 1 || srv.Err() != nil {
			t.Fatalf("forgery: dropped %d, err %v", d, srv.Err())
		}
		cc.WritePackets([][]byte{sealed})
		synctest.Wait()
		ch, err := srv.AcceptChannel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, _ := ch.Read(buf); string(buf[:n]) != string(pt) {
			t.Fatalf("read %q", buf[:n])
		}
		cc.WritePackets([][]byte{replay})
		synctest.Wait()
		if d := srv.Stats().Dropped; d != 2 || srv.Err() != nil {
			t.Fatalf("replay: dropped %d, err %v", d, srv.Err())
		}
		// Both were reported, once, with their reasons (draft §11).
		for range 3 {
			cc.WritePackets([][]byte{replay})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		var got []string
		for _, ev := range events.get() {
			if ev.Kind == EventDropped {
				got = append(got, fmt.Sprintf("%v:%d", ev.Reason, ev.Count))
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != "auth:1 replay:4" {
			t.Fatalf("drop reports %v, want auth:1 replay:4", got)
		}
	})
}
