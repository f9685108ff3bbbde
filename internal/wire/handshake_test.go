package wire

import (
	"bytes"
	"errors"
	"testing"
)

func vectorInit(t testing.TB, v vectors) Init {
	t.Helper()
	return Init{
		Seq:        v.U64(t, "init.header.seq"),
		Timestamp:  v.U64(t, "init.header.timestamp"),
		EC:         [32]byte(v.Hex(t, "init.e_c")),
		Versions:   v.U16(t, "init.versions_c"),
		ServerHint: [8]byte(v.Hex(t, "init.server_hint")),
	}
}

func vectorChallenge(t testing.TB, v vectors) Challenge {
	t.Helper()
	return Challenge{
		Ack:      v.U64(t, "challenge.header.ack"),
		SID:      [16]byte(v.Hex(t, "challenge.header.sid")),
		TIssue:   v.U64(t, "challenge.header.timestamp"),
		SS:       [32]byte(v.Hex(t, "challenge.s_s")),
		Versions: v.U16(t, "challenge.versions_s"),
		D:        uint8(v.Num(t, "challenge.d")),
		J:        uint8(v.Num(t, "challenge.j")),
	}
}

// byteRanges expands [lo, hi] pairs into a list of indices.
func byteRanges(r ...[2]int) []int {
	var out []int
	for _, p := range r {
		for i := p[0]; i <= p[1]; i++ {
			out = append(out, i)
		}
	}
	return out
}

var (
	// INIT: bytes that must hold a fixed value (reserved, flags, ack, SID,
	// length, channel, HMAC, pad).
	initFixed = byteRanges([2]int{1, 3}, [2]int{12, 19}, [2]int{20, 35}, [2]int{44, 47}, [2]int{48, 79}, [2]int{122, 143})
	// INIT: bytes that carry data (seq, timestamp, e_C, versions, hint).
	initFree = byteRanges([2]int{4, 11}, [2]int{36, 43}, [2]int{80, 121})
	// CHALLENGE: fixed bytes (reserved, flags, seq, length, channel, HMAC, pad).
	challengeFixed = byteRanges([2]int{1, 3}, [2]int{4, 11}, [2]int{44, 47}, [2]int{48, 79}, [2]int{116, 119})
	// CHALLENGE: data bytes (ack, SID, t_iss, s_S, versions, d, j).
	challengeFree = byteRanges([2]int{12, 43}, [2]int{80, 115})
)

var flipMasks = []byte{0x01, 0x80, 0xff}

func TestRegionsCoverPacket(t *testing.T) {
	for _, c := range []struct {
		name        string
		n           int
		fixed, free []int
	}{{"INIT", InitLen, initFixed, initFree}, {"CHALLENGE", ChallengeLen, challengeFixed, challengeFree}} {
		seen := make([]int, c.n)
		seen[0]++ // byte 0 is tested separately
		for _, i := range append(append([]int{}, c.fixed...), c.free...) {
			seen[i]++
		}
		for i, s := range seen {
			if s != 1 {
				t.Errorf("%s byte %d covered %d times", c.name, i, s)
			}
		}
	}
}

func TestInitVector(t *testing.T) {
	v := loadVectors(t)
	want := v.Hex(t, "init.bytes")
	in := vectorInit(t, v)
	got := AppendInit(nil, &in)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendInit\n got  %x\n want %x", got, want)
	}
	if !bytes.Equal(want[122:], v.Hex(t, "init.pad")) {
		t.Errorf("pad region mismatch")
	}
	parsed, err := ParseInit(want)
	if err != nil {
		t.Fatal(err)
	}
	if parsed != in {
		t.Fatalf("ParseInit = %+v, want %+v", parsed, in)
	}
	if parsed.Seq != v.U64(t, "inputs.isn_c") || parsed.Timestamp != v.Num(t, "inputs.t_c_ns") {
		t.Errorf("ParseInit seq/timestamp disagree with inputs")
	}
	// Append keeps the prefix.
	pre := []byte{0xde, 0xad}
	got = AppendInit(pre, &in)
	if !bytes.Equal(got[:2], []byte{0xde, 0xad}) || !bytes.Equal(got[2:], want) {
		t.Errorf("AppendInit with prefix = %x", got)
	}
}

func TestChallengeVector(t *testing.T) {
	v := loadVectors(t)
	want := v.Hex(t, "challenge.bytes")
	c := vectorChallenge(t, v)
	got := AppendChallenge(nil, &c)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendChallenge\n got  %x\n want %x", got, want)
	}
	parsed, err := ParseChallenge(want)
	if err != nil {
		t.Fatal(err)
	}
	if parsed != c {
		t.Fatalf("ParseChallenge = %+v, want %+v", parsed, c)
	}
	if parsed.Ack != v.U64(t, "inputs.isn_c") || parsed.TIssue != v.Num(t, "inputs.t_iss_ns") ||
		!bytes.Equal(parsed.SID[:], v.Hex(t, "cookie.SID")) ||
		parsed.D != uint8(v.Num(t, "inputs.difficulty_d")) || parsed.J != uint8(v.Num(t, "inputs.slot_j")) {
		t.Errorf("ParseChallenge fields disagree with inputs: %+v", parsed)
	}
	got = AppendChallenge([]byte{1}, &c)
	if got[0] != 1 || !bytes.Equal(got[1:], want) {
		t.Errorf("AppendChallenge with prefix = %x", got)
	}
}

func TestInitFixedBytesRejected(t *testing.T) {
	v := loadVectors(t)
	good := v.Hex(t, "init.bytes")
	for _, i := range initFixed {
		for _, m := range flipMasks {
			b := bytes.Clone(good)
			b[i] ^= m
			if _, err := ParseInit(b); !errors.Is(err, ErrReserved) {
				t.Errorf("INIT byte %d ^ %#02x: error = %v, want ErrReserved", i, m, err)
			}
		}
	}
}

func TestInitFreeBytesAccepted(t *testing.T) {
	v := loadVectors(t)
	good := v.Hex(t, "init.bytes")
	for _, i := range initFree {
		for _, m := range flipMasks {
			b := bytes.Clone(good)
			b[i] ^= m
			in, err := ParseInit(b)
			if err != nil {
				t.Errorf("INIT byte %d ^ %#02x: %v", i, m, err)
				continue
			}
			if re := AppendInit(nil, &in); !bytes.Equal(re, b) {
				t.Errorf("INIT byte %d ^ %#02x: re-encoding differs", i, m)
			}
		}
	}
}

func TestChallengeFixedBytesRejected(t *testing.T) {
	v := loadVectors(t)
	good := v.Hex(t, "challenge.bytes")
	for _, i := range challengeFixed {
		for _, m := range flipMasks {
			b := bytes.Clone(good)
			b[i] ^= m
			if _, err := ParseChallenge(b); !errors.Is(err, ErrReserved) {
				t.Errorf("CHALLENGE byte %d ^ %#02x: error = %v, want ErrReserved", i, m, err)
			}
		}
	}
}

func TestChallengeFreeBytesAccepted(t *testing.T) {
	v := loadVectors(t)
	good := v.Hex(t, "challenge.bytes")
	for _, i := range challengeFree {
		for _, m := range flipMasks {
			b := bytes.Clone(good)
			b[i] ^= m
			c, err := ParseChallenge(b)
			if err != nil {
				t.Errorf("CHALLENGE byte %d ^ %#02x: %v", i, m, err)
				continue
			}
			if re := AppendChallenge(nil, &c); !bytes.Equal(re, b) {
				t.Errorf("CHALLENGE byte %d ^ %#02x: re-encoding differs", i, m)
			}
		}
	}
}

// byte0 returns the first byte for a version and type.
func byte0(version uint8, ty Type) byte { return version<<4 | byte(ty) }

// parserCase describes a fixed-length handshake decoder for the common
// length/type/version checks.
type parserCase struct {
	name   string
	vector string
	n      int
	ty     Type
	parse  func([]byte) error
}

func parserCases() []parserCase {
	return []parserCase{
		{"INIT", "init.bytes", InitLen, TypeInit, func(b []byte) error { _, err := ParseInit(b); return err }},
		{"CHALLENGE", "challenge.bytes", ChallengeLen, TypeChallenge, func(b []byte) error { _, err := ParseChallenge(b); return err }},
		{"RESPONSE", "response.bytes", ResponseLen, TypeResponse, func(b []byte) error { _, _, err := ParseResponse(b); return err }},
		{"ACCEPT", "accept.bytes", AcceptLen, TypeAccept, func(b []byte) error { _, _, err := ParseAccept(b); return err }},
	}
}

func TestHandshakeLengths(t *testing.T) {
	v := loadVectors(t)
	for _, pc := range parserCases() {
		good := v.Hex(t, pc.vector)
		if len(good) != pc.n {
			t.Fatalf("%s vector is %d bytes, want %d", pc.name, len(good), pc.n)
		}
		if err := pc.parse(good); err != nil {
			t.Errorf("%s: vector rejected: %v", pc.name, err)
		}
		for _, n := range []int{0, 1, HeaderLen - 1, HeaderLen, pc.n - 1} {
			if err := pc.parse(good[:n]); !errors.Is(err, ErrLength) {
				t.Errorf("%s of %d bytes: error = %v, want ErrLength", pc.name, n, err)
			}
		}
		for _, extra := range [][]byte{{0}, {0, 0}, make([]byte, 1000)} {
			if err := pc.parse(append(bytes.Clone(good), extra...)); !errors.Is(err, ErrLength) {
				t.Errorf("%s of %d bytes: error = %v, want ErrLength", pc.name, pc.n+len(extra), err)
			}
		}
		if err := pc.parse(nil); !errors.Is(err, ErrLength) {
			t.Errorf("%s(nil): error = %v, want ErrLength", pc.name, err)
		}
	}
}

func TestHandshakeTypeVersion(t *testing.T) {
	v := loadVectors(t)
	for _, pc := range parserCases() {
		good := v.Hex(t, pc.vector)
		for ty := Type(0); ty < 16; ty++ {
			b := bytes.Clone(good)
			b[0] = byte0(Version1, ty)
			err := pc.parse(b)
			if ty == pc.ty {
				if err != nil {
					t.Errorf("%s with its own type: %v", pc.name, err)
				}
				continue
			}
			if !errors.Is(err, ErrType) {
				t.Errorf("%s with type %v: error = %v, want ErrType", pc.name, ty, err)
			}
		}
		for _, ver := range []uint8{0, 2, 3, 15} {
			b := bytes.Clone(good)
			b[0] = byte0(ver, pc.ty)
			if err := pc.parse(b); !errors.Is(err, ErrVersion) {
				t.Errorf("%s with version %d: error = %v, want ErrVersion", pc.name, ver, err)
			}
		}
	}
}

func TestResponseVector(t *testing.T) {
	v := loadVectors(t)
	pkt := v.Hex(t, "response.bytes")
	h, r, err := ParseResponse(pkt)
	if err != nil {
		t.Fatal(err)
	}
	want := Response{
		EC:         [32]byte(v.Hex(t, "init.e_c")),
		TC:         v.Num(t, "inputs.t_c_ns"),
		ISNC:       v.U64(t, "inputs.isn_c"),
		Versions:   v.U16(t, "inputs.versions_c"),
		ServerHint: [8]byte(v.Hex(t, "inputs.server_hint")),
		TIssue:     v.Num(t, "inputs.t_iss_ns"),
		D:          16,
		J:          1,
		N:          [16]byte(v.Hex(t, "puzzle.handshake.N")),
		CStatic:    [48]byte(v.Hex(t, "response.c_static")),
		CParams:    [24]byte(v.Hex(t, "response.c_pC")),
	}
	if r != want {
		t.Fatalf("ParseResponse payload\n got  %+v\n want %+v", r, want)
	}
	if !bytes.Equal(pkt[HeaderLen:HeaderLen+ResponseEchoLen], v.Hex(t, "response.payload_0_84_echo_and_N")) {
		t.Errorf("echo region mismatch")
	}
	if h.Type != TypeResponse || h.Seq != v.U64(t, "response.header.seq") || h.Flags != v.U16(t, "response.header.flags") ||
		!bytes.Equal(h.SID[:], v.Hex(t, "response.header.sid")) || h.Length != ResponsePayloadLen ||
		!bytes.Equal(h.HMAC[:], v.Hex(t, "response.hmac")) {
		t.Errorf("ParseResponse header = %+v", h)
	}
	var re [ResponseLen]byte
	PutHeader(re[:], &h)
	PutResponsePayload(re[HeaderLen:], &r)
	if !bytes.Equal(re[:], pkt) {
		t.Errorf("PutHeader+PutResponsePayload\n got  %x\n want %x", re[:], pkt)
	}
}

func TestAcceptVector(t *testing.T) {
	v := loadVectors(t)
	pkt := v.Hex(t, "accept.bytes")
	h, a, err := ParseAccept(pkt)
	if err != nil {
		t.Fatal(err)
	}
	want := Accept{ES: [32]byte(v.Hex(t, "accept.e_S")), CParams: [24]byte(v.Hex(t, "accept.c_pS"))}
	if a != want {
		t.Fatalf("ParseAccept payload\n got  %+v\n want %+v", a, want)
	}
	if !bytes.Equal(a.ES[:], v.Hex(t, "inputs.server_ephemeral_public")) {
		t.Errorf("e_S differs from inputs.server_ephemeral_public")
	}
	if h.Type != TypeAccept || h.Seq != v.U64(t, "inputs.isn_s") || h.Ack != v.U64(t, "accept.header.ack") ||
		h.Length != AcceptPayloadLen || !bytes.Equal(h.HMAC[:], v.Hex(t, "accept.hmac")) {
		t.Errorf("ParseAccept header = %+v", h)
	}
	var re [AcceptLen]byte
	PutHeader(re[:], &h)
	PutAcceptPayload(re[HeaderLen:], &a)
	if !bytes.Equal(re[:], pkt) {
		t.Errorf("PutHeader+PutAcceptPayload\n got  %x\n want %x", re[:], pkt)
	}
}

// RESPONSE and ACCEPT are ordinary packets: reserved header bytes are
// ignored on receipt and handed to the caller as received.
func TestResponseAcceptIgnoreReserved(t *testing.T) {
	v := loadVectors(t)
	for _, name := range []string{"response.bytes", "accept.bytes"} {
		b := v.Hex(t, name)
		b[1], b[47] = 0x7f, 0x80
		var h Header
		var err error
		if name == "response.bytes" {
			h, _, err = ParseResponse(b)
		} else {
			h, _, err = ParseAccept(b)
		}
		if err != nil {
			t.Errorf("%s with reserved bytes set: %v", name, err)
			continue
		}
		if h.Res1 != 0x7f || h.Res47 != 0x80 {
			t.Errorf("%s: Res1, Res47 = %#x, %#x", name, h.Res1, h.Res47)
		}
	}
}

func TestPayloadWritersPanicOnShortBuffer(t *testing.T) {
	for name, f := range map[string]func(){
		"PutResponsePayload": func() { PutResponsePayload(make([]byte, ResponsePayloadLen-1), &Response{}) },
		"PutAcceptPayload":   func() { PutAcceptPayload(make([]byte, AcceptPayloadLen-1), &Accept{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s into a short buffer did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestVersionCloseVector(t *testing.T) {
	v := loadVectors(t)
	received := v.Hex(t, "version_negotiation_close.received")
	want := v.Hex(t, "version_negotiation_close.bytes")
	if PacketVersion(received) != 2 || PacketType(received) != TypeInit {
		t.Fatalf("received packet byte 0 = %#x", received[0])
	}
	if _, err := ParseInit(received); !errors.Is(err, ErrVersion) {
		t.Errorf("ParseInit(v2 INIT) error = %v, want ErrVersion", err)
	}
	got := AppendVersionClose(nil, [8]byte(received[4:12]), VersionsV1)
	if VersionsV1 != 0x0002 {
		t.Errorf("VersionsV1 = %#x", VersionsV1)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendVersionClose\n got  %x\n want %x", got, want)
	}
	ack, vers, err := ParseVersionClose(want)
	if err != nil {
		t.Fatal(err)
	}
	if ack != v.U64(t, "inputs.isn_c") || vers != 0x0002 {
		t.Errorf("ParseVersionClose = %#x, %#x", ack, vers)
	}
	// The payload is a CLOSE plaintext with code VERSION_MISMATCH and the
	// version bitmap in Detail.
	c, err := ParseClose(want[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if c != (Close{Code: CodeVersionMismatch, Scope: ScopeSession, Detail: 0x0002}) {
		t.Errorf("VN CLOSE payload = %+v", c)
	}
}

func TestVersionCloseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		seq  [8]byte
		vers uint16
	}{
		{[8]byte{}, 0},
		{[8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 0x0002},
		{[8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffff},
		{[8]byte{0x80}, 0x8001},
	} {
		b := AppendVersionClose([]byte{9}, tc.seq, tc.vers)
		if b[0] != 9 || len(b) != 1+VNCloseLen {
			t.Fatalf("AppendVersionClose did not append: %x", b)
		}
		ack, vers, err := ParseVersionClose(b[1:])
		if err != nil {
			t.Fatal(err)
		}
		var ackb [8]byte
		for i := range ackb {
			ackb[i] = byte(ack >> (56 - 8*i))
		}
		if ackb != tc.seq || vers != tc.vers {
			t.Errorf("round trip: got %x/%#x, want %x/%#x", ackb, vers, tc.seq, tc.vers)
		}
	}
}

func TestVersionCloseRejects(t *testing.T) {
	good := AppendVersionClose(nil, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 2)
	mut := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for name, tc := range map[string]struct {
		b   []byte
		err error
	}{
		"short":     {good[:VNCloseLen-1], ErrLength},
		"long":      {append(bytes.Clone(good), 0), ErrLength},
		"empty":     {nil, ErrLength},
		"type INIT": {mut(func(b []byte) { b[0] = byte0(Version1, TypeInit) }), ErrMalformed},
		"type DATA": {mut(func(b []byte) { b[0] = byte0(Version1, TypeData) }), ErrMalformed},
		"flags":     {mut(func(b []byte) { b[3] = 1 }), ErrMalformed},
		"length 9":  {mut(func(b []byte) { b[45] = 9 }), ErrMalformed},
		"length hi": {mut(func(b []byte) { b[44] = 1 }), ErrMalformed},
		"code":      {mut(func(b []byte) { b[80] = byte(CodeNoError) }), ErrMalformed},
		"code 0x0b": {mut(func(b []byte) { b[80] = byte(CodeVersionDowngrade) }), ErrMalformed},
	} {
		if _, _, err := ParseVersionClose(tc.b); !errors.Is(err, tc.err) {
			t.Errorf("%s: error = %v, want %v", name, err, tc.err)
		}
	}
}

// TestAntiAmplification: every reply sent before the client's address is
// validated (CHALLENGE, version-negotiation CLOSE) is no larger than the
// INIT that provoked it.
func TestAntiAmplification(t *testing.T) {
	v := loadVectors(t)
	if InitLen < ChallengeLen || InitLen < VNCloseLen {
		t.Fatalf("INIT %d < CHALLENGE %d or VN CLOSE %d", InitLen, ChallengeLen, VNCloseLen)
	}
	in := Init{}
	c := Challenge{}
	init := AppendInit(nil, &in)
	ch := AppendChallenge(nil, &c)
	vn := AppendVersionClose(nil, [8]byte{}, VersionsV1)
	if len(init) != InitLen || len(ch) != ChallengeLen || len(vn) != VNCloseLen {
		t.Fatalf("encoded sizes %d/%d/%d, want %d/%d/%d", len(init), len(ch), len(vn), InitLen, ChallengeLen, VNCloseLen)
	}
	if len(ch) > len(init) || len(vn) > len(init) {
		t.Fatalf("amplification: INIT %d, CHALLENGE %d, VN CLOSE %d", len(init), len(ch), len(vn))
	}
	for name, n := range map[string]int{"header": HeaderLen, "INIT": InitLen, "CHALLENGE": ChallengeLen,
		"RESPONSE": ResponseLen, "ACCEPT": AcceptLen, "VN_CLOSE": VNCloseLen} {
		if want := v.Num(t, "constants.sizes."+name); uint64(n) != want {
			t.Errorf("size of %s = %d, vectors say %d", name, n, want)
		}
	}
	if HeaderLen+InitPayloadLen != InitLen || HeaderLen+ChallengePayloadLen != ChallengeLen ||
		HeaderLen+ResponsePayloadLen != ResponseLen || HeaderLen+AcceptPayloadLen != AcceptLen {
		t.Errorf("payload length constants inconsistent")
	}
}
