package session

import (
	"io"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// TestDirectSendOnlyWhenNothingMustGoFirst: a Write may skip the writer
// only for a small DATA with nothing ahead of it. Each state below must
// keep the packet in the queue: queued packets (order), pending window
// grants and notices, a telemetry HEARTBEAT, our unanswered REKEY_INIT
// (nothing may be sealed under the old keys, §5.4), a REKEY_ACK or key
// switch waiting for the writer, a peer's OVERLOAD pause (§7.13), our
// session CLOSE.
func TestDirectSendOnlyWhenNothingMustGoFirst(t *testing.T) {
	cli, _ := sessionPair(t, Config{})
	small := outPkt{typ: wire.TypeData, n: 64}
	cases := []struct {
		name string
		p    outPkt
		set  func(s *Session)
	}{
		{"packet above maxDirect", outPkt{typ: wire.TypeData, n: maxDirect + 1}, func(*Session) {}},
		{"channel CLOSE", outPkt{typ: wire.TypeClose, n: wire.CloseFixedLen}, func(*Session) {}},
		{"fragment", outPkt{typ: wire.TypeData, n: 64, flags: wire.FlagFragment}, func(*Session) {}},
		{"queued packet", small, func(s *Session) { s.out.items = append(s.out.items, outPkt{typ: wire.TypeData}) }},
		{"pending grant", small, func(s *Session) { s.out.creditN = 1 }},
		{"pending notice", small, func(s *Session) { s.out.notices = append(s.out.notices, outPkt{}) }},
		{"forced ACK", small, func(s *Session) { s.out.forceAck = true }},
		{"heartbeat due", small, func(s *Session) { s.out.heartbeat = true }},
		{"REKEY_INIT unanswered", small, func(s *Session) { s.rk.stalled = true }},
		{"REKEY_ACK to send", small, func(s *Session) { s.rk.ack = &wire.Rekey{} }},
		{"rekey due", small, func(s *Session) { s.rk.force = true }},
		{"peer paused us", small, func(s *Session) { s.ov.pausedUntil = time.Duration(s.monotonic()) + time.Hour }},
		{"closing", small, func(s *Session) { s.closing = true }},
	}
	// Wait until the writer has sent the first ACK and HEARTBEAT.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cli.mu.Lock()
		idle := cli.directOKLocked(&small)
		cli.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never went idle")
		}
		time.Sleep(time.Millisecond)
	}
	for _, tc := range cases {
		cli.mu.Lock()
		o, rk := &cli.out, &cli.rk
		items, notices, creditN, forceAck, hb := o.items, o.notices, o.creditN, o.forceAck, o.heartbeat
		stalled, ack, force := rk.stalled, rk.ack, rk.force
		paused, closing := cli.ov.pausedUntil, cli.closing
		tc.set(cli)
		if cli.directOKLocked(&tc.p) {
			t.Errorf("%s: sent directly, want queued", tc.name)
		}
		o.items, o.notices, o.creditN, o.forceAck, o.heartbeat = items, notices, creditN, forceAck, hb
		rk.stalled, rk.ack, rk.force = stalled, ack, force
		cli.ov.pausedUntil, cli.closing = paused, closing
		cli.mu.Unlock()
	}
}

// TestDirectAndQueuedKeepOrder: small writes (sent directly when the
// writer is idle) interleaved with large ones (queued) on two channels
// arrive complete and in order; a sequence number out of order would end
// the session (exact next seq over TCP).
func TestDirectAndQueuedKeepOrder(t *testing.T) {
	cli, srv := sessionPair(t, Config{})
	const rounds = 300
	errc := make(chan error, 2)
	for ch := 0; ch < 2; ch++ {
		c, err := cli.OpenChannel(ch * 2)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := range rounds {
				size := 64
				if i%7 == 0 {
					size = 3 * MaxDataPlaintext / 2
				}
				msg := make([]byte, size)
				for j := range msg {
					msg[j] = byte(i + j)
				}
				if _, err := c.Write(msg); err != nil {
					errc <- err
					return
				}
			}
			errc <- c.CloseWrite()
		}()
	}
	for range 2 {
		s, err := srv.AcceptChannel(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			got, err := io.ReadAll(s)
			if err != nil {
				errc <- err
				return
			}
			off := 0
			for i := range rounds {
				size := 64
				if i%7 == 0 {
					size = 3 * MaxDataPlaintext / 2
				}
				for j := range size {
					if off+j >= len(got) || got[off+j] != byte(i+j) {
						errc <- io.ErrUnexpectedEOF
						return
					}
				}
				off += size
			}
			errc <- nil
		}()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
}
