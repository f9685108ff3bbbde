package session

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// TestHeartbeatMeasures: over real sockets both sides exchange telemetry,
// verify each other's state digest, measure RTT from echoes, and keep the
// peer's report beside their own.
func TestHeartbeatMeasures(t *testing.T) {
	cfg := Config{HeartbeatInterval: 20 * time.Millisecond}
	cli, srv := sessionPair(t, cfg)
	exchange(t, cli, srv, 4<<20) // channels open and close, data flows, digests change
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, s := cli.Telemetry(), srv.Telemetry()
		if c.Local.RTTSamples >= 3 && s.Local.RTTSamples >= 3 && c.DigestChecks >= 3 && s.DigestChecks >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: client %+v\nserver %+v", c, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := cli.Telemetry()
	if c.Local.RTT <= 0 || c.Local.RTT > time.Second {
		t.Errorf("client RTT %v", c.Local.RTT)
	}
	if c.Peer.At == 0 || c.Peer.Uptime <= 0 || c.Peer.RxPackets == 0 || c.Peer.MTU == 0 {
		t.Errorf("client's view of the server's report is empty: %+v", c.Peer)
	}
	if c.Anomalies != 0 {
		t.Errorf("anomalies: %d (%s)", c.Anomalies, c.LastAnomaly)
	}
	if cli.Err() != nil || srv.Err() != nil {
		t.Fatalf("a session ended: %v / %v", cli.Err(), srv.Err())
	}
}

// TestDigestsSurviveRekeys: the state digest is checked at every heartbeat
// while rekeys, channel churn and data run together; any divergence of the
// replica would end the session with PROTOCOL_ERROR.
func TestDigestsSurviveRekeys(t *testing.T) {
	// Dead-peer detection is not under test: at 5 ms it would end the
	// session after 30 ms of a stalled (loaded, -race) scheduler.
	cli, srv := sessionPair(t, Config{HeartbeatInterval: 5 * time.Millisecond, HeartbeatMisses: 100000, RekeyPackets: 20})
	for i := 0; i < 4; i++ {
		exchange(t, cli, srv, 1<<20)
	}
	if cli.Err() != nil || srv.Err() != nil {
		t.Fatalf("a session ended: %v / %v", cli.Err(), srv.Err())
	}
	if c, s := cli.Telemetry(), srv.Telemetry(); c.DigestChecks == 0 || s.DigestChecks == 0 || cli.Stats().Rekeys == 0 {
		t.Fatalf("digest checks %d / %d, rekeys %d: the test exercised nothing", c.DigestChecks, s.DigestChecks, cli.Stats().Rekeys)
	}
}

// TestDeadPeerDetected: a peer that goes silent is declared dead after
// HeartbeatMisses intervals (30 s by default), not before, with an error
// that says so.
func TestDeadPeerDetected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, _ := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{})
		go discardAll(sc) // a peer that reads and never answers
		cli := New(cc, ce, Config{})
		defer func() { cli.Close(); sc.Close(); <-cli.Done() }()
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if cli.Err() != nil {
			t.Fatalf("declared dead after 29 s: %v", cli.Err())
		}
		time.Sleep(11 * time.Second) // the check runs every 10 s
		synctest.Wait()
		err := cli.Err()
		if !errors.Is(err, ErrPeerVanished) || !strings.Contains(err.Error(), "6 heartbeat intervals") {
			t.Fatalf("after 40 s of silence: %v", err)
		}
		if hb := cli.Telemetry().Local.HeartbeatsSent; hb < 6 {
			t.Errorf("only %d heartbeats sent in 40 s", hb)
		}
	})
}

// rawTelemetry builds a telemetry plaintext with the given digest.
func rawTelemetry(digest uint32) []byte {
	return wire.AppendTelemetry(nil, &wire.Telemetry{UptimeNs: 1, MTU: 65535, StateDigest: digest})
}

// TestStateDigestEnforced: a HEARTBEAT whose digest matches the sender's
// transmit state is accepted; one that does not ends the session with
// PROTOCOL_ERROR (PROTOCOL.md §7.9.2).
func TestStateDigestEnforced(t *testing.T) {
	for _, good := range []bool{true, false} {
		r, srv := rawPair(t, Config{})
		r.send(wire.TypeData, wire.FlagEncrypted, 3, []byte("hello")) // channel 3 active, 5 bytes
		d := wire.DigestState{Role: wire.RoleClient, SID: r.sid, Seq: r.seq, EpochFirstSeq: r.seq - 1, DataBytesSent: 5}
		d.SetActive(3, true)
		digest := wire.StateDigest(&d)
		if !good {
			digest ^= 1
		}
		r.send(wire.TypeHeartbeat, wire.FlagsTelemetry, 0, rawTelemetry(digest))
		if good {
			deadline := time.Now().Add(5 * time.Second)
			for srv.Telemetry().DigestChecks == 0 {
				if time.Now().After(deadline) || srv.Err() != nil {
					t.Fatalf("correct digest not accepted: %v", srv.Err())
				}
				time.Sleep(time.Millisecond)
			}
			if p := srv.Telemetry().Peer; p.MTU != 65535 || p.Uptime != 1 {
				t.Errorf("peer report %+v", p)
			}
			continue
		}
		var ce *CloseError
		if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError || !strings.Contains(ce.Reason, "state digest") {
			t.Fatalf("wrong digest: server ended with %v", err)
		}
	}
}

// TestHeartbeatLengthChecked: a HEARTBEAT of neither telemetry nor notice
// length is a protocol error.
func TestHeartbeatLengthChecked(t *testing.T) {
	r, srv := rawPair(t, Config{})
	r.send(wire.TypeHeartbeat, wire.FlagsTelemetry, 0, make([]byte, 95))
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
		t.Fatalf("server ended with %v", err)
	}
}

// TestClientConfirmsWithEmptyACK: the client's first traffic packet is the
// empty ACK at ISN_C + 2 (PROTOCOL.md §4.11); its first HEARTBEAT follows.
func TestClientConfirmsWithEmptyACK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, _ := handshakePair(t)
		first := ce.SendSeq
		cc, sc := transport.Pipe(transport.PipeConfig{})
		cli := New(cc, ce, Config{})
		defer func() { cli.Close(); sc.Close(); <-cli.Done() }()
		for i, want := range []wire.Type{wire.TypeAck, wire.TypeHeartbeat} {
			p, err := sc.ReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			h, _ := wire.ParseHeader(*p)
			if h.Type != want || h.Seq != first+uint64(i) {
				t.Fatalf("packet %d: %v at seq %d, want %v at %d", i, h.Type, h.Seq, want, first+uint64(i))
			}
		}
	})
}
