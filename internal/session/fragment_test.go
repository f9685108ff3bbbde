package session

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/frag"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// TestFragmentedMessage: a control message larger than the path MTU
// travels in fragments no larger than the MTU and arrives whole; over TCP
// the same message is one packet.
func TestFragmentedMessage(t *testing.T) {
	msg := bytes.Repeat([]byte("journal entry.."), 540)[:8000]
	for _, datagram := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			ce, se := handshakePair(t)
			cc, sc := transport.Pipe(transport.PipeConfig{Datagram: datagram, DropAbove: 576})
			if !datagram {
				cc, sc = transport.Pipe(transport.PipeConfig{})
			}
			var mu sync.Mutex
			var got [][]byte
			cli := New(cc, ce, Config{})
			srv := New(sc, se, Config{OnMessage: func(typ wire.Type, m []byte) {
				mu.Lock()
				defer mu.Unlock()
				if typ == wire.TypeJournal {
					got = append(got, append([]byte(nil), m...))
				}
			}})
			defer closeBoth(cli, srv)
			synctest.Wait()
			if err := cli.SendMessage(wire.TypeJournal, msg); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || !bytes.Equal(got[0], msg) {
				t.Fatalf("datagram %v: %d messages received", datagram, len(got))
			}
			st := srv.Fragments()
			if datagram && (st.Completed != 1 || st.Fragments < 16) {
				t.Errorf("at MTU 512: %+v", st.Stats)
			}
			if !datagram && st.Fragments != 0 {
				t.Errorf("over TCP a message was fragmented: %+v", st.Stats)
			}
			if cc.Dropped() != 0 && !datagram {
				t.Error("packets lost")
			}
		})
	}
	if err := (&Session{}).SendMessage(wire.TypeData, msg); err == nil {
		t.Error("SendMessage of DATA accepted")
	}
}

// fragSender seals fragments as the client would, straight onto the pipe.
type fragSender struct {
	conn *transport.PipeConn
	prot *seal.Protector
	sid  [16]byte
	seq  uint64
}

func (f *fragSender) send(typ wire.Type, flags uint16, pt []byte) {
	b := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
	wire.PutHeader(b, &wire.Header{Version: 1, Type: typ, Flags: flags, Seq: f.seq, SID: f.sid, Length: uint16(len(pt) + wire.TagLen)})
	copy(b[wire.HeaderLen:], pt)
	f.seq++
	f.conn.WritePackets([][]byte{f.prot.Seal(b)})
}

// TestFragmentFlood: a peer sending first fragments of messages it never
// finishes keeps the receiver within P04 — at most 16 slots and 16 × MTU
// of memory — and every discarded message is counted and, at most 10 per
// second, reported with FRAG_TIMEOUT; the session lives on.
func TestFragmentFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, se := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{Datagram: true, Queue: 4096})
		srv := New(sc, se, Config{})
		defer func() { srv.Close(); cc.Close(); <-srv.Done() }()
		notices, seen, bad := 0, 0, 0
		go func() { // the flooder's receive side: count FRAG_TIMEOUTs
			open := seal.NewProtector(&ce.Keys.S2C)
			for {
				p, err := cc.ReadPacket()
				if err != nil {
					return
				}
				seen++
				pt, err := open.Open(*p)
				if err != nil {
					bad++
				}
				if err == nil && wire.PacketType(*p) == wire.TypeHeartbeat && len(pt) == wire.NoticeLen {
					if n, _ := wire.ParseNotice(pt); n.Code == wire.CodeFragTimeout {
						notices++
					}
				}
				bufpool.Put(p)
			}
		}()
		f := &fragSender{conn: cc, prot: seal.NewProtector(&ce.Keys.C2S), sid: ce.SID, seq: ce.SendSeq}
		chunk := make([]byte, 400)
		limit := frag.MaxMessage(wire.MinMTU)
		for i := 0; i < 2000; i++ {
			hdr := wire.Fragment{MsgID: uint32(i), Offset: 0, Total: 8192}
			f.send(wire.TypeJournal, wire.FlagsFragment, append(wire.AppendFragmentHeader(nil, &hdr), chunk...))
			if i%100 == 99 {
				synctest.Wait()
				st := srv.Fragments()
				if st.Active > 16 || st.Buffered > limit {
					t.Fatalf("after %d messages: %d slots, %d bytes held (cap %d)", i+1, st.Active, st.Buffered, limit)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		time.Sleep(6 * time.Second) // every slot expires
		synctest.Wait()
		st := srv.Fragments()
		if st.Active != 0 || st.Expired+st.Evicted+st.EvictedMemory != 2000 {
			t.Fatalf("after the flood: %+v", st.Stats)
		}
		if st.TimeoutNotices == 0 || st.TimeoutNotices > 10*(2+6)+10 {
			t.Errorf("%d FRAG_TIMEOUT notices for 2000 discards over 8 s; want some, at most 10/s", st.TimeoutNotices)
		}
		if notices != int(st.TimeoutNotices) {
			t.Errorf("%d notices arrived, %d sent; %d packets seen (%d bad), server sent %d", notices, st.TimeoutNotices, seen, bad, srv.Stats().PacketsSent)
		}
		if srv.Err() != nil {
			t.Fatalf("the flood ended the session: %v", srv.Err())
		}
	})
}

// TestFragmentRules: a fragmented DATA, a message whose fragments change
// type and a fragment that contradicts held bytes are protocol errors.
func TestFragmentRules(t *testing.T) {
	hdr := wire.Fragment{MsgID: 1, Total: 600}
	first := append(wire.AppendFragmentHeader(nil, &hdr), make([]byte, 300)...)
	for name, send := range map[string]func(r *rawPeer){
		"fragmented DATA": func(r *rawPeer) { r.send(wire.TypeData, wire.FlagsFragment, 0, first) },
		"type changes": func(r *rawPeer) {
			r.send(wire.TypeJournal, wire.FlagsFragment, 0, first)
			r.send(wire.TypeConfig, wire.FlagsFragment, 0, first)
		},
		"conflicting bytes": func(r *rawPeer) {
			r.send(wire.TypeJournal, wire.FlagsFragment, 0, first)
			other := append(wire.AppendFragmentHeader(nil, &hdr), bytes.Repeat([]byte{1}, 300)...)
			r.send(wire.TypeJournal, wire.FlagsFragment, 0, other)
		},
	} {
		r, srv := rawPair(t, Config{})
		send(r)
		var ce *CloseError
		if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
			t.Errorf("%s: server ended with %v", name, err)
		}
	}
}

// TestProbeFlood: probes sent far faster than one per second are answered
// at most in a burst of 4 and then once a second; the rest are dropped and
// counted, and the session lives on (P05).
func TestProbeFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, se := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{Datagram: true, Queue: 4096})
		srv := New(sc, se, Config{})
		defer func() { srv.Close(); cc.Close(); <-srv.Done() }()
		go discardAll(cc) // a peer that reads and never answers
		f := &fragSender{conn: cc, prot: seal.NewProtector(&ce.Keys.C2S), sid: ce.SID, seq: ce.SendSeq}
		for i := 0; i < 1000; i++ {
			probe := wire.AppendDiscover(nil, &wire.Discover{Kind: wire.DiscoverProbe, Size: 600, ID: uint32(i + 1)})
			f.send(wire.TypeDiscover, wire.FlagEncrypted, probe)
			if i%100 == 99 {
				time.Sleep(time.Second) // 100 probes a second for 10 s
			}
		}
		synctest.Wait()
		answered, dropped := srv.ProbeAnswers()
		if answered > 4+10 || answered+dropped != 1000 {
			t.Fatalf("answered %d, dropped %d of 1000 probes in 10 s", answered, dropped)
		}
		if srv.Err() != nil {
			t.Fatalf("the flood ended the session: %v", srv.Err())
		}
	})
}
