package handshake

// Adversarial tests of handshake.md §8 (see §8.13). Every test is meant to
// FAIL if the rule it names were broken: rejections are checked for their
// reason and for the number of X25519 operations they cost, and each forged
// packet is followed, where it matters, by proof that the genuine one still
// works (so a rejection is not vacuous).

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/wire"
)

// 1. Happy path with generated identities.
func TestSecHappyPath(t *testing.T) {
	b := newBed(t, nil)
	r := b.handshake()
	c, s := r.cEst, r.sEst
	if c.SID != s.SID || c.SID != [16]byte(r.chal[20:36]) {
		t.Errorf("SID: client %x server %x challenge %x", c.SID, s.SID, r.chal[20:36])
	}
	if c.Keys != s.Keys {
		t.Error("client and server derived different epoch-0 keys")
	}
	if c.Keys.C2S == c.Keys.S2C {
		t.Error("c2s and s2c keys are equal")
	}
	if c.SessionHash != s.SessionHash || c.SessionHash == ([32]byte{}) {
		t.Error("session hashes differ or are zero")
	}
	if c.Peer != b.sID.Public || s.Peer != b.cID.Public {
		t.Errorf("peers: client sees %v (want server %v), server sees %v (want client %v)", c.Peer, b.sID.Public, s.Peer, b.cID.Public)
	}
	if !c.Initiator || s.Initiator || c.Version != 1 || s.Version != 1 {
		t.Error("roles or version wrong")
	}
	isnC := binary.BigEndian.Uint64(r.init[4:12])
	isnS := binary.BigEndian.Uint64(r.accept[4:12])
	if c.SendSeq != isnC+2 || s.RecvSeq != isnC+2 {
		t.Errorf("c2s seq continuation: client sends %d, server expects %d, want ISN_C+2 = %d", c.SendSeq, s.RecvSeq, isnC+2)
	}
	if s.SendSeq != isnS+1 || c.RecvSeq != isnS+1 {
		t.Errorf("s2c seq continuation: server sends %d, client expects %d, want ISN_S+1 = %d", s.SendSeq, c.RecvSeq, isnS+1)
	}
	if isnC >= 1<<62 || isnS >= 1<<62 {
		t.Error("ISN not below 2^62")
	}
	if r.cDH.get() != 4 || b.sDH.get() != 4 {
		t.Errorf("DH counts: client %d server %d, want 4 and 4", r.cDH.get(), b.sDH.get())
	}
	// Event 2: the client's first c2s packet opens at the server, and s2c works too.
	pkt := trafficPacket(&c.Keys.C2S, c.SID, c.SendSeq, nil)
	if _, err := seal.NewProtector(&s.Keys.C2S).Open(pkt); err != nil {
		t.Errorf("server cannot open the client's first packet: %v", err)
	}
	pkt = trafficPacket(&s.Keys.S2C, s.SID, s.SendSeq, []byte("0.5-RTT"))
	if pt, err := seal.NewProtector(&c.Keys.S2C).Open(pkt); err != nil || string(pt) != "0.5-RTT" {
		t.Errorf("client cannot open the server's packet: %v", err)
	}
	// The client is single-use: a second CHALLENGE or ACCEPT is out of state.
	if _, err := r.c.HandleChallenge(context.Background(), r.chal); !errors.Is(err, ErrState) {
		t.Errorf("CHALLENGE after completion: %v, want ErrState", err)
	}
	if _, err := r.c.HandleAccept(r.accept); !errors.Is(err, ErrState) {
		t.Errorf("ACCEPT after completion: %v, want ErrState", err)
	}
	// Two handshakes between the same identities share nothing.
	r2 := b.handshake()
	if bytes.Equal(r2.accept[80:112], r.accept[80:112]) || bytes.Equal(r2.init[80:112], r.init[80:112]) {
		t.Error("e_S or e_C reused across sessions (must be fresh per session, §8.6)")
	}
	if r2.cEst.SID == c.SID || r2.cEst.Keys == c.Keys || r2.cEst.SessionHash == c.SessionHash {
		t.Error("a second handshake repeated the SID, keys or session hash")
	}
	if st := b.srv.Stats(); st.Accepted != 2 || st.Challenges != 2 {
		t.Errorf("stats %+v", st)
	}
}

// 2. INIT timestamp window, P10: |T_C - now| <= 30 s on the server's clock.
func TestSecInitClockSkew(t *testing.T) {
	b := newBed(t, nil)
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{
		{-31 * time.Second, false}, {31 * time.Second, false},
		{-30*time.Second - 1, false}, {30*time.Second + 1, false},
		{-29 * time.Second, true}, {29 * time.Second, true}, {0, true},
	} {
		cc := newFakeClock(b.clock.Now().Add(tc.skew))
		c, _ := b.client(func(cfg *ClientConfig) { cfg.Now = cc.Now })
		chal, err := b.srv.HandleInit(nil, c.Init(), b.path)
		if tc.ok {
			if err != nil || len(chal) != wire.ChallengeLen {
				t.Errorf("skew %v: %v, want a CHALLENGE", tc.skew, err)
			}
			continue
		}
		if !errors.Is(err, ErrClockSkew) || len(chal) != 0 {
			t.Errorf("skew %v: err %v, %d bytes; want ErrClockSkew and silence", tc.skew, err, len(chal))
		}
	}
	// A T_C with the top bit set (negative as int64) must not wrap into the window.
	c, _ := b.client(nil)
	init := clone(c.Init())
	binary.BigEndian.PutUint64(init[36:44], uint64(b.clock.Now().UnixNano())|1<<63)
	if _, err := b.srv.HandleInit(nil, init, b.path); err == nil {
		t.Error("INIT with T_C | 2^63 answered")
	}
	// A 29 s-slow client completes the whole handshake.
	cc := newFakeClock(b.clock.Now().Add(-29 * time.Second))
	c, n := b.client(func(cfg *ClientConfig) { cfg.Now = cc.Now })
	b.finish(c, n)
}

// 3. A nonce below the difficulty is refused at step 4, before any DH.
func TestSecPuzzleRejectedBeforeDH(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	chal, resp := b.respond(c)
	sid := [16]byte(chal[20:36])
	d := chal[114]
	bad := clone(resp)
	found := false
	for k := uint64(1 << 40); k < 1<<40+1000; k++ {
		n := nonceFor(k)
		if LeadingZeros(&sid, &n) < int(d) {
			copy(bad[offN:offN+16], n[:])
			found = true
			break
		}
	}
	if !found {
		t.Fatal("no failing nonce found")
	}
	b.expectDrop("under-difficulty nonce", bad, b.path, ErrPuzzle, 0)
	// An all-zero nonce is almost surely wrong too.
	zero := clone(resp)
	clear(zero[offN : offN+16])
	var zn [16]byte
	if !PuzzleOK(&sid, &zn, d) {
		b.expectDrop("zero nonce", zero, b.path, ErrPuzzle, 0)
	}
	// The rejection spent nothing: the genuine RESPONSE still completes.
	if est, _, err := b.srv.HandleResponse(resp, b.path); err != nil || est == nil {
		t.Fatalf("genuine RESPONSE after a bad nonce: %v", err)
	}
}

// 4a. The client bounds d before any work (cancelled ctx: solving would
// report "puzzle abandoned" instead of the expected error).
func TestSecClientDifficultyBounds(t *testing.T) {
	b := newBed(t, nil)
	for _, tc := range []struct {
		d    byte
		want error
	}{{15, ErrDifficulty}, {0, ErrDifficulty}, {25, ErrTooHard}, {60, ErrTooHard}, {255, ErrTooHard}} {
		c, n := b.client(nil)
		chal := clone(b.challenge(c))
		chal[114] = tc.d
		if _, err := c.HandleChallenge(cancelledCtx(), chal); !errors.Is(err, tc.want) {
			t.Errorf("d=%d: %v, want %v", tc.d, err, tc.want)
		}
		if n.get() != 0 {
			t.Errorf("d=%d: client ran %d DH", tc.d, n.get())
		}
	}
	// A lower client cap is honoured.
	c, _ := b.client(func(cfg *ClientConfig) { cfg.MaxDifficulty = 18 })
	chal := clone(b.challenge(c))
	chal[114] = 19
	if _, err := c.HandleChallenge(cancelledCtx(), chal); !errors.Is(err, ErrTooHard) {
		t.Errorf("d=19 over cap 18: %v, want ErrTooHard", err)
	}
	// After the forgeries the genuine CHALLENGE still works (state unchanged).
	chal[114] = 16
	if _, err := c.HandleChallenge(context.Background(), chal); err != nil {
		t.Errorf("genuine CHALLENGE after a forged d: %v", err)
	}
}

// 4b. The server binds d in the cookie and bounds it.
func TestSecServerDifficultyEcho(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	_, resp := b.respond(c)
	for _, tc := range []struct {
		d    byte
		want error
	}{{17, ErrBadCookie}, {24, ErrBadCookie}, {15, ErrDifficulty}, {0, ErrDifficulty}, {25, ErrDifficulty}, {255, ErrDifficulty}} {
		bad := clone(resp)
		bad[offD] = tc.d
		b.expectDrop("echoed d", bad, b.path, tc.want, 0)
	}
	if _, _, err := b.srv.HandleResponse(resp, b.path); err != nil {
		t.Fatalf("genuine RESPONSE: %v", err)
	}
}

// 5a. Rotation T = 10 s: a cookie needs a live slot (its epoch or one of the
// two after it) and now - t_iss <= 30 s, on the server's clock (P02).
func TestSecCookieRotation10s(t *testing.T) {
	for _, tc := range []struct {
		name          string
		issue, redeem time.Duration // offsets from tBase (an epoch start)
		want          error         // nil = accepted
	}{
		{"+19s, two epochs on", 9500 * time.Millisecond, 28500 * time.Millisecond, nil},
		{"+19s, one epoch on", 500 * time.Millisecond, 19500 * time.Millisecond, nil},
		{"+29.4s, slot still live", 500 * time.Millisecond, 29900 * time.Millisecond, nil},
		{"+21s, slot dead (3 epochs on)", 9500 * time.Millisecond, 30500 * time.Millisecond, ErrStaleCookie},
		{"+30.01s, slot dead and too old", 0, 30010 * time.Millisecond, ErrStaleCookie},
		{"+45s", 0, 45 * time.Second, ErrStaleCookie},
		{"slot reused 4 epochs on", 1 * time.Second, 41 * time.Second, ErrStaleCookie},
		{"server clock before t_iss", 5 * time.Second, 4 * time.Second, ErrStaleCookie},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, nil)
			b.clock.Set(tBase.Add(tc.issue))
			c, _ := b.client(nil)
			_, resp := b.respond(c)
			b.clock.Set(tBase.Add(tc.redeem))
			if tc.redeem > 40*time.Second {
				// Force the slot to be reused by a fresh secret first.
				c2, _ := b.client(nil)
				b.challenge(c2)
			}
			if tc.want != nil {
				b.expectDrop(tc.name, resp, b.path, tc.want, 0)
				return
			}
			if est, _, err := b.srv.HandleResponse(resp, b.path); err != nil || est == nil {
				t.Errorf("cookie %v after issue rejected: %v", tc.redeem-tc.issue, err)
			}
		})
	}
}

// 5b. Rotation T = 300 s: the slot stays live for minutes, but the cookie
// must die 30 s after t_iss on the server's clock.
func TestSecCookieLifetime300s(t *testing.T) {
	for _, tc := range []struct {
		age time.Duration
		ok  bool
	}{{29 * time.Second, true}, {30 * time.Second, true}, {30*time.Second + time.Millisecond, false}, {31 * time.Second, false}, {250 * time.Second, false}} {
		b := newBed(t, func(cfg *ServerConfig) { cfg.Rotation = MaxRotation })
		b.clock.Set(tBase.Add(time.Second))
		c, _ := b.client(nil)
		_, resp := b.respond(c)
		b.clock.Advance(tc.age)
		if b.srv.ring.epochAt(b.clock.Now()) != b.srv.ring.epochAt(tBase) {
			t.Fatal("test premise: still in the issuing epoch")
		}
		if tc.ok {
			if _, _, err := b.srv.HandleResponse(resp, b.path); err != nil {
				t.Errorf("age %v: %v, want accepted", tc.age, err)
			}
			continue
		}
		b.expectDrop("cookie older than 30 s with a live slot", resp, b.path, ErrStaleCookie, 0)
	}
}

// 5c. P02 and P11 bounds on the configuration.
func TestSecNewServerLimits(t *testing.T) {
	id := genID(t)
	allow := func(addr.PublicKey) bool { return true }
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
		ok   bool
	}{
		{"rotation 301 s", ServerConfig{Rotation: 301 * time.Second}, false},
		{"rotation 300 s + 1 ns", ServerConfig{Rotation: MaxRotation + 1}, false},
		{"rotation 1 h", ServerConfig{Rotation: time.Hour}, false},
		{"negative rotation", ServerConfig{Rotation: -time.Second}, false},
		{"rotation 300 s", ServerConfig{Rotation: MaxRotation}, true},
		{"min difficulty 15", ServerConfig{MinDifficulty: 15}, false},
		{"min difficulty 1", ServerConfig{MinDifficulty: 1}, false},
		{"max below min", ServerConfig{MinDifficulty: 20, MaxDifficulty: 18}, false},
		{"max difficulty 15", ServerConfig{MaxDifficulty: 15}, false},
		{"min difficulty 16", ServerConfig{MinDifficulty: 16}, true},
	} {
		tc.cfg.Identity, tc.cfg.Authorize = id, allow
		s, err := NewServer(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok = %v", tc.name, err, tc.ok)
		}
		if err == nil && (s.cfg.Rotation <= 0 || s.cfg.Rotation > MaxRotation || s.Difficulty() < MinDifficulty) {
			t.Errorf("%s: accepted config out of bounds: rotation %v d %d", tc.name, s.cfg.Rotation, s.Difficulty())
		}
	}
	if _, err := NewServer(ServerConfig{Identity: id}); err == nil {
		t.Error("server without an authorization policy accepted")
	}
}

// 6a. Per-field swaps (§8.13): each echoed field, d, j, t_iss, the SID and
// the fixed header fields. Every one must be rejected before any DH, and the
// genuine RESPONSE must still succeed afterwards (so none of them spent the
// cookie in the replay cache).
func TestSecResponseFieldSwap(t *testing.T) {
	b := newBed(t, nil)
	// Make the previous epoch's slot live, so a swapped j hits a live secret
	// and must fail on the MAC, not merely on a dead slot.
	b.clock.Set(tBase.Add(-5 * time.Second))
	cOld, _ := b.client(nil)
	chalOld := b.challenge(cOld)
	b.clock.Set(tBase.Add(time.Second))
	c, _ := b.client(nil)
	chal, resp := b.respond(c)
	if chal[115] == chalOld[115] {
		t.Fatal("test premise: two live slots")
	}
	b.clock.Advance(2 * time.Second) // so t_iss +- 1 stays inside [0, 30 s]
	other := genID(t).Public
	set := func(off int, v []byte) func([]byte) { return func(p []byte) { copy(p[off:], v) } }
	u64 := func(off int, delta uint64) func([]byte) { return func(p []byte) { addU64(p, off, delta) } }
	for _, tc := range []struct {
		name string
		mut  func([]byte)
		want error
	}{
		{"e_C other key", set(offEC, other[:]), ErrBadCookie},
		{"e_C low bit", func(p []byte) { p[offEC] ^= 1 }, ErrBadCookie},
		{"T_C +1ns", u64(offTC, 1), ErrBadCookie},
		{"T_C -1s", u64(offTC, ^uint64(time.Second)+1), ErrBadCookie},
		{"ISN_C and seq +1", func(p []byte) { addU64(p, offISNC, 1); addU64(p, offHdrSeq, 1) }, ErrBadCookie},
		{"ISN_C alone", u64(offISNC, 1), ErrMalformed},
		{"header seq alone", u64(offHdrSeq, 1), ErrMalformed},
		{"versions_C 0x0006", set(offVersions, []byte{0, 6}), ErrBadCookie},
		{"versions_C 0x0003", set(offVersions, []byte{0, 3}), ErrBadCookie},
		{"server_hint zero", set(offHint, make([]byte, 8)), ErrBadCookie},
		{"server_hint bit", func(p []byte) { p[offHint+7] ^= 0x80 }, ErrBadCookie},
		{"t_iss -1ns", u64(offTIss, ^uint64(0)), ErrBadCookie},
		{"t_iss +1ns", u64(offTIss, 1), ErrBadCookie},
		{"d 16->17", func(p []byte) { p[offD]++ }, ErrBadCookie},
		{"j -> other live slot", func(p []byte) { p[offJ] = chalOld[115] }, ErrBadCookie},
		{"j = 4", func(p []byte) { p[offJ] = 4 }, ErrStaleCookie},
		{"j = 255", func(p []byte) { p[offJ] = 255 }, ErrStaleCookie},
		{"header SID bit", func(p []byte) { p[offHdrSID+15] ^= 1 }, ErrBadCookie},
		{"header SID = other cookie", set(offHdrSID, chalOld[20:36]), ErrBadCookie},
		{"flags 0", func(p []byte) { p[3] = 0 }, ErrMalformed},
		{"flags extra bit", func(p []byte) { p[2] = 1 }, ErrMalformed},
		{"reserved byte 1", func(p []byte) { p[1] = 1 }, ErrMalformed},
		{"ack nonzero", u64(offHdrAck, 1), ErrMalformed},
		{"length", func(p []byte) { p[45]++ }, ErrMalformed},
		{"channel", func(p []byte) { p[46] = 1 }, ErrMalformed},
		{"reserved byte 47", func(p []byte) { p[47] = 1 }, ErrMalformed},
		{"version nibble 2", func(p []byte) { p[0] = 0x22 }, ErrMalformed},
		{"type CHALLENGE", func(p []byte) { p[0] = 0x11 }, ErrMalformed},
		{"e_C bit 255", func(p []byte) { p[offEC+31] |= 0x80 }, ErrNonCanonicalKey},
	} {
		bad := clone(resp)
		tc.mut(bad)
		b.expectDrop(tc.name, bad, b.path, tc.want, 0)
	}
	for _, n := range []int{0, 1, wire.ResponseLen - 1, wire.ResponseLen + 1, 2 * wire.ResponseLen} {
		bad := make([]byte, n)
		copy(bad, resp)
		b.expectDrop("length "+strconv.Itoa(n), bad, b.path, ErrMalformed, 0)
	}
	if st := b.srv.Stats(); st.Accepted != 0 {
		t.Fatalf("something was accepted: %+v", st)
	}
	if est, _, err := b.srv.HandleResponse(resp, b.path); err != nil || est == nil {
		t.Fatalf("genuine RESPONSE after the swaps: %v (a rejected swap spent the cookie?)", err)
	}
}

// 6b. The cookie binds the path: the same RESPONSE from another client port
// or address, to another server address or port, or over the other
// transport, is refused before any DH.
func TestSecResponsePathSwap(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	_, resp := b.respond(c)
	p := b.path
	mut := func(f func(*Path)) Path { q := p; f(&q); return q }
	for _, tc := range []struct {
		name string
		p    Path
	}{
		{"client port", mut(func(q *Path) { q.Client = netip.AddrPortFrom(q.Client.Addr(), q.Client.Port()+1) })},
		{"client IP (same /24)", mut(func(q *Path) { q.Client = netip.MustParseAddrPort("192.0.2.11:49152") })},
		{"client IP v6", mut(func(q *Path) { q.Client = netip.MustParseAddrPort("[2001:db8::10]:49152") })},
		{"server port", mut(func(q *Path) { q.Server = netip.AddrPortFrom(q.Server.Addr(), q.Server.Port()+1) })},
		{"server IP", mut(func(q *Path) { q.Server = netip.MustParseAddrPort("198.51.100.21:9253") })},
		{"transport raw IP", mut(func(q *Path) { q.Transport = TransportRawIP })},
		{"transport 0", mut(func(q *Path) { q.Transport = 0 })},
		{"raw IP, ports zero", Path{Transport: TransportRawIP, Client: netip.AddrPortFrom(p.Client.Addr(), 0), Server: netip.AddrPortFrom(p.Server.Addr(), 0)}},
	} {
		b.expectDrop(tc.name, resp, tc.p, ErrBadCookie, 0)
	}
	// The same client address reported as IPv4-mapped IPv6 (a dual-stack
	// socket) is the same path: the cookie must still verify (§1.3).
	mapped := mut(func(q *Path) {
		q.Client = netip.AddrPortFrom(netip.AddrFrom16(q.Client.Addr().As16()), q.Client.Port())
		q.Server = netip.AddrPortFrom(netip.AddrFrom16(q.Server.Addr().As16()), q.Server.Port())
	})
	if est, _, err := b.srv.HandleResponse(resp, mapped); err != nil || est == nil {
		t.Fatalf("RESPONSE on the v4-mapped form of its own path: %v", err)
	}
}

// 6c. A cookie minted by one server is not redeemable at another, even one
// that shares the cookie secret (a cluster, §1.1): s_S is in the MAC.
func TestSecCookieOtherServer(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a}, 32)
	clock := newFakeClock(tBase.Add(time.Second))
	cID := genID(t)
	mk := func(id *addr.Identity) (*Server, *dhCounter) {
		s, err := NewServer(ServerConfig{Identity: id, Now: clock.Now, InitRate: -1,
			Rand:      ioMulti(secret),
			Authorize: func(k addr.PublicKey) bool { return k == cID.Public }})
		if err != nil {
			t.Fatal(err)
		}
		n := &dhCounter{}
		s.dh = n.fn()
		return s, n
	}
	idA, idB := genID(t), genID(t)
	sA, _ := mk(idA)
	sB, nB := mk(idB)
	pinA := idA.Public
	c, err := NewClient(ClientConfig{Identity: cID, PeerKey: &pinA, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	chal, err := sA.HandleInit(nil, c.Init(), defaultPath)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		t.Fatal(err)
	}
	// B issues a cookie in the same slot, so it holds a live secret (the
	// same bytes as A's): the refusal must come from the MAC.
	pinB := idB.Public
	c2, _ := NewClient(ClientConfig{Identity: cID, PeerKey: &pinB, Now: clock.Now})
	chalB, err := sB.HandleInit(nil, c2.Init(), defaultPath)
	if err != nil {
		t.Fatal(err)
	}
	if chalB[115] != chal[115] || sA.ring.key[chal[115]] != sB.ring.key[chal[115]] {
		t.Fatal("test premise: A and B share the live secret")
	}
	before := nB.get()
	if _, _, err := sB.HandleResponse(resp, defaultPath); !errors.Is(err, ErrBadCookie) {
		t.Errorf("A's cookie at B: %v, want ErrBadCookie", err)
	}
	if nB.get() != before {
		t.Errorf("B spent %d DH on A's cookie", nB.get()-before)
	}
	// Even B's own static key substituted into the CHALLENGE would fail: the
	// client pinned A. And A still accepts its own cookie.
	if est, _, err := sA.HandleResponse(resp, defaultPath); err != nil || est == nil {
		t.Fatalf("A's own cookie at A: %v", err)
	}
	// A server without any live secret (fresh, never issued) refuses too.
	sC, nC := mk(genID(t))
	if _, _, err := sC.HandleResponse(resp, defaultPath); err == nil || nC.get() != 0 {
		t.Errorf("fresh server: err %v, %d DH", err, nC.get())
	}
}

// 8a. A client key not on the allow-list: possession is proven first (es and
// ss, exactly two DH), then silence; no e_S, no session, and a resend of the
// same RESPONSE costs nothing more.
func TestSecUnauthorizedClient(t *testing.T) {
	b := newBed(t, func(cfg *ServerConfig) { cfg.Authorize = func(addr.PublicKey) bool { return false } })
	c, _ := b.client(nil)
	_, resp := b.respond(c)
	b.expectDrop("unauthorized client", resp, b.path, ErrUnauthorized, 2)
	b.expectDrop("unauthorized client, resent", resp, b.path, ErrReplay, 0)
	if st := b.srv.Stats(); st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
	// An allow-list probe with a key one does not hold: the attacker puts
	// the allowed key in c_static but cannot compute ss, so the RESPONSE
	// fails authentication and the list's answer is never reached.
	b2 := newBed(t, nil)
	sentinel := genID(t)
	c2, _ := b2.client(func(cfg *ClientConfig) {
		cfg.Identity = &addr.Identity{Private: sentinel.Private, Public: b2.cID.Public}
	})
	_, resp2 := b2.respond(c2)
	b2.expectDrop("probe with an allowed key not held", resp2, b2.path, ErrAuth, 2)
}

// 8b. A wrong pin aborts before solving and before any DH.
func TestSecClientPinMismatch(t *testing.T) {
	b := newBed(t, nil)
	wrong := genID(t).Public
	c, n := b.client(func(cfg *ClientConfig) { cfg.PeerKey = &wrong })
	chal, err := b.srv.HandleInit(nil, c.Init(), b.path)
	if !errors.Is(err, ErrWrongServer) {
		t.Errorf("INIT hinting another identity: %v, want ErrWrongServer", err)
	}
	// Even if a CHALLENGE arrives (say the server ignored the hint): abort.
	c0, _ := b.client(nil)
	chal = b.challenge(c0)
	binary.BigEndian.PutUint64(chal[12:20], c.ISN())
	if _, err := c.HandleChallenge(cancelledCtx(), chal); !errors.Is(err, ErrPinMismatch) {
		t.Errorf("full-key pin: %v, want ErrPinMismatch", err)
	}
	wrongID := wrong.NodeID()
	c2, n2 := b.client(func(cfg *ClientConfig) { cfg.PeerKey, cfg.PeerNodeID = nil, &wrongID })
	chal2 := clone(chal)
	binary.BigEndian.PutUint64(chal2[12:20], c2.ISN())
	if _, err := c2.HandleChallenge(cancelledCtx(), chal2); !errors.Is(err, ErrPinMismatch) {
		t.Errorf("node-ID pin: %v, want ErrPinMismatch", err)
	}
	if n.get()+n2.get() != 0 {
		t.Errorf("client DH before the pin check: %d", n.get()+n2.get())
	}
	// The TOFU pin on the right node ID works and reports the full key.
	goodID := b.sID.Public.NodeID()
	c3, n3 := b.client(func(cfg *ClientConfig) { cfg.PeerKey, cfg.PeerNodeID = nil, &goodID })
	r := b.finish(c3, n3)
	if r.cEst.Peer != b.sID.Public {
		t.Error("TOFU: wrong peer key reported")
	}
	// The client refuses to talk to its own identity.
	self := b.sID
	c4, _ := b.client(func(cfg *ClientConfig) { cfg.Identity = self })
	if _, err := c4.HandleChallenge(cancelledCtx(), b.challenge(c4)); !errors.Is(err, ErrSelfConnection) {
		t.Errorf("client with the server's identity: %v, want ErrSelfConnection", err)
	}
}

// 8c. Man in the middle with its own static key.
func TestSecMITM(t *testing.T) {
	b := newBed(t, nil)
	// M answers the INIT itself, with its own identity: the pin stops C.
	mID := genID(t)
	m, err := NewServer(ServerConfig{Identity: mID, Now: b.clock.Now, InitRate: -1, Authorize: func(addr.PublicKey) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	c, n := b.client(nil)
	init := clone(c.Init())
	clear(init[114:122]) // M strips the hint so its server answers
	mChal, err := m.HandleInit(nil, init, b.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandleChallenge(cancelledCtx(), mChal); !errors.Is(err, ErrPinMismatch) {
		t.Errorf("M's CHALLENGE: %v, want ErrPinMismatch", err)
	}
	// M substitutes its key into S's genuine CHALLENGE: same result.
	chal := b.challenge(c)
	sub := clone(chal)
	copy(sub[80:112], mID.Public[:])
	if _, err := c.HandleChallenge(cancelledCtx(), sub); !errors.Is(err, ErrPinMismatch) {
		t.Errorf("substituted s_S: %v, want ErrPinMismatch", err)
	}
	if n.get() != 0 {
		t.Errorf("client ran %d DH on M's CHALLENGEs", n.get())
	}
	// M relays S's CHALLENGE and C's RESPONSE, then replaces e_S in the
	// ACCEPT with its own ephemeral (it cannot compute the stage-3 keys).
	resp, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		t.Fatal(err)
	}
	sEst, accept, err := b.srv.HandleResponse(resp, b.path)
	if err != nil {
		t.Fatal(err)
	}
	mE, _ := ecdh.X25519().GenerateKey(rand.Reader)
	forged := clone(accept)
	copy(forged[80:112], mE.PublicKey().Bytes())
	if _, err := c.HandleAccept(forged); !errors.Is(err, ErrServerAuth) {
		t.Errorf("ACCEPT with M's e_S: %v, want ErrServerAuth", err)
	}
	// M re-MACs nothing it can: flipping the HMAC field or c_pS fails too.
	for _, off := range []int{48, 79, 112, 135, 36} {
		f := clone(accept)
		f[off] ^= 1
		if _, err := c.HandleAccept(f); !errors.Is(err, ErrServerAuth) {
			t.Errorf("ACCEPT byte %d flipped: %v, want ErrServerAuth", off, err)
		}
	}
	// Header fields of the ACCEPT are checked before any DH.
	before := n.get()
	for _, f := range []func([]byte){
		func(p []byte) { addU64(p, 12, 1) },           // ack != ISN_C+1
		func(p []byte) { p[20] ^= 1 },                 // SID
		func(p []byte) { p[3] = 0 },                   // flags
		func(p []byte) { p[111] |= 0x80 },             // e_S bit 255
		func(p []byte) { copy(p[80:112], fieldP[:]) }, // e_S = p
	} {
		g := clone(accept)
		f(g)
		if _, err := c.HandleAccept(g); err == nil || errors.Is(err, ErrServerAuth) {
			t.Errorf("malformed ACCEPT: %v, want a pre-DH rejection", err)
		}
	}
	if n.get() != before {
		t.Errorf("client ran %d DH on malformed ACCEPTs", n.get()-before)
	}
	// None of the forgeries spoiled the attempt: the genuine ACCEPT works.
	cEst, err := c.HandleAccept(accept)
	if err != nil {
		t.Fatalf("genuine ACCEPT after forgeries: %v", err)
	}
	if cEst.Keys != sEst.Keys {
		t.Error("keys differ after forged ACCEPTs")
	}
}

// fieldP is 2^255 - 19, little-endian.
var fieldP = [32]byte{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}

// 8d. KCI (§8.13): an attacker A that has stolen the server's static private
// key s_S, and knows only the PUBLIC key s_C of an allowed client, tries to
// impersonate that client.
//
//   - The RESPONSE stage authenticates the client only through
//     ss = DH(s_C, s_S). A can compute ss as DH(s_S_priv, s_C_pub), so its
//     RESPONSE passes (documented: "the RESPONSE step only gates the
//     allow-list") and the server even creates the unconfirmed session.
//   - The traffic keys also mix se = DH(s_C, e_S) = DH(e_S_priv, s_C_pub).
//     A holds neither s_C_priv nor e_S_priv, so it must guess se, and its keys
//     differ from the server's: it never sends a packet the server accepts
//     (the client is never confirmed) and cannot read the server's 0.5-RTT data.
func TestSecKCI(t *testing.T) {
	b := newBed(t, nil)
	victim := b.cID.Public
	sPub := b.sID.Public
	// sentinel stands in for the s_C_priv A does not have.
	sentinel := genID(t).Private
	var guessSE []byte
	a, _ := b.client(func(cfg *ClientConfig) { cfg.Identity = &addr.Identity{Private: sentinel, Public: victim} })
	a.dh = func(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
		if priv != sentinel {
			return x25519(priv, pub) // es and ee: A's own ephemeral
		}
		if bytes.Equal(pub, sPub[:]) {
			return x25519(b.sID.Private, victim[:]) // ss via the stolen s_S (KCI)
		}
		out, err := x25519(sentinel, pub) // se: a guess; A lacks both halves
		guessSE = out
		return out, err
	}
	_, resp := b.respond(a)
	sEst, accept, err := b.srv.HandleResponse(resp, b.path)
	if err != nil || sEst == nil {
		t.Fatalf("KCI RESPONSE: %v (expected to pass the ss gate; if the design changed, update this test)", err)
	}
	if sEst.Peer != victim {
		t.Fatal("server session is not for the victim key")
	}
	kA := a.k // A's transcript state before ACCEPT (kept intact on failure)
	if _, err := a.HandleAccept(accept); !errors.Is(err, ErrServerAuth) {
		t.Errorf("A's HandleAccept: %v, want ErrServerAuth (A cannot derive stage-3 keys)", err)
	}
	_, acc, _ := wire.ParseAccept(accept)
	ee, err := x25519(a.eC, acc.ES[:]) // A can compute ee
	if err != nil {
		t.Fatal(err)
	}
	derive := func(se []byte) seal.EpochKeys {
		k := kA
		k.afterEESE(resp[offCPC:], accept[:48], acc.ES[:], ee, se)
		return k.finish(acc.CParams[:])
	}
	guess := derive(guessSE)
	if guess.C2S == sEst.Keys.C2S || guess.S2C == sEst.Keys.S2C || guess.Rekey == sEst.Keys.Rekey {
		t.Error("KCI: attacker without s_C derived the server's traffic keys (se not mixed into ck3?)")
	}
	// Control: with the true se (needs s_C_priv, which only the real client
	// has) the same derivation gives exactly the server's keys, so the
	// difference above is due to se alone.
	realSE, _ := x25519(b.cID.Private, acc.ES[:])
	if derive(realSE) != sEst.Keys {
		t.Fatal("control derivation does not reproduce the server's keys; test is broken")
	}
	// A's first c2s packet does not open at the server: never confirmed.
	pkt := trafficPacket(&guess.C2S, sEst.SID, sEst.RecvSeq, nil)
	if _, err := seal.NewProtector(&sEst.Keys.C2S).Open(pkt); err == nil {
		t.Error("server accepted a c2s packet from the KCI attacker")
	}
	// The server's 0.5-RTT data is unreadable to A.
	pkt = trafficPacket(&sEst.Keys.S2C, sEst.SID, sEst.SendSeq, []byte("secret"))
	if _, err := seal.NewProtector(&guess.S2C).Open(pkt); err == nil {
		t.Error("KCI attacker opened the server's 0.5-RTT data")
	}
}

// 9. A forged CHALLENGE with the wrong ack is refused before any work and
// leaves the client able to take the genuine one.
func TestSecForgedChallengeAck(t *testing.T) {
	b := newBed(t, nil)
	c, n := b.client(nil)
	chal := b.challenge(c)
	for _, tc := range []struct {
		name string
		f    func([]byte)
		want error
	}{
		{"ack ISN_C+1", func(p []byte) { addU64(p, 12, 1) }, ErrMalformed},
		{"ack 0", func(p []byte) { clear(p[12:20]) }, ErrMalformed},
		{"reserved byte 1", func(p []byte) { p[1] = 1 }, ErrMalformed},
		{"reserved payload", func(p []byte) { p[116] = 1 }, ErrMalformed},
		{"seq != 0", func(p []byte) { addU64(p, 4, 1) }, ErrMalformed},
		{"HMAC field", func(p []byte) { p[48] = 1 }, ErrMalformed},
		{"version 2", func(p []byte) { p[0] = 0x21 }, ErrMalformed},
		{"length", func(p []byte) { p[45] = 41 }, ErrMalformed},
		{"versions_S 0", func(p []byte) { copy(p[112:], "\x00\x00") }, ErrVersionRefused},
	} {
		bad := clone(chal)
		tc.f(bad)
		// cancelled ctx: a CHALLENGE that got as far as solving would fail
		// with "puzzle abandoned" instead of the expected reason.
		if _, err := c.HandleChallenge(cancelledCtx(), bad); !errors.Is(err, tc.want) {
			t.Errorf("forged CHALLENGE (%s): %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := c.HandleChallenge(cancelledCtx(), chal[:119]); err == nil {
		t.Error("short CHALLENGE accepted")
	}
	if n.get() != 0 || c.state != awaitChallenge {
		t.Fatalf("forged CHALLENGEs changed the client: %d DH, state %d", n.get(), c.state)
	}
	resp, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		t.Fatalf("genuine CHALLENGE after forgeries: %v", err)
	}
	if est, _, err := b.srv.HandleResponse(resp, b.path); err != nil || est == nil {
		t.Fatalf("RESPONSE: %v", err)
	}
}

// 10. Non-canonical public keys are refused everywhere (§8.1, §3).
func TestSecNonCanonicalKeys(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	eC := [32]byte(c.Init()[80:112])
	pPlus1 := fieldP
	pPlus1[0]++
	top := eC
	top[31] |= 0x80
	all1 := [32]byte{}
	for i := range all1 {
		all1[i] = 0xff
	}
	below := all1
	below[31] = 0x7f // 2^255 - 1: bit 255 clear, still >= p
	for name, k := range map[string][32]byte{"bit 255 set": top, "p": fieldP, "p+1": pPlus1, "2^255-1": below, "all ones": all1} {
		init := clone(c.Init())
		copy(init[80:112], k[:])
		if out, err := b.srv.HandleInit(nil, init, b.path); !errors.Is(err, ErrNonCanonicalKey) || len(out) != 0 {
			t.Errorf("INIT e_C %s: %v, %d bytes; want ErrNonCanonicalKey and silence", name, err, len(out))
		}
	}
	// CHALLENGE with a non-canonical s_S: refused even by a TOFU client
	// whose node-ID pin matches those exact bytes (only the canonical check
	// can stop it).
	chal := b.challenge(c)
	sTop := [32]byte(chal[80:112])
	sTop[31] |= 0x80
	tofu := addr.PublicKey(sTop).NodeID()
	c2, n2 := b.client(func(cfg *ClientConfig) { cfg.PeerKey, cfg.PeerNodeID = nil, &tofu })
	bad := clone(chal)
	copy(bad[80:112], sTop[:])
	binary.BigEndian.PutUint64(bad[12:20], c2.ISN())
	if _, err := c2.HandleChallenge(cancelledCtx(), bad); !errors.Is(err, ErrNonCanonicalKey) {
		t.Errorf("CHALLENGE s_S bit 255: %v, want ErrNonCanonicalKey", err)
	}
	// ACCEPT with a non-canonical e_S (bit 255, and u = p + small).
	resp := mustResp(t, c, chal)
	_, accept, err := b.srv.HandleResponse(resp, b.path)
	if err != nil {
		t.Fatal(err)
	}
	cDH := &dhCounter{}
	c.dh = cDH.fn()
	acc := clone(accept)
	acc[80+31] |= 0x80
	if _, err := c.HandleAccept(acc); !errors.Is(err, ErrNonCanonicalKey) {
		t.Errorf("ACCEPT e_S bit 255: %v, want ErrNonCanonicalKey", err)
	}
	acc = clone(accept)
	copy(acc[80:112], pPlus1[:])
	if _, err := c.HandleAccept(acc); !errors.Is(err, ErrNonCanonicalKey) {
		t.Errorf("ACCEPT e_S = p+1: %v, want ErrNonCanonicalKey", err)
	}
	if cDH.get() != 0 || n2.get() != 0 {
		t.Errorf("DH run on non-canonical keys: %d", cDH.get()+n2.get())
	}
	if _, err := c.HandleAccept(accept); err != nil {
		t.Fatalf("genuine ACCEPT: %v", err)
	}

	// A client whose c_static carries its real key with bit 255 set: the
	// server would compute the same ss (X25519 masks the bit), so only the
	// canonical check keeps the alias identity out. Built with the client's
	// internal buildResponse to get past the client's own checks.
	b2 := newBed(t, func(cfg *ServerConfig) { cfg.Authorize = func(addr.PublicKey) bool { return true } })
	alias := b2.cID.Public
	alias[31] |= 0x80
	c3, _ := b2.client(func(cfg *ClientConfig) { cfg.Identity = &addr.Identity{Private: b2.cID.Private, Public: alias} })
	b2.expectDrop("c_static non-canonical", forceResponse(t, c3, b2.challenge(c3)), b2.path, ErrNonCanonicalKey, 1)
	// And a client presenting the server's own key: refused after es.
	c4, _ := b2.client(func(cfg *ClientConfig) { cfg.Identity = b2.sID })
	b2.expectDrop("c_static = s_S", forceResponse(t, c4, b2.challenge(c4)), b2.path, ErrSelfConnection, 1)
}

func mustResp(t *testing.T, c *Client, chal []byte) []byte {
	t.Helper()
	resp, err := c.HandleChallenge(context.Background(), chal)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// forceResponse solves the CHALLENGE and builds the RESPONSE without the
// client's own checks, as an attacker's implementation would.
func forceResponse(t *testing.T, c *Client, chal []byte) []byte {
	t.Helper()
	ch, err := wire.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Solve(context.Background(), ch.SID, ch.D, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.buildResponse(chal, &ch, n)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// 11. Versions: bitmaps, the downgrade rule, and the VN CLOSE.
func TestSecVersions(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	for _, v := range []uint16{0, 0x0001, 0x0004, 0xfffd} {
		in, _ := wire.ParseInit(c.Init())
		in.Versions = v
		if _, err := b.srv.HandleInit(nil, wire.AppendInit(nil, &in), b.path); !errors.Is(err, ErrVersion) {
			t.Errorf("INIT versions %#04x: %v, want ErrVersion", v, err)
		}
	}
	// A v1+v2 client and a v1-only server: the highest common version is 1.
	c2, n2 := b.client(func(cfg *ClientConfig) { cfg.Versions = 0x0006 })
	b.finish(c2, n2)

	// A server advertising v1+v2 (bit 2 set) and a v1+v2 client: v2 is the
	// highest common version, so a v1 handshake between them is a downgrade.
	b2 := newBed(t, func(cfg *ServerConfig) { cfg.Versions = 0x0006 })
	c3, n3 := b2.client(func(cfg *ClientConfig) { cfg.Versions = 0x0006 })
	if _, err := b2.srv.HandleInit(nil, c3.Init(), b2.path); !errors.Is(err, ErrDowngrade) {
		t.Errorf("server: v1 INIT from a v2-capable client: %v, want ErrDowngrade", err)
	}
	// M strips v2 from the INIT: the server answers, but the client sees
	// v2 in versions_S and aborts before solving.
	stripped := clone(c3.Init())
	binary.BigEndian.PutUint16(stripped[112:114], 0x0002)
	chal, err := b2.srv.HandleInit(nil, stripped, b2.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.HandleChallenge(cancelledCtx(), chal); !errors.Is(err, ErrDowngrade) {
		t.Errorf("client, v2 stripped from INIT: %v, want ErrDowngrade", err)
	}
	// M strips v2 from both INIT and CHALLENGE: the client cannot tell, but
	// the cookie covers the INIT as received and the echo carries 0x0006.
	chalStripped := clone(chal)
	binary.BigEndian.PutUint16(chalStripped[112:114], 0x0002)
	resp, err := c3.HandleChallenge(context.Background(), chalStripped)
	if err != nil {
		t.Fatal(err)
	}
	b2.expectDrop("v2 stripped from INIT and CHALLENGE", resp, b2.path, ErrBadCookie, 0)
	if n3.get() != 2 {
		t.Errorf("client DH %d", n3.get())
	}
	// versions_S is bound in h0: a v1-only client facing a server that
	// offers 0x0006, with versions_S rewritten to 0x0002 on the way, fails
	// at the first AEAD (after es only).
	c4, _ := b2.client(nil)
	chal4 := b2.challenge(c4)
	binary.BigEndian.PutUint16(chal4[112:114], 0x0002)
	b2.expectDrop("versions_S rewritten", mustResp(t, c4, chal4), b2.path, ErrAuth, 1)
	// Baseline: the same pair without tampering completes.
	c5, n5 := b2.client(nil)
	b2.finish(c5, n5)

	// INIT with version nibble 2: one 88-byte VN CLOSE, no larger than the INIT.
	c6, _ := b.client(nil)
	v2init := clone(c6.Init())
	v2init[0] = 0x20
	vn, err := b.srv.HandleInit(nil, v2init, b.path)
	if err != nil || len(vn) != wire.VNCloseLen || len(vn) > len(v2init) {
		t.Fatalf("VN CLOSE: %v, %d bytes", err, len(vn))
	}
	if binary.BigEndian.Uint64(vn[12:20]) != c6.ISN() {
		t.Error("VN CLOSE does not echo ISN_C")
	}
	if err := c6.HandleVersionClose(vn); !errors.Is(err, ErrVersionRefused) {
		t.Errorf("HandleVersionClose: %v, want ErrVersionRefused", err)
	}
	forgedVN := clone(vn)
	addU64(forgedVN, 12, 1)
	if err := c6.HandleVersionClose(forgedVN); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrVersionRefused) {
		t.Errorf("VN CLOSE with a wrong ack: %v, want ErrMalformed (ignored)", err)
	}
	// The VN CLOSE is only a hint: the client's attempt is unchanged.
	if _, err := c6.HandleChallenge(context.Background(), b.challenge(c6)); err != nil {
		t.Errorf("CHALLENGE after a VN CLOSE: %v", err)
	}
	// A short packet with another version gets nothing (anti-amplification).
	if out, err := b.srv.HandleInit(nil, v2init[:100], b.path); err == nil || len(out) != 0 {
		t.Errorf("short v2 packet answered with %d bytes", len(out))
	}
	for _, n := range []int{0, 1, 143} {
		if out, err := b.srv.HandleInit(nil, make([]byte, n), b.path); err == nil || len(out) != 0 {
			t.Errorf("%d-byte packet answered", n)
		}
	}
}

func ioMulti(prefix []byte) *prefixReader { return &prefixReader{p: prefix} }

// prefixReader yields p, then crypto/rand.
type prefixReader struct{ p []byte }

func (r *prefixReader) Read(b []byte) (int, error) {
	if len(r.p) > 0 {
		n := copy(b, r.p)
		r.p = r.p[n:]
		return n, nil
	}
	return rand.Read(b)
}

// params_C and params_S must be zero in v1 (§8.5, §8.6): a peer that sends
// options this version does not define is refused even when everything
// else authenticates. The forgeries below are built with the real keys
// (the client's own schedule; a server e_S taken from a known Rand), so
// only the params rule can reject them.
func TestSecNonZeroParams(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(nil)
	chal := b.challenge(c)
	ch, _ := wire.ParseChallenge(chal)
	n, err := Solve(context.Background(), ch.SID, ch.D, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A RESPONSE whose params_C is 0x01 followed by zeros, correctly sealed
	// and MACed (mirrors Client.buildResponse).
	resp := buildResponseParams(t, c, chal, &ch, n, [wire.ParamsLen]byte{1})
	b.expectDrop("params_C != 0", resp, b.path, ErrMalformed, 2)
	// Control: the same construction with zero params is accepted.
	c2, _ := b.client(nil)
	chal2 := b.challenge(c2)
	ch2, _ := wire.ParseChallenge(chal2)
	n2, _ := Solve(context.Background(), ch2.SID, ch2.D, 0)
	if est, _, err := b.srv.HandleResponse(buildResponseParams(t, c2, chal2, &ch2, n2, [wire.ParamsLen]byte{}), b.path); err != nil || est == nil {
		t.Fatalf("control RESPONSE with zero params: %v", err)
	}

	// An ACCEPT with params_S != 0, built from a genuine exchange where the
	// test knows e_S_priv (the server's Rand is scripted).
	eSPriv := bytes.Repeat([]byte{0x42}, 32)
	bed2 := newBed(t, func(cfg *ServerConfig) {
		// secret (32), then e_S (32), then ISN_S (8)
		cfg.Rand = ioMulti(append(append(bytes.Repeat([]byte{7}, 32), eSPriv...), 0, 0, 0, 0, 0, 0, 1, 0))
	})
	c3, _ := bed2.client(nil)
	_, resp3 := bed2.respond(c3)
	sEst, accept, err := bed2.srv.HandleResponse(resp3, bed2.path)
	if err != nil {
		t.Fatal(err)
	}
	eS, _ := ecdh.X25519().NewPrivateKey(eSPriv)
	if !bytes.Equal(accept[80:112], eS.PublicKey().Bytes()) {
		t.Fatal("premise: scripted e_S")
	}
	forge := func(params [wire.ParamsLen]byte) []byte {
		k := c3.k
		ee, _ := x25519(eS, resp3[offEC:offEC+32])
		se, _ := x25519(eS, bed2.cID.Public[:])
		acc := clone(accept)
		k.afterEESE(resp3[offCPC:], acc[:48], acc[80:112], ee, se)
		isnS := binary.BigEndian.Uint64(acc[4:12])
		cPS := k.s3.seal(nil, isnS, params[:], &k.h3)
		copy(acc[112:136], cPS)
		mac := k.s3.hmac(acc, acc[80:112], params[:])
		copy(acc[48:80], mac[:])
		return acc
	}
	if ctl := forge([wire.ParamsLen]byte{}); !bytes.Equal(ctl, accept) {
		t.Fatal("control: the forged-ACCEPT construction does not reproduce the real ACCEPT")
	}
	if _, err := c3.HandleAccept(forge([wire.ParamsLen]byte{0, 0, 0, 0, 0, 0, 0, 1})); !errors.Is(err, ErrMalformed) {
		t.Errorf("ACCEPT with params_S != 0: %v, want ErrMalformed", err)
	}
	if cEst, err := c3.HandleAccept(accept); err != nil || cEst.Keys != sEst.Keys {
		t.Fatalf("genuine ACCEPT after the forgery: %v", err)
	}
}

// buildResponseParams mirrors Client.buildResponse with a chosen params_C.
func buildResponseParams(t *testing.T, c *Client, chalPkt []byte, ch *wire.Challenge, n [16]byte, params [wire.ParamsLen]byte) []byte {
	t.Helper()
	seq := c.isnC + 1
	resp := make([]byte, wire.ResponseLen)
	wire.PutHeader(resp, &wire.Header{Version: wire.Version1, Type: wire.TypeResponse, Flags: wire.FlagEncrypted,
		Seq: seq, SID: ch.SID, Length: wire.ResponsePayloadLen})
	in, _ := wire.ParseInit(c.init)
	r := wire.Response{EC: in.EC, TC: in.Timestamp, ISNC: c.isnC, Versions: in.Versions,
		ServerHint: in.ServerHint, TIssue: ch.TIssue, D: ch.D, J: ch.J, N: n}
	payload := resp[wire.HeaderLen:]
	wire.PutResponsePayload(payload, &r)
	var k schedule
	k.start(c.init, chalPkt, resp[:48], payload[:wire.ResponseEchoLen])
	es, err := x25519(c.eC, ch.SS[:])
	if err != nil {
		t.Fatal(err)
	}
	k.afterES(es)
	sC := c.cfg.Identity.Public
	cStatic := k.s1.seal(payload[84:84], seq, sC[:], &k.h1)
	ss, err := x25519(c.cfg.Identity.Private, ch.SS[:])
	if err != nil {
		t.Fatal(err)
	}
	k.afterSS(cStatic, ss)
	k.s2.seal(payload[132:132], seq, params[:], &k.h2)
	mac := k.s2.hmac(resp, payload[:wire.ResponseEchoLen], sC[:], params[:])
	copy(resp[48:80], mac[:])
	return resp
}
