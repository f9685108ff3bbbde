package handshake

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"net/netip"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/testutil"
	"github.com/pool-go/pool/internal/wire"
)

// vectors is the golden file produced by an independent implementation of
// handshake.md §8 (testdata/handshake-v1.json, copied unchanged from the
// design's spec/vectors). Every value must be reproduced byte for byte.
type vectors = testutil.Vectors

func loadVectors(t testing.TB) vectors {
	return testutil.LoadVectors(t, "../../testdata/handshake-v1.json")
}

func eq(t testing.TB, name string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n got  %x\n want %x", name, got, want)
	}
}

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func identityFrom(t testing.TB, priv []byte) *addr.Identity {
	t.Helper()
	id, err := addr.FromPrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// vectorRun performs the whole handshake with the vector inputs and returns
// the packets and both Established results.
type vectorRun struct {
	init, challenge, response, accept []byte
	client, server                    *Established
}

func runVectorHandshake(t *testing.T, v vectors) vectorRun {
	t.Helper()
	cID := identityFrom(t, v.Hex(t, "inputs.client_static_private"))
	sID := identityFrom(t, v.Hex(t, "inputs.server_static_private"))
	eq(t, "client static public", cID.Public[:], v.Hex(t, "inputs.client_static_public"))
	eq(t, "server static public", sID.Public[:], v.Hex(t, "inputs.server_static_public"))
	nid := sID.Public.NodeID()
	eq(t, "server node id", nid[:], v.Hex(t, "inputs.server_node_id"))

	eC, err := ecdh.X25519().NewPrivateKey(v.Hex(t, "inputs.client_ephemeral_private"))
	if err != nil {
		t.Fatal(err)
	}
	tC := time.Unix(0, int64(v.Num(t, "inputs.t_c_ns")))
	pin := sID.Public
	cl := newClient(ClientConfig{Identity: cID, PeerKey: &pin, MaxDifficulty: 24, Versions: wire.VersionsV1,
		Workers: 1, Now: func() time.Time { return tC }}, eC, v.U64(t, "inputs.isn_c"), tC)
	respTS := uint64(int64(v.Num(t, "inputs.response_timestamp_ns")))
	cl.respTimestamp = &respTS

	// The server's CSPRNG yields the cookie secret, then e_S, then ISN_S.
	rnd := bytes.NewReader(append(append(v.Hex(t, "inputs.cookie_secret"),
		v.Hex(t, "inputs.server_ephemeral_private")...), v.Hex(t, "inputs.isn_s_hex")...))
	clock := &fixedClock{time.Unix(0, int64(v.Num(t, "inputs.t_iss_ns")))}
	srv, err := NewServer(ServerConfig{Identity: sID, Authorize: func(k addr.PublicKey) bool { return k == cID.Public },
		Rotation: time.Duration(int64(v.Num(t, "inputs.rotation_interval_ns"))), Now: clock.Now, Rand: rnd, InitRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	acceptTS := uint64(int64(v.Num(t, "inputs.accept_timestamp_ns")))
	srv.acceptTS = &acceptTS
	path := Path{Transport: TransportTCP,
		Client: netip.MustParseAddrPort("192.0.2.10:49152"), Server: netip.MustParseAddrPort("[::ffff:198.51.100.20]:9253")}

	var r vectorRun
	r.init = cl.Init()
	r.challenge, err = srv.HandleInit(nil, r.init, path)
	if err != nil {
		t.Fatalf("HandleInit: %v", err)
	}
	r.response, err = cl.HandleChallenge(context.Background(), r.challenge)
	if err != nil {
		t.Fatalf("HandleChallenge: %v", err)
	}
	clock.t = time.Unix(0, int64(v.Num(t, "inputs.server_clock_at_response_ns")))
	r.server, r.accept, err = srv.HandleResponse(r.response, path)
	if err != nil {
		t.Fatalf("HandleResponse: %v", err)
	}
	r.client, err = cl.HandleAccept(r.accept)
	if err != nil {
		t.Fatalf("HandleAccept: %v", err)
	}
	return r
}

func TestVectorsHandshakePackets(t *testing.T) {
	v := loadVectors(t)
	r := runVectorHandshake(t, v)
	eq(t, "INIT", r.init, v.Hex(t, "init.bytes"))
	eq(t, "CHALLENGE", r.challenge, v.Hex(t, "challenge.bytes"))
	eq(t, "RESPONSE", r.response, v.Hex(t, "response.bytes"))
	eq(t, "ACCEPT", r.accept, v.Hex(t, "accept.bytes"))
	eq(t, "SID", r.client.SID[:], v.Hex(t, "cookie.SID"))
	eq(t, "h4 (client)", r.client.SessionHash[:], v.Hex(t, "key_schedule.h4"))
	eq(t, "h4 (server)", r.server.SessionHash[:], v.Hex(t, "key_schedule.h4"))
	for _, side := range []*Established{r.client, r.server} {
		k := side.Keys
		eq(t, "c2s enc", k.C2S.Enc[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.c2s.enc"))
		eq(t, "c2s hmac", k.C2S.HMAC[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.c2s.hmac"))
		eq(t, "c2s seq", k.C2S.Seq[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.c2s.seq"))
		eq(t, "s2c enc", k.S2C.Enc[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.s2c.enc"))
		eq(t, "s2c hmac", k.S2C.HMAC[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.s2c.hmac"))
		eq(t, "s2c seq", k.S2C.Seq[:], v.Hex(t, "key_schedule.traffic_keys_epoch0.s2c.seq"))
		eq(t, "R0", k.Rekey[:], v.Hex(t, "key_schedule.R0"))
	}
	isnC, isnS := v.U64(t, "inputs.isn_c"), v.U64(t, "inputs.isn_s")
	if r.client.SendSeq != isnC+2 || r.client.RecvSeq != isnS+1 || r.server.SendSeq != isnS+1 || r.server.RecvSeq != isnC+2 {
		t.Errorf("sequence continuation wrong: client %d/%d server %d/%d", r.client.SendSeq, r.client.RecvSeq, r.server.SendSeq, r.server.RecvSeq)
	}
	if r.server.Peer != r.client.Peer && r.client.Peer != addr.PublicKey(v.Hex(t, "inputs.server_static_public")) {
		t.Errorf("peer identities wrong")
	}
}

// TestVectorsKeySchedule recomputes each intermediate value with the pure
// functions, so a mismatch names the first step that differs.
func TestVectorsKeySchedule(t *testing.T) {
	v := loadVectors(t)
	eq(t, "ck0", ck0[:], v.Hex(t, "key_schedule.ck0"))
	eq(t, "Expand info c hs1 key", seal.Info("c hs1 key", v.Hex(t, "constants.expand_info_examples.0.ctx")),
		v.Hex(t, "constants.expand_info_examples.0.info"))
	eq(t, "Expand info c2s key", seal.Info("c2s key", nil), v.Hex(t, "constants.expand_info_examples.1.info"))

	// Cookie.
	sS := [32]byte(v.Hex(t, "inputs.server_static_public"))
	path := Path{Transport: TransportTCP, Client: netip.MustParseAddrPort("192.0.2.10:49152"),
		Server: netip.MustParseAddrPort("198.51.100.20:9253")}
	in := cookieInput(nil, &path, &sS, v.Hex(t, "init.bytes"), uint64(int64(v.Num(t, "inputs.t_iss_ns"))),
		uint8(int64(v.Num(t, "inputs.difficulty_d"))), uint8(int64(v.Num(t, "inputs.slot_j"))), 0x0002)
	eq(t, "cookie input", in, v.Hex(t, "cookie.mac_input"))
	if len(in) != cookieLen {
		t.Errorf("cookie input %d bytes, want %d", len(in), cookieLen)
	}
	o := hmacParts(v.Hex(t, "cookie.mac_key"), in)
	eq(t, "cookie O", o[:], v.Hex(t, "cookie.O"))

	var k schedule
	resp := v.Hex(t, "response.bytes")
	k.start(v.Hex(t, "init.bytes"), v.Hex(t, "challenge.bytes"), resp[:48], resp[80:80+84])
	eq(t, "h0", k.h0[:], v.Hex(t, "key_schedule.h0"))
	eq(t, "h1", k.h1[:], v.Hex(t, "key_schedule.h1"))
	k.afterES(v.Hex(t, "key_schedule.dh_es"))
	eq(t, "ck1", k.ck1[:], v.Hex(t, "key_schedule.ck1"))
	eq(t, "enc1", k.s1.enc[:], v.Hex(t, "key_schedule.enc1"))
	eq(t, "mac1", k.s1.mac[:], v.Hex(t, "key_schedule.mac1"))
	k.afterSS(v.Hex(t, "response.c_static"), v.Hex(t, "key_schedule.dh_ss"))
	eq(t, "h2", k.h2[:], v.Hex(t, "key_schedule.h2"))
	eq(t, "ck2", k.ck2[:], v.Hex(t, "key_schedule.ck2"))
	eq(t, "enc2", k.s2.enc[:], v.Hex(t, "key_schedule.enc2"))
	eq(t, "mac2", k.s2.mac[:], v.Hex(t, "key_schedule.mac2"))
	acc := v.Hex(t, "accept.bytes")
	k.afterEESE(v.Hex(t, "response.c_pC"), acc[:48], v.Hex(t, "key_schedule.e_S"),
		v.Hex(t, "key_schedule.dh_ee"), v.Hex(t, "key_schedule.dh_se"))
	eq(t, "h2b", k.h2b[:], v.Hex(t, "key_schedule.h2b"))
	eq(t, "h3", k.h3[:], v.Hex(t, "key_schedule.h3"))
	eq(t, "ck3", k.ck3[:], v.Hex(t, "key_schedule.ck3"))
	eq(t, "enc3", k.s3.enc[:], v.Hex(t, "key_schedule.enc3"))
	eq(t, "mac3", k.s3.mac[:], v.Hex(t, "key_schedule.mac3"))
	keys := k.finish(v.Hex(t, "accept.c_pS"))
	eq(t, "h4", k.h4[:], v.Hex(t, "key_schedule.h4"))
	m0 := seal.Expand(k.ck3[:], "master", k.h4[:])
	eq(t, "M0", m0[:], v.Hex(t, "key_schedule.M0"))
	eq(t, "R0", keys.Rekey[:], v.Hex(t, "key_schedule.R0"))

	// Each DH from the private keys.
	dh := func(privHex, pubHex string) []byte {
		p, err := ecdh.X25519().NewPrivateKey(v.Hex(t, privHex))
		if err != nil {
			t.Fatal(err)
		}
		out, err := x25519(p, v.Hex(t, pubHex))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	eq(t, "dh es", dh("inputs.client_ephemeral_private", "inputs.server_static_public"), v.Hex(t, "key_schedule.dh_es"))
	eq(t, "dh ss", dh("inputs.client_static_private", "inputs.server_static_public"), v.Hex(t, "key_schedule.dh_ss"))
	eq(t, "dh ee", dh("inputs.server_ephemeral_private", "inputs.client_ephemeral_public"), v.Hex(t, "key_schedule.dh_ee"))
	eq(t, "dh se", dh("inputs.server_ephemeral_private", "inputs.client_static_public"), v.Hex(t, "key_schedule.dh_se"))

	// Stage nonces and header HMAC inputs.
	n1 := seal.Nonce(k.s1.mac[:], v.U64(t, "inputs.isn_c")+1)
	eq(t, "c_static nonce", n1[:], v.Hex(t, "response.c_static_nonce"))
	eq(t, "RESPONSE hmac", resp[48:80], v.Hex(t, "response.hmac"))
}

func TestVectorsPuzzle(t *testing.T) {
	v := loadVectors(t)
	sid := [16]byte(v.Hex(t, "puzzle.seed_SID"))
	n := [16]byte(v.Hex(t, "puzzle.handshake.N"))
	if got := LeadingZeros(&sid, &n); got != int(int64(v.Num(t, "puzzle.handshake.leading_zero_bits"))) {
		t.Errorf("handshake puzzle: %d leading zeros", got)
	}
	for i := 0; i < 2; i++ {
		p := "puzzle.standalone." + string(rune('0'+i))
		seed := [16]byte(v.Hex(t, p+".seed"))
		d := uint8(int64(v.Num(t, p+".d")))
		got, err := Solve(context.Background(), seed, d, 1)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, p+" N", got[:], v.Hex(t, p+".N"))
		if z := LeadingZeros(&seed, &got); z != int(int64(v.Num(t, p+".leading_zero_bits"))) {
			t.Errorf("%s: %d leading zeros", p, z)
		}
		// One below the answer must not solve (the answer is the first).
		prev := nonceFor(uint64(int64(v.Num(t, p+".k"))) - 1)
		if d == 16 && PuzzleOK(&seed, &prev, d) {
			t.Errorf("%s: k-1 also solves", p)
		}
	}
}

func TestVectorsVersionClose(t *testing.T) {
	v := loadVectors(t)
	sID := identityFrom(t, v.Hex(t, "inputs.server_static_private"))
	srv, err := NewServer(ServerConfig{Identity: sID, Authorize: func(addr.PublicKey) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.HandleInit(nil, v.Hex(t, "version_negotiation_close.received"), Path{Transport: TransportTCP,
		Client: netip.MustParseAddrPort("192.0.2.10:49152"), Server: netip.MustParseAddrPort("198.51.100.20:9253")})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "VN CLOSE", got, v.Hex(t, "version_negotiation_close.bytes"))
}
