package pool_test

// Tests that keep docs/PROTOCOL.md honest: the values it quotes are the golden
// vectors', the rekey derivation it specifies (§5.8) reproduces the vectors
// byte for byte (no other test derives them), and the constants it states are
// the code's.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/session"
	"github.com/pool-go/pool/internal/testutil"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// protocolDoc returns PROTOCOL.md with all whitespace removed, so that hex
// wrapped over several lines is found as one string.
func protocolDoc(t *testing.T) (text, compact string) {
	t.Helper()
	b, err := os.ReadFile("docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	text = string(b)
	compact = strings.Join(strings.Fields(text), "")
	return text, compact
}

// TestProtocolDocQuotesVectors: every vector value the document reproduces
// must be the golden one.
func TestProtocolDocQuotesVectors(t *testing.T) {
	_, doc := protocolDoc(t)
	v := testutil.LoadVectors(t, "testdata/handshake-v1.json")
	for _, p := range []string{
		"constants.ck0", "key_schedule.ck0", "cookie.O", "cookie.SID", "cookie.mac_input",
		"init.bytes", "challenge.bytes", "response.bytes", "accept.bytes", "version_negotiation_close.bytes",
		"puzzle.handshake.N", "puzzle.standalone.0.seed", "puzzle.standalone.0.N", "puzzle.standalone.1.N",
		"key_schedule.h0", "key_schedule.h4", "key_schedule.M0", "key_schedule.R0",
		"key_schedule.traffic_keys_epoch0.c2s.enc", "key_schedule.traffic_keys_epoch0.c2s.hmac",
		"key_schedule.traffic_keys_epoch0.s2c.enc", "key_schedule.traffic_keys_epoch0.s2c.hmac",
		"traffic_epoch0.0.nonce", "traffic_epoch0.0.packet", "traffic_epoch0.1.nonce", "traffic_epoch0.1.packet",
		"constants.expand_info_examples.1.info",
		"rekey.T", "rekey.S_prime", "rekey.M1", "rekey.R1", "rekey_2_server_initiated.M2",
		"inputs.isn_c_hex", "inputs.isn_s_hex",
	} {
		if !strings.Contains(doc, v.Str(t, p)) {
			t.Errorf("PROTOCOL.md does not quote %s = %s", p, v.Str(t, p))
		}
	}
	a := testutil.LoadVectors(t, "testdata/address-v1.json")
	for _, p := range []string{"public_key_hex", "address_hex", "address_text", "node_id_hex"} {
		if !strings.Contains(doc, a.Str(t, p)) {
			t.Errorf("PROTOCOL.md does not quote address-v1 %s", p)
		}
	}
	// The second address example (§9.2) and the keys' base64 forms.
	alice := addr.PublicKey(v.Hex(t, "inputs.client_static_public"))
	bob := addr.PublicKey(v.Hex(t, "inputs.server_static_public"))
	ex := addr.New(alice, 0x0123456789abcdef, 0xff)
	for _, s := range []string{ex.String(), hex.EncodeToString(ex[:]), alice.String(), bob.String()} {
		if !strings.Contains(doc, s) {
			t.Errorf("PROTOCOL.md does not quote %s", s)
		}
	}
	// Every label's info prefix in the §5.2 table.
	for _, l := range []string{"c hs1 key", "c hs1 hmac", "c hs2 key", "c hs2 hmac", "s hs key", "s hs hmac",
		"master", "c2s key", "c2s hmac", "c2s seq", "s2c key", "s2c hmac", "s2c seq", "rekey"} {
		info := seal.Info(l, nil)
		if !strings.Contains(doc, hex.EncodeToString(info[:len(info)-1])) {
			t.Errorf("PROTOCOL.md lacks the info prefix of %q", l)
		}
	}
	if !strings.Contains(doc, strings.Join(strings.Fields(handshake.Proto), "")) {
		t.Error("PROTOCOL.md does not state PROTO")
	}

	// The ACK and CLOSE examples of §7.3 and §7.4, encoded by the codecs.
	c2s := seal.DirectionKeys{Enc: [32]byte(v.Hex(t, "key_schedule.traffic_keys_epoch0.c2s.enc")),
		HMAC: [32]byte(v.Hex(t, "key_schedule.traffic_keys_epoch0.c2s.hmac"))}
	ack := make([]byte, wire.HeaderLen, wire.HeaderLen+wire.TagLen)
	wire.PutHeader(ack, &wire.Header{Version: wire.Version1, Type: wire.TypeAck, Flags: wire.FlagEncrypted,
		Seq: binary.BigEndian.Uint64(v.Hex(t, "inputs.isn_c_hex")) + 2, Ack: binary.BigEndian.Uint64(v.Hex(t, "inputs.isn_s_hex")),
		SID: [16]byte(v.Hex(t, "cookie.SID")), Timestamp: 0x297c1e0, Length: wire.TagLen})
	examples := [][]byte{
		seal.NewProtector(&c2s).Seal(ack),
		wire.AppendWindowUpdate(nil, wire.WindowUpdate{Channel: 5, Credit: session.DefaultWindow - session.InitialWindow}),
		wire.AppendWindowUpdate(nil, wire.WindowUpdate{Channel: 5, Gen: 3, Credit: session.DefaultWindow - session.InitialWindow}),
		wire.AppendClose(nil, &wire.Close{Code: wire.CodeNoError, Scope: wire.ScopeSession}),
		wire.AppendClose(nil, &wire.Close{Code: wire.CodeNoError, Scope: wire.ScopeChannelFIN}),
		wire.AppendClose(nil, &wire.Close{Code: wire.CodeNoError, Scope: wire.ScopeChannelFIN, Detail: 3}),
		wire.AppendClose(nil, &wire.Close{Code: 0x42, Scope: wire.ScopeChannelRST, Reason: "go away"}),
		wire.AppendClose(nil, &wire.Close{Code: 0x42, Scope: wire.ScopeChannelRST, Reason: "reset acknowledged"}),
		wire.AppendClose(nil, &wire.Close{Code: wire.CodeProtocolError, Reason: "DATA after FIN or RST on channel"}),
		v.Hex(t, "version_negotiation_close.bytes")[wire.HeaderLen:],
	}
	for _, e := range examples {
		if !strings.Contains(doc, hex.EncodeToString(e)) {
			t.Errorf("PROTOCOL.md lacks the example %x", e)
		}
	}
}

// TestProtocolDocRekeyDerivation reproduces §5.8 from the document's formula:
// the REKEY plaintexts, T, S', M_{n+1}, the epoch keys, R_{n+1} and both REKEY
// packets of each rekey in the golden vectors.
func TestProtocolDocRekeyDerivation(t *testing.T) {
	v := testutil.LoadVectors(t, "testdata/handshake-v1.json")
	priv := func(path string) *ecdh.PrivateKey {
		k, err := ecdh.X25519().NewPrivateKey(v.Hex(t, path))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	dh := func(k *ecdh.PrivateKey, pub []byte) []byte {
		p, err := ecdh.X25519().NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		out, err := k.ECDH(p)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	eq := func(name string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s\n got  %x\n want %x", name, got, want)
		}
	}
	keysOf := func(prefix string) seal.DirectionKeys {
		return seal.DirectionKeys{Enc: [32]byte(v.Hex(t, prefix+".enc")), HMAC: [32]byte(v.Hex(t, prefix+".hmac")),
			Seq: [32]byte(v.Hex(t, prefix+".seq"))}
	}
	cStatic, sStatic := priv("inputs.client_static_private"), priv("inputs.server_static_private")
	sid := v.Hex(t, "cookie.SID")

	cases := []struct {
		r, master, keysNew, rNext, keysOld string
		epoch                              uint32
		role                               byte
		sI                                 *ecdh.PrivateKey
		sRPub                              []byte
		initDir, ackDir                    string
	}{
		{"rekey", "M1", "traffic_keys_epoch1", "R1", "key_schedule.traffic_keys_epoch0", 1, 1,
			cStatic, sStatic.PublicKey().Bytes(), "c2s", "s2c"},
		{"rekey_2_server_initiated", "M2", "traffic_keys_epoch2", "R2", "rekey.traffic_keys_epoch1", 2, 2,
			sStatic, cStatic.PublicKey().Bytes(), "s2c", "c2s"},
	}
	for _, c := range cases {
		eI, eR := priv(c.r+".initiator_ephemeral_private"), priv(c.r+".responder_ephemeral_private")
		plaintext := func(kind byte, e *ecdh.PrivateKey) []byte {
			pt := []byte{kind, 0, 0, 0}
			pt = binary.BigEndian.AppendUint32(pt, c.epoch)
			return append(pt, e.PublicKey().Bytes()...)
		}
		ptI, ptA := plaintext(1, eI), plaintext(2, eR)
		eq(c.r+" REKEY_INIT plaintext", ptI, v.Hex(t, c.r+".REKEY_INIT_plaintext"))
		eq(c.r+" REKEY_ACK plaintext", ptA, v.Hex(t, c.r+".REKEY_ACK_plaintext"))

		tIn := append([]byte("pool1 rekey"), sid...)
		tIn = binary.BigEndian.AppendUint32(tIn, c.epoch)
		tIn = append(append(append(tIn, c.role), ptI...), ptA...)
		if len(tIn) != 112 {
			t.Errorf("T input is %d bytes, PROTOCOL.md says 112", len(tIn))
		}
		tHash := sha256.Sum256(tIn)
		eq(c.r+" T", tHash[:], v.Hex(t, c.r+".T"))

		ee := dh(eI, eR.PublicKey().Bytes())
		eIsR := dh(eI, c.sRPub)
		sIeR := dh(c.sI, eR.PublicKey().Bytes())
		eq(c.r+" DH(e_I', e_R')", ee, v.Hex(t, c.r+".dh_eI_eR"))
		eq(c.r+" DH(e_I', s_R)", eIsR, v.Hex(t, c.r+".dh_eI_sR"))
		eq(c.r+" DH(s_I, e_R')", sIeR, v.Hex(t, c.r+".dh_sI_eR"))
		s1 := seal.Extract(v.Hex(t, c.r+".R_prev"), ee)
		s2 := seal.Extract(s1[:], eIsR)
		s3 := seal.Extract(s2[:], sIeR)
		eq(c.r+" S'", s3[:], v.Hex(t, c.r+".S_prime"))
		m := seal.Expand(s3[:], "master", tHash[:])
		eq(c.r+" M", m[:], v.Hex(t, c.r+"."+c.master))
		keys := seal.DeriveEpoch(&m)
		for dir, k := range map[string]seal.DirectionKeys{"c2s": keys.C2S, "s2c": keys.S2C} {
			want := keysOf(c.r + "." + c.keysNew + "." + dir)
			if k != want {
				t.Errorf("%s epoch %d %s keys differ", c.r, c.epoch, dir)
			}
		}
		eq(c.r+" R", keys.Rekey[:], v.Hex(t, c.r+"."+c.rNext))

		// The REKEY packets are ordinary traffic packets under the old keys (§5.8, §6.1).
		for _, p := range []struct{ name, dir string }{{"REKEY_INIT_packet", c.initDir}, {"REKEY_ACK_packet", c.ackDir}} {
			pfx := c.r + "." + p.name
			pt := v.Hex(t, pfx+".plaintext_hex")
			buf := make([]byte, wire.HeaderLen+len(pt), wire.HeaderLen+len(pt)+wire.TagLen)
			copy(buf, v.Hex(t, pfx+".ad_hdr_0_48"))
			copy(buf[wire.HeaderLen:], pt)
			k := keysOf(c.keysOld + "." + p.dir)
			got := seal.NewProtector(&k).Seal(buf)
			eq(pfx, got, v.Hex(t, pfx+".packet"))
			if len(got) != 136 || got[0] != 0x16 {
				t.Errorf("%s: %d bytes, byte 0 %#x; PROTOCOL.md says 136 and 0x16", pfx, len(got), got[0])
			}
		}
	}
}

// TestProtocolDocConstants: each row below is a statement of PROTOCOL.md
// (the quoted text must appear in it) whose value is checked against the code.
func TestProtocolDocConstants(t *testing.T) {
	text, _ := protocolDoc(t)
	rows := []struct {
		quote string
		ok    bool
	}{
		{"| TCP port | 9253 |", pool.DefaultPort == 9253 && transport.DefaultPort == 9253},
		{"| header size | 80 bytes |", wire.HeaderLen == 80},
		{"| max payload / packet | 65535 / 65615 bytes |", wire.MaxPayload == 65535},
		{"| max DATA plaintext | 65519 bytes |", session.MaxDataPlaintext == 65519},
		{"| AEAD tag | 16 bytes |", wire.TagLen == 16 && seal.TagLen == 16},
		{"| INIT / CHALLENGE / RESPONSE / ACCEPT / VN-CLOSE | 144 / 120 / 236 / 136 / 88 bytes |",
			wire.InitLen == 144 && wire.ChallengeLen == 120 && wire.ResponseLen == 236 && wire.AcceptLen == 136 && wire.VNCloseLen == 88},
		{"| version bitmap offered | `0x0002` (v1) |", wire.VersionsV1 == 0x0002},
		{"| cookie lifetime on the server clock | 30 s |", handshake.CookieLifetime == 30*time.Second},
		{"| cookie secret rotation T | 10 s, at most 300 s |", handshake.DefaultRotation == 10*time.Second && handshake.MaxRotation == 300*time.Second},
		{"| minimum difficulty | 16 (never lower) |", handshake.MinDifficulty == 16},
		{"| server maximum difficulty | 24 (at most 64) |", handshake.DefaultServerMaxDifficulty == 24},
		{"| client difficulty cap | 24 (16 to 28) |", handshake.DefaultClientMaxDifficulty == 24 &&
			handshake.MinDifficulty == 16 && handshake.MaxClientDifficulty == 28},
		{"| replay cache cap | 65536 SIDs |", handshake.DefaultReplayCacheMax == 65536},
		{"| INIT rate per /24 or /56 | 100/s, burst 200;", handshake.DefaultInitRate == 100 && handshake.DefaultInitBurst == 200},
		{"| pre-auth connections | 1024 total, 64 per /24 or /56 |", transport.DefaultMaxPreAuth == 1024 && transport.DefaultMaxPreAuthPerPrefix == 64},
		{"| INIT deadline | 5 s after accept |", pool.DefaultInitTimeout == 5*time.Second},
		{"| RESPONSE deadline | 30 s after CHALLENGE |", pool.DefaultResponseTimeout == 30*time.Second},
		{"| client confirmation deadline | 10 s after ACCEPT |", session.DefaultConfirmTimeout == 10*time.Second},
		{"| client handshake timeout | 10 s (connect to ACCEPT) |", pool.DefaultHandshakeTimeout == 10*time.Second},
		{"| sequence limit | 2^63 − 2^32 |", session.SeqLimit == 1<<63-1<<32},
		{"| raw-IP replay window | 4096 |", seal.WindowSize == 4096},
		{"| channels | 256 |", session.NumChannels == 256},
		{"| initial credit per channel and direction | 65536 bytes |", session.InitialWindow == 65536},
		{"| receive window per channel | 1 MiB", session.DefaultWindow == 1<<20},
		{"| window-update entries per ACK | ≤ 256 (8 bytes each) |", wire.MaxWindowUpdates == 256 && wire.WindowUpdateLen == 8},
		{"| CLOSE reason | ≤ 256 bytes UTF-8 |", wire.MaxReasonLen == 256 && wire.CloseFixedLen == 8},
		{"| idle timeout | 30 s (interval × misses) |", session.DefaultIdleTimeout == 30*time.Second},
		{"| write stall timeout | 30 s |", session.DefaultWriteTimeout == 30*time.Second},
		{"| drain after own CLOSE | 2 s |", session.DefaultDrainTimeout == 2*time.Second},
		{"| 0x0B | VERSION_DOWNGRADE |", wire.CodeVersionDowngrade == 0x0B},
		{"| 0x0C | PROTOCOL_ERROR |", wire.CodeProtocolError == 0x0C},
		{"| 0 | 1 | ver/type | `0x17` (always version 1) |", true},
		{"| 0–1 | 2 | address type | `0x0001`", addr.TypeNode == 0x0001 && addr.Version1 == 0x0001},
		{"1 = TCP, 2 = raw IPv4", handshake.TransportTCP == 1 && handshake.TransportRawIP == 2},
		{"| 164 | 48 | c_static |", wire.ResponseEchoLen == 84 && wire.ParamsLen == 8},
	}
	for _, r := range rows {
		if !strings.Contains(text, r.quote) {
			t.Errorf("PROTOCOL.md lacks %q", r.quote)
		} else if !r.ok {
			t.Errorf("PROTOCOL.md states %q, but the code differs", r.quote)
		}
	}
	// The flag table: bit N = 1<<N.
	for n, name := range []string{"ENCRYPTED", "COMPRESSED", "PRIORITY", "FRAGMENT", "LAST_FRAG", "REQUIRE_ACK",
		"TELEMETRY", "ROLLBACK_READY", "CONFIG_LOCKED", "JOURNAL_SYNC"} {
		want := "| " + strings.TrimSpace(hexWord(uint16(1)<<n)) + " | " + name + " |"
		if !strings.Contains(text, want) {
			t.Errorf("PROTOCOL.md flag row for %s: want %q", name, want)
		}
	}
}

func hexWord(x uint16) string { return "`0x" + hex.EncodeToString([]byte{byte(x >> 8), byte(x)}) + "`" }
