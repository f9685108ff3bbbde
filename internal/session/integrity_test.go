package session

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// TestIntegrityOnDemand: each side proves the other's crypto path on
// demand, also across a rekey (the proof is keyed by the live epoch).
func TestIntegrityOnDemand(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := 0; round < 3; round++ {
		if err := cli.VerifyIntegrity(ctx); err != nil {
			t.Fatalf("round %d, client: %v", round, err)
		}
		if err := srv.VerifyIntegrity(ctx); err != nil {
			t.Fatalf("round %d, server: %v", round, err)
		}
		cli.Rekey()
		waitRekeys(t, cli, uint64(round+1))
	}
	if c := cli.Integrity(); c.Verified != 3 || c.Failed != 0 || c.Answered != 3 {
		t.Fatalf("client counters %+v", c)
	}
}

func waitRekeys(t *testing.T, s *Session, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Rekeys < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d rekeys, want %d", s.Stats().Rekeys, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIntegrityPeriodic: without being asked, each side challenges the
// other every 60 s once the peer's telemetry has arrived.
func TestIntegrityPeriodic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := pipePair(t, Config{})
		defer closeBoth(cli, srv)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if v := cli.Integrity().Verified; v != 0 {
			t.Fatalf("%d challenges before 60 s", v)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if c, s := cli.Integrity(), srv.Integrity(); c.Verified < 2 || s.Verified < 2 {
			t.Fatalf("after 3 minutes: client %+v, server %+v", c, s)
		}
	})
}

// TestIntegrityWrongProof: a peer whose integrity key is not the one the
// key schedule gives (a replaced key derivation, draft RT-C01) fails the
// challenge: the session ends with PROTOCOL_ERROR and the failure is
// reported, counted and returned.
func TestIntegrityWrongProof(t *testing.T) {
	var reported atomic.Int32
	cli, srv := sessionPair(t, Config{OnIntegrityFailure: func(error) { reported.Add(1) }})
	cli.mu.Lock()
	cli.integ.key[0] ^= 1 // the client answers with a wrong key
	cli.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.VerifyIntegrity(ctx); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("VerifyIntegrity = %v, want ErrIntegrity", err)
	}
	var ce *CloseError
	if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
		t.Fatalf("server ended with %v", err)
	}
	if err := waitDone(t, cli); !errors.As(err, &ce) || !ce.Remote || ce.Reason != "INTEGRITY proof mismatch" {
		t.Fatalf("client ended with %v", err)
	}
	if srv.Integrity().Failed != 1 {
		t.Errorf("failure not counted: %+v", srv.Integrity())
	}
	deadline := time.Now().Add(5 * time.Second)
	for reported.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("OnIntegrityFailure not called")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIntegrityForgedResponses: responses nobody asked for, or for a
// nonce that is not outstanding, are counted and ignored, never fatal.
func TestIntegrityForgedResponses(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	cli.mu.Lock()
	for i := 0; i < 100; i++ {
		cli.queueControlLocked(&wire.Integrity{Kind: wire.IntegrityResponse, Nonce: [32]byte{byte(i)}})
	}
	cli.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Integrity().Unmatched < 100 {
		if time.Now().After(deadline) || srv.Err() != nil {
			t.Fatalf("unmatched %d, err %v", srv.Integrity().Unmatched, srv.Err())
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.VerifyIntegrity(ctx); err != nil {
		t.Fatalf("a real challenge after the forgeries: %v", err)
	}
}

// TestIntegrityTimeout: a peer that never answers costs a counted timeout
// after 10 s, not the session.
func TestIntegrityTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ce, se := handshakePair(t)
		cc, sc := transport.Pipe(transport.PipeConfig{})
		go discardAll(sc) // a peer that reads and never answers
		var events stateLog
		cli := New(cc, ce, Config{OnEvent: events.add})
		defer func() { cli.Close(); sc.Close(); <-cli.Done() }()
		// It does send one telemetry HEARTBEAT, the layer signal (§7.7),
		// so the client challenges it.
		d := wire.DigestState{Role: wire.RoleServer, SID: se.SID, Seq: se.SendSeq, EpochFirstSeq: se.SendSeq}
		pt := wire.AppendTelemetry(nil, &wire.Telemetry{UptimeNs: 1, StateDigest: wire.StateDigest(&d)})
		b := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
		wire.PutHeader(b, &wire.Header{Version: 1, Type: wire.TypeHeartbeat, Flags: wire.FlagsTelemetry, Seq: se.SendSeq,
			SID: se.SID, Length: uint16(len(pt) + wire.TagLen)})
		copy(b[wire.HeaderLen:], pt)
		sc.WritePackets([][]byte{seal.NewProtector(&se.Keys.S2C).Seal(b)})
		synctest.Wait()
		start := time.Now()
		err := cli.VerifyIntegrity(context.Background())
		if !errors.Is(err, ErrIntegrityTimeout) || time.Since(start) != IntegrityTimeout {
			t.Fatalf("VerifyIntegrity = %v after %v", err, time.Since(start))
		}
		if cli.Err() != nil || cli.Integrity().Timeouts != 1 {
			t.Fatalf("after the timeout: err %v, %+v", cli.Err(), cli.Integrity())
		}
		synctest.Wait()
		if evs := events.get(); len(evs) != 1 || evs[0].Kind != EventIntegrityTimeout {
			t.Fatalf("events after the timeout: %+v", evs)
		}
	})
}
