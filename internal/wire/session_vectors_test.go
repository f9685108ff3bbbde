package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/testutil"
)

// sessionVectorFile holds the golden vectors of the living-session payloads
// (PROTOCOL.md §7.9-§7.13). Every value in it is recomputed here.
const sessionVectorFile = "../../testdata/session-v1.json"

func loadSessionVectors(t testing.TB) vectors { return testutil.LoadVectors(t, sessionVectorFile) }

// uintHex reads path (a "_hex" field) as a big-endian integer of 2, 4 or 8
// bytes.
func uintHex(t testing.TB, v vectors, path string) uint64 {
	t.Helper()
	b := v.Hex(t, path)
	switch len(b) {
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	t.Fatalf("vector %q is %d bytes", path, len(b))
	return 0
}

func checkHex(t *testing.T, v vectors, path string, got []byte) {
	t.Helper()
	if want := v.Hex(t, path); !bytes.Equal(got, want) {
		t.Errorf("%s\n got  %x\n want %x", path, got, want)
	}
}

// TestSessionVectorInputs: the session identity and keys are those of the
// handshake vectors.
func TestSessionVectorInputs(t *testing.T) {
	s, h := loadSessionVectors(t), loadVectors(t)
	for sp, hp := range map[string]string{
		"inputs.sid": "cookie.SID", "inputs.isn_c_hex": "inputs.isn_c_hex", "inputs.isn_s_hex": "inputs.isn_s_hex",
		"inputs.M0": "key_schedule.M0", "inputs.M1": "rekey.M1",
		"inputs.c2s_enc":  "key_schedule.traffic_keys_epoch0.c2s.enc",
		"inputs.c2s_hmac": "key_schedule.traffic_keys_epoch0.c2s.hmac",
	} {
		if !bytes.Equal(s.Hex(t, sp), h.Hex(t, hp)) {
			t.Errorf("session-v1 %s differs from handshake-v1 %s", sp, hp)
		}
	}
}

func vectorTelemetry(t testing.TB, v vectors) Telemetry {
	t.Helper()
	f := func(name string) uint64 { return uintHex(t, v, "telemetry.fields."+name+"_hex") }
	return Telemetry{
		RTTNs: f("rtt_ns"), JitterNs: f("jitter_ns"), LossPPM: uint32(f("loss_rate_ppm")),
		ThroughputBps: uint32(f("throughput_bps")), MTU: uint16(f("mtu_current")), QueueDepth: uint16(f("queue_depth")),
		UptimeNs: f("uptime_ns"), RekeyCount: uint32(f("rekey_count")), ConfigVersion: uint32(f("config_version")),
		StateDigest: uint32(f("state_digest")), JournalHead: f("journal_head"), EchoSeq: f("echo_seq"),
		EchoTimestamp: f("echo_timestamp"), EchoDelayNs: f("echo_delay_ns"), RxPackets: f("rx_packets"),
		RxBytes: f("rx_bytes"),
	}
}

func vectorDigestState(t testing.TB, v vectors, p string) DigestState {
	t.Helper()
	d := DigestState{
		Role: Role(v.Num(t, p+".role")), SID: [16]byte(v.Hex(t, p+".sid")), Epoch: uint32(uintHex(t, v, p+".epoch_hex")),
		Seq: uintHex(t, v, p+".seq_hex"), EpochFirstSeq: uintHex(t, v, p+".epoch_first_seq_hex"),
		DataBytesSent: uintHex(t, v, p+".data_bytes_sent_hex"),
	}
	chans, ok := v.Get(t, p+".tx_active_channels").([]any)
	if !ok {
		t.Fatalf("%s.tx_active_channels is not a list", p)
	}
	for i := range chans {
		d.SetActive(uint8(v.Num(t, p+".tx_active_channels."+strconv.Itoa(i))), true)
	}
	return d
}

func TestSessionVectorTelemetry(t *testing.T) {
	v := loadSessionVectors(t)
	tel := vectorTelemetry(t, v)
	checkHex(t, v, "telemetry.plaintext", AppendTelemetry(nil, &tel))
	got, err := ParseTelemetry(v.Hex(t, "telemetry.plaintext"))
	if err != nil || got != tel {
		t.Errorf("ParseTelemetry = %+v, %v", got, err)
	}
	d := vectorDigestState(t, v, "state_digest.client_epoch0")
	if tel.StateDigest != StateDigest(&d) {
		t.Errorf("telemetry state_digest %08x is not the client state's %08x", tel.StateDigest, StateDigest(&d))
	}
	// The RTT example: the server receives this telemetry at "now".
	if tel.EchoTimestamp != uintHex(t, v, "rtt.echo_timestamp_hex") || tel.EchoDelayNs != uintHex(t, v, "rtt.echo_delay_ns_hex") {
		t.Error("rtt example does not use the telemetry's echo fields")
	}
	rtt, ok := tel.RTTSample(uintHex(t, v, "rtt.now_hex"))
	if !ok || rtt != uintHex(t, v, "rtt.rtt_ns_hex") {
		t.Errorf("RTTSample = %d, %v", rtt, ok)
	}
}

func TestSessionVectorStateDigest(t *testing.T) {
	v := loadSessionVectors(t)
	for _, p := range []string{"state_digest.client_epoch0", "state_digest.server_epoch1"} {
		d := vectorDigestState(t, v, p)
		checkHex(t, v, p+".tx_active", d.TxActive[:])
		checkHex(t, v, p+".input", AppendStateDigestInput(nil, &d))
		if got, want := StateDigest(&d), uint32(uintHex(t, v, p+".digest_hex")); got != want {
			t.Errorf("%s: digest %08x, want %08x", p, got, want)
		}
	}
}

func TestSessionVectorNotices(t *testing.T) {
	v := loadSessionVectors(t)
	list, _ := v.Get(t, "notices").([]any)
	if len(list) == 0 {
		t.Fatal("no notices")
	}
	for i := range list {
		p := "notices." + strconv.Itoa(i)
		n := Notice{Code: Code(v.Num(t, p+".code")), Pause: uint16(v.Num(t, p+".pause_ms")),
			MsgID: uint32(uintHex(t, v, p+".msg_id_hex"))}
		checkHex(t, v, p+".plaintext", AppendNotice(nil, &n))
		if got, err := ParseNotice(v.Hex(t, p+".plaintext")); err != nil || got != n {
			t.Errorf("%s: ParseNotice = %+v, %v", p, got, err)
		}
	}
}

func TestSessionVectorDiscover(t *testing.T) {
	v := loadSessionVectors(t)
	for _, p := range []string{"discover.probe", "discover.probe_ack"} {
		d := Discover{Kind: uint8(v.Num(t, p+".kind")), Size: uint16(v.Num(t, p+".size")), ID: uint32(uintHex(t, v, p+".id_hex"))}
		checkHex(t, v, p+".plaintext", AppendDiscover(nil, &d))
		if got, err := ParseDiscover(v.Hex(t, p+".plaintext")); err != nil || got != d {
			t.Errorf("%s: ParseDiscover = %+v, %v", p, got, err)
		}
	}
	if n := len(v.Hex(t, "probe_packet.packet")); n != int(v.Num(t, "discover.probe.size")) {
		t.Errorf("the probe packet is %d bytes, its size field says %d", n, v.Num(t, "discover.probe.size"))
	}
}

func TestSessionVectorFragments(t *testing.T) {
	v := loadSessionVectors(t)
	msg := v.Hex(t, "fragment.message")
	for i := range msg {
		if msg[i] != byte(i) {
			t.Fatalf("message byte %d = %#x", i, msg[i])
		}
	}
	mtu := int(v.Num(t, "fragment.mtu"))
	id := uint32(uintHex(t, v, "fragment.msg_id_hex"))
	if !Fragmentable(Type(v.Num(t, "fragment.type"))) {
		t.Fatal("the vector fragments a type that may not be fragmented")
	}
	flags, pts := fragmentMessage(id, msg, mtu)
	list, _ := v.Get(t, "fragment.fragments").([]any)
	if len(list) != len(pts) {
		t.Fatalf("%d fragments in the file, %d computed", len(list), len(pts))
	}
	out := make([]byte, len(msg))
	for i := range pts {
		p := "fragment.fragments." + strconv.Itoa(i)
		checkHex(t, v, p+".plaintext", pts[i])
		if got := uintHex(t, v, p+".flags_hex"); got != uint64(flags[i]) {
			t.Errorf("%s: flags %#04x, computed %#04x", p, got, flags[i])
		}
		f, chunk, err := ParseFragment(flags[i], v.Hex(t, p+".plaintext"))
		if err != nil || f.MsgID != id || int(f.Offset) != int(v.Num(t, p+".offset")) || int(f.Total) != int(v.Num(t, p+".total")) ||
			len(chunk) != int(v.Num(t, p+".chunk_len")) {
			t.Errorf("%s: ParseFragment = %+v, %d bytes, %v", p, f, len(chunk), err)
			continue
		}
		if size := HeaderLen + len(pts[i]) + TagLen; size != int(v.Num(t, p+".packet_size")) || size > mtu {
			t.Errorf("%s: packet of %d bytes", p, size)
		}
		copy(out[f.Offset:], chunk)
	}
	if !bytes.Equal(out, msg) {
		t.Error("fragments do not reassemble the message")
	}
}

func TestSessionVectorIntegrity(t *testing.T) {
	v := loadSessionVectors(t)
	checkHex(t, v, "integrity.info", seal.Info(IntegrityLabel, nil))
	k0 := seal.Expand(v.Hex(t, "inputs.M0"), IntegrityLabel, nil)
	k1 := seal.Expand(v.Hex(t, "inputs.M1"), IntegrityLabel, nil)
	checkHex(t, v, "integrity.key_epoch0", k0[:])
	checkHex(t, v, "integrity.key_epoch1", k1[:])
	sid := [16]byte(v.Hex(t, "inputs.sid"))
	nonce := [32]byte(v.Hex(t, "integrity.nonce"))
	checkHex(t, v, "integrity.challenge_plaintext", AppendIntegrity(nil, &Integrity{Kind: IntegrityChallenge, Nonce: nonce}))
	checkHex(t, v, "integrity.mac_input_client", AppendIntegrityMACInput(nil, &sid, &nonce, RoleClient))
	checkHex(t, v, "integrity.mac_input_server", AppendIntegrityMACInput(nil, &sid, &nonce, RoleServer))
	for _, c := range []struct {
		path  string
		key   *[32]byte
		role  Role
		epoch uint32
		resp  string
	}{
		{"integrity.proof_client_epoch0", &k0, RoleClient, 0, ""},
		{"integrity.proof_server_epoch0", &k0, RoleServer, 0, "integrity.response_server_epoch0"},
		{"integrity.proof_server_epoch1", &k1, RoleServer, 1, "integrity.response_server_epoch1"},
	} {
		proof := IntegrityProof(c.key, &sid, &nonce, c.role)
		checkHex(t, v, c.path, proof[:])
		if c.resp == "" {
			continue
		}
		m := Integrity{Kind: IntegrityResponse, Epoch: c.epoch, Nonce: nonce, Proof: proof}
		checkHex(t, v, c.resp, AppendIntegrity(nil, &m))
		got, err := ParseIntegrity(v.Hex(t, c.resp))
		if err != nil || got != m || !VerifyIntegrityProof(c.key, &sid, &got.Nonce, c.role, &got.Proof) {
			t.Errorf("%s: %+v, %v", c.resp, got, err)
		}
	}
	if ch, err := ParseIntegrity(v.Hex(t, "integrity.challenge_plaintext")); err != nil || ch.Nonce != nonce {
		t.Errorf("challenge: %+v, %v", ch, err)
	}
}

// TestSessionVectorPackets seals the two whole packets with the epoch-0 c2s
// keys of the handshake vectors, and opens them again.
func TestSessionVectorPackets(t *testing.T) {
	v := loadSessionVectors(t)
	keys := seal.DirectionKeys{Enc: [32]byte(v.Hex(t, "inputs.c2s_enc")), HMAC: [32]byte(v.Hex(t, "inputs.c2s_hmac"))}
	for p, pt := range map[string][]byte{
		"heartbeat_packet": v.Hex(t, "telemetry.plaintext"),
		"probe_packet":     v.Hex(t, "discover.probe.plaintext"),
	} {
		h := Header{Version: Version1, Type: Type(v.Num(t, p+".type")), Flags: uint16(uintHex(t, v, p+".flags_hex")),
			Seq: uintHex(t, v, p+".seq_hex"), Ack: uintHex(t, v, p+".ack_hex"), SID: [16]byte(v.Hex(t, "inputs.sid")),
			Timestamp: uintHex(t, v, p+".timestamp_hex"), Length: uint16(v.Num(t, p+".length")), Channel: uint8(v.Num(t, p+".channel"))}
		if int(h.Length) != len(pt)+TagLen {
			t.Fatalf("%s: length %d for a %d-byte plaintext", p, h.Length, len(pt))
		}
		pkt := make([]byte, HeaderLen, HeaderLen+len(pt)+TagLen)
		PutHeader(pkt, &h)
		pkt = seal.NewProtector(&keys).Seal(append(pkt, pt...))
		checkHex(t, v, p+".packet", pkt)
		opened, err := seal.NewProtector(&keys).Open(bytes.Clone(v.Hex(t, p+".packet")))
		if err != nil || !bytes.Equal(opened, pt) {
			t.Errorf("%s: Open = %x, %v", p, opened, err)
		}
	}
}

// TestSessionVectorConfig recomputes the CONFIG and ROLLBACK examples of
// PROTOCOL.md §7.15 and parses them back.
func TestSessionVectorConfig(t *testing.T) {
	v := loadSessionVectors(t)
	params := func(p string) ConfigParams {
		return ConfigParams{HeartbeatMs: uint32(v.Num(t, p+".heartbeat_ms")), RekeyIntervalS: uint32(v.Num(t, p+".rekey_interval_s")),
			RekeyPackets: v.Num(t, p+".rekey_packets"), MTUMax: uint16(v.Num(t, p+".mtu_max")), Compression: uint8(v.Num(t, p+".compression"))}
	}
	p0, p1 := params("config.v0.params"), params("config.v1.params")
	h0, h1 := ConfigHash(0, &p0), ConfigHash(1, &p1)
	checkHex(t, v, "config.v0.params_hex", AppendConfigParams(nil, &p0))
	checkHex(t, v, "config.v1.params_hex", AppendConfigParams(nil, &p1))
	checkHex(t, v, "config.v0.serial", AppendConfigSerial(nil, 0, &p0))
	checkHex(t, v, "config.v1.serial", AppendConfigSerial(nil, 1, &p1))
	checkHex(t, v, "config.v0.hash", h0[:])
	checkHex(t, v, "config.v1.hash", h1[:])
	dl := uint32(v.Num(t, "config.deadline_ms"))
	for _, c := range []struct {
		path string
		typ  Type
		m    ConfigMsg
	}{
		{"config.propose", TypeConfig, ConfigMsg{Kind: ConfigPropose, Version: 1, Value: dl, Hash: h1, PrevHash: h0, Params: p1}},
		{"config.confirm", TypeConfig, ConfigMsg{Kind: ConfigConfirm, Version: 1, Hash: h1, PrevHash: h0}},
		{"config.accept", TypeConfig, ConfigMsg{Kind: ConfigAccept, Version: 1, Value: dl, Hash: h1, PrevHash: h0, Params: p1}},
		{"config.reject_locked", TypeConfig, ConfigMsg{Kind: ConfigReject, Code: CodeConfigReject, Detail: RejectLocked,
			Version: 1, Hash: h1, PrevHash: h0, Params: p0}},
		{"config.rollback", TypeRollback, ConfigMsg{Kind: RollbackRequest, Version: 1, Hash: h1, PrevHash: h0}},
		{"config.rollback_done", TypeRollback, ConfigMsg{Kind: RollbackDone, PrevVersion: 1, Hash: h0, PrevHash: h1, Params: p0}},
	} {
		checkHex(t, v, c.path, AppendConfigMsg(nil, &c.m))
		if got, err := ParseConfigMsg(c.typ, v.Hex(t, c.path)); err != nil || got != c.m {
			t.Errorf("%s: ParseConfigMsg = %+v, %v", c.path, got, err)
		}
	}
}

// TestProtocolDocQuotesSessionVectors keeps PROTOCOL.md §7.9-§7.13 honest:
// the examples it prints are the golden ones.
func TestProtocolDocQuotesSessionVectors(t *testing.T) {
	raw, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(raw)), "")
	v := loadSessionVectors(t)
	for _, p := range []string{
		"telemetry.plaintext", "state_digest.client_epoch0.input", "state_digest.client_epoch0.digest_hex",
		"state_digest.server_epoch1.digest_hex", "notices.0.plaintext", "notices.1.plaintext", "notices.2.plaintext",
		"discover.probe_ack.plaintext", "integrity.info", "integrity.key_epoch0", "integrity.challenge_plaintext",
		"integrity.mac_input_server", "integrity.proof_server_epoch0", "integrity.response_server_epoch0",
		"config.v0.hash", "config.v1.hash", "config.propose", "config.reject_locked", "config.rollback_done",
	} {
		if !strings.Contains(doc, v.Str(t, p)) {
			t.Errorf("PROTOCOL.md does not quote %s = %s", p, v.Str(t, p))
		}
	}
	// The probe's fixed part and the fragment headers.
	for _, s := range []string{
		hex.EncodeToString(v.Hex(t, "discover.probe.plaintext")[:DiscoverFixedLen]),
		hex.EncodeToString(v.Hex(t, "fragment.fragments.0.plaintext")[:FragHeaderLen]),
		hex.EncodeToString(v.Hex(t, "fragment.fragments.1.plaintext")[:FragHeaderLen]),
		hex.EncodeToString(v.Hex(t, "fragment.fragments.2.plaintext")[:FragHeaderLen]),
	} {
		if !strings.Contains(doc, s) {
			t.Errorf("PROTOCOL.md does not quote %s", s)
		}
	}
}

// TestSessionFuzzCorpora checks the committed seeds of this file set's fuzz
// targets: at least three per target, "valid*" accepted, "truncated*"
// refused (TestFuzzCorpusValidSeeds does the same for the older targets).
func TestSessionFuzzCorpora(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"FuzzParseTelemetry":     func(b []byte) error { _, err := ParseTelemetry(b); return err },
		"FuzzParseNotice":        func(b []byte) error { _, err := ParseNotice(b); return err },
		"FuzzParseDiscover":      func(b []byte) error { _, err := ParseDiscover(b); return err },
		"FuzzParseIntegrity":     func(b []byte) error { _, err := ParseIntegrity(b); return err },
		"FuzzParseJournal":       func(b []byte) error { _, err := ParseJournalCheckpoint(b); return err },
		"FuzzParseJournalHashes": func(b []byte) error { _, err := ParseJournalHashes(b); return err },
		"FuzzParseConfig": func(b []byte) error {
			if len(b) < 1 {
				return ErrShort
			}
			_, err := ParseConfigMsg(Type(b[0]), b[1:])
			return err
		},
		"FuzzParseFragment": func(b []byte) error {
			if len(b) < 2 {
				return ErrShort
			}
			_, _, err := ParseFragment(binary.BigEndian.Uint16(b), b[2:])
			return err
		},
	}
	for name, parse := range decoders {
		dir := filepath.Join("testdata", "fuzz", name)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) < 3 {
			t.Errorf("%s: %d seeds, want >= 3", name, len(ents))
		}
		for _, e := range ents {
			err := parse(readCorpusFile(t, filepath.Join(dir, e.Name())))
			switch {
			case strings.HasPrefix(e.Name(), "valid") && err != nil:
				t.Errorf("%s/%s rejected: %v", name, e.Name(), err)
			case strings.HasPrefix(e.Name(), "truncated") && err == nil:
				t.Errorf("%s/%s accepted", name, e.Name())
			}
		}
	}
}
