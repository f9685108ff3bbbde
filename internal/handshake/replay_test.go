package handshake

// Replay tests (handshake.md §1.1 P1.4, §8.5 step 5, §8.13): one accepted
// RESPONSE per cookie, byte-identical retransmissions answered from the
// cache, everything else for a spent cookie dropped before any DH, a cache
// that never forgets a cookie while it still verifies, and fail-closed at
// the cap.

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/wire"
)

func TestSecReplayRetransmission(t *testing.T) {
	b := newBed(t, nil)
	r := b.handshake()
	dh := b.sDH.get()
	est, acc, err := b.srv.HandleResponse(r.resp, b.path)
	if err != nil || est != nil {
		t.Fatalf("retransmitted RESPONSE: est %v err %v; want nil Established and the cached ACCEPT", est != nil, err)
	}
	if !bytes.Equal(acc, r.accept) {
		t.Error("retransmission answered with a different ACCEPT (must be byte-identical, never a new session)")
	}
	if b.sDH.get() != dh {
		t.Errorf("retransmission cost %d DH", b.sDH.get()-dh)
	}
	if st := b.srv.Stats(); st.Accepted != 1 || st.ReplayedAccepts != 1 {
		t.Errorf("stats %+v", st)
	}
	// Any other bytes for the same SID: dropped, no DH. The header
	// timestamp (36-43) and HMAC field are outside the cookie, so such a
	// RESPONSE passes steps 1-4 and must be stopped by the cache.
	for _, off := range []int{offHdrTS + 7, offHdrHMAC, offCStatic, offCPC + 23} {
		bad := clone(r.resp)
		bad[off] ^= 1
		b.expectDrop("spent cookie, other bytes", bad, b.path, ErrReplay, 0)
	}
	// The client can still use its keys: the duplicate replaced nothing.
	if est, _, _ := b.srv.HandleResponse(r.resp, b.path); est != nil {
		t.Error("a duplicate created a second session")
	}
}

// A RESPONSE with a second, independently valid puzzle solution (re-solved
// nonce) for a spent cookie is dropped. A twin server with the same secret,
// identity and clock proves the re-solved RESPONSE is itself fully valid.
func TestSecReplayResolvedNonce(t *testing.T) {
	secret := bytes.Repeat([]byte{0xa5}, 32)
	clock := newFakeClock(tBase.Add(time.Second))
	sID, cID := genID(t), genID(t)
	mk := func() (*Server, *dhCounter) {
		s, err := NewServer(ServerConfig{Identity: sID, Now: clock.Now, InitRate: -1, Rand: ioMulti(secret),
			Authorize: func(k addr.PublicKey) bool { return k == cID.Public }})
		if err != nil {
			t.Fatal(err)
		}
		n := &dhCounter{}
		s.dh = n.fn()
		return s, n
	}
	srv, n := mk()
	twin, _ := mk()
	pin := sID.Public
	c, err := NewClient(ClientConfig{Identity: cID, PeerKey: &pin, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	chal, err := srv.HandleInit(nil, c.Init(), defaultPath)
	if err != nil {
		t.Fatal(err)
	}
	chalTwin, _ := twin.HandleInit(nil, c.Init(), defaultPath)
	if !bytes.Equal(chal, chalTwin) {
		t.Fatal("test premise: twin servers issue the same CHALLENGE")
	}
	c2 := *c // the same attempt, before it solves
	resp1, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := wire.ParseChallenge(chal)
	n1 := [16]byte(resp1[offN : offN+16])
	var n2 [16]byte
	for k := uint64(0); ; k++ {
		n2 = nonceFor(k)
		if n2 != n1 && PuzzleOK(&ch.SID, &n2, ch.D) {
			break
		}
	}
	resp2, err := c2.buildResponse(chal, &ch, n2)
	if err != nil {
		t.Fatal(err)
	}
	if est, _, err := twin.HandleResponse(resp2, defaultPath); err != nil || est == nil {
		t.Fatalf("premise: the re-solved RESPONSE is valid on its own: %v", err)
	}
	if est, _, err := srv.HandleResponse(resp1, defaultPath); err != nil || est == nil {
		t.Fatalf("first RESPONSE: %v", err)
	}
	before := n.get()
	if est, acc, err := srv.HandleResponse(resp2, defaultPath); !errors.Is(err, ErrReplay) || est != nil || acc != nil {
		t.Errorf("re-solved nonce for a spent cookie: %v, want ErrReplay and nothing (no duplicate session)", err)
	}
	if n.get() != before {
		t.Errorf("re-solved replay cost %d DH", n.get()-before)
	}
}

// The cache must hold a cookie for as long as it verifies, across rotations
// that recycle other slots; after 30 s the cookie itself is dead and a
// replay (even byte-identical) is rejected, not answered.
func TestSecReplayHorizon(t *testing.T) {
	b := newBed(t, nil) // T = 10 s
	b.clock.Set(tBase.Add(500 * time.Millisecond))
	r := b.handshake()
	// Rotate through the next two epochs, issuing cookies so their slots
	// are (re)keyed and the ring and cache are exercised.
	for _, at := range []time.Duration{10500 * time.Millisecond, 20500 * time.Millisecond} {
		b.clock.Set(tBase.Add(at))
		b.handshake()
	}
	b.clock.Set(tBase.Add(29900 * time.Millisecond)) // age 29.4 s, slot live
	est, acc, err := b.srv.HandleResponse(r.resp, b.path)
	if err != nil || est != nil || !bytes.Equal(acc, r.accept) {
		t.Errorf("retransmission at 29.4 s: err %v; want the cached ACCEPT", err)
	}
	bad := clone(r.resp)
	bad[offHdrTS] ^= 0x80
	b.expectDrop("other bytes at 29.4 s", bad, b.path, ErrReplay, 0)
	// At 31 s after issue: refused, no ACCEPT, no DH.
	b.clock.Set(tBase.Add(31500 * time.Millisecond))
	b.expectDrop("replay at 31 s", r.resp, b.path, ErrStaleCookie, 0)

	// Rotation = 300 s: the slot and its cache bucket are still live at
	// 31 s; the server-clock lifetime alone must refuse the replay.
	b2 := newBed(t, func(cfg *ServerConfig) { cfg.Rotation = MaxRotation })
	r2 := b2.handshake()
	b2.clock.Advance(31 * time.Second)
	b2.expectDrop("replay at 31 s, T = 300 s", r2.resp, b2.path, ErrStaleCookie, 0)
}

// At the cap the cache fails closed: no eviction, new RESPONSEs dropped
// before any DH, and the difficulty rises. Once slots expire it recovers.
func TestSecReplayCacheFull(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.ReplayCacheMax = 2 })
	r1 := b.handshake()
	r2 := b.handshake()
	c3, _ := b.client(nil)
	_, resp3 := b.respond(c3)
	d0 := b.srv.Difficulty()
	b.expectDrop("third RESPONSE, cache full", resp3, b.path, ErrReplayFull, 0)
	if d := b.srv.Difficulty(); d <= d0 {
		t.Errorf("difficulty %d after a full cache, want > %d", d, d0)
	}
	// Nothing was evicted: both earlier cookies are still spent.
	for i, r := range []run{r1, r2} {
		bad := clone(r.resp)
		bad[offHdrTS] ^= 1
		b.expectDrop("replay of an earlier cookie at the cap "+string(rune('1'+i)), bad, b.path, ErrReplay, 0)
		if est, acc, err := b.srv.HandleResponse(r.resp, b.path); err != nil || est != nil || !bytes.Equal(acc, r.accept) {
			t.Errorf("retransmission %d at the cap: %v", i+1, err)
		}
	}
	// After the cookies' slots die the cache empties and service resumes.
	b.clock.Advance(41 * time.Second)
	b.handshake()
}

// Bytes outside the cookie (header timestamp, HMAC field, c_static, c_pC)
// pass steps 1-4, so a corrupted copy costs the server DH, but it fails
// authentication and spends the cookie: the genuine RESPONSE racing behind
// it is then dropped (the documented price of inserting before DH, P1.4),
// and a replay of the corrupted copy costs nothing more.
func TestSecResponseAuthenticatedBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int
		dh   int64
	}{
		{"header timestamp", offHdrTS + 7, 1},
		{"header HMAC field", offHdrHMAC + 31, 2},
		{"c_static", offCStatic, 1},
		{"c_static tag", offCStatic + 47, 1},
		{"c_pC", offCPC, 2},
		{"c_pC tag", offCPC + 23, 2},
	} {
		b := newBed(t, nil)
		c, _ := b.client(nil)
		_, resp := b.respond(c)
		bad := clone(resp)
		bad[tc.off] ^= 1
		b.expectDrop(tc.name, bad, b.path, ErrAuth, tc.dh)
		b.expectDrop(tc.name+", replayed", bad, b.path, ErrReplay, 0)
		b.expectDrop(tc.name+", genuine after the burn", resp, b.path, ErrReplay, 0)
	}
}
