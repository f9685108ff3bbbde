package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every fuzz target checks: no panic; every error wraps a package sentinel;
// the decoder accepts exactly the inputs an independent byte-level oracle
// accepts; and an accepted input re-encodes to its canonical form.

var sentinels = []error{ErrShort, ErrLength, ErrVersion, ErrType, ErrReserved, ErrMalformed}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no package sentinel", err)
}

// garbage returns n deterministic pseudo-random bytes.
func garbage(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// addSeeds adds the golden packets, their truncations and some fixed inputs.
func addSeeds(f *testing.F, extra ...[]byte) {
	f.Helper()
	for _, p := range vectorPackets(f) {
		f.Add(p)
		f.Add(p[:len(p)-1])
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderLen))
	for _, e := range extra {
		f.Add(e)
	}
}

// canonicalHeader is b[:80] with the reserved bytes 1 and 47 zeroed.
func canonicalHeader(b []byte) []byte {
	c := bytes.Clone(b[:HeaderLen])
	c[1], c[47] = 0, 0
	return c
}

func FuzzParseHeader(f *testing.F) {
	addSeeds(f, garbage(HeaderLen, 1), garbage(HeaderLen-1, 2), bytes.Repeat([]byte{0xff}, HeaderLen+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if len(b) < HeaderLen {
			if !errors.Is(err, ErrShort) {
				t.Fatalf("%d bytes: error %v, want ErrShort", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%d bytes: %v", len(b), err)
		}
		if h.Res1 != b[1] || h.Res47 != b[47] {
			t.Fatalf("reserved bytes not preserved: %#x %#x", h.Res1, h.Res47)
		}
		if h.Version != PacketVersion(b) || h.Type != PacketType(b) || int(h.Length) != PayloadLen(b) {
			t.Fatalf("ParseHeader disagrees with PacketVersion/PacketType/PayloadLen")
		}
		var re [HeaderLen]byte
		PutHeader(re[:], &h)
		if want := canonicalHeader(b); !bytes.Equal(re[:], want) {
			t.Fatalf("PutHeader(ParseHeader(b))\n got  %x\n want %x", re[:], want)
		}
		h2, err := ParseHeader(re[:])
		h.Res1, h.Res47 = 0, 0
		if err != nil || h2 != h {
			t.Fatalf("second round trip: %+v, %v", h2, err)
		}
	})
}

// fixedOK reports whether every index in fixed holds its canonical value:
// zero, except the length field (44-45), which must hold payloadLen.
func fixedOK(b []byte, fixed []int, payloadLen uint16) bool {
	var want [2]byte
	binary.BigEndian.PutUint16(want[:], payloadLen)
	for _, i := range fixed {
		w := byte(0)
		switch i {
		case 44:
			w = want[0]
		case 45:
			w = want[1]
		}
		if b[i] != w {
			return false
		}
	}
	return true
}

func FuzzParseInit(f *testing.F) {
	addSeeds(f, garbage(InitLen, 3), garbage(InitLen+1, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInit(b)
		want := len(b) == InitLen && b[0] == byte0(Version1, TypeInit) && fixedOK(b, initFixed, InitPayloadLen)
		if (err == nil) != want {
			t.Fatalf("ParseInit(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if re := AppendInit(nil, &in); !bytes.Equal(re, b) {
			t.Fatalf("AppendInit(ParseInit(b)) != b\n got  %x\n want %x", re, b)
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	addSeeds(f, garbage(ChallengeLen, 5), garbage(ChallengeLen-1, 6))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChallenge(b)
		want := len(b) == ChallengeLen && b[0] == byte0(Version1, TypeChallenge) &&
			fixedOK(b, challengeFixed, ChallengePayloadLen)
		if (err == nil) != want {
			t.Fatalf("ParseChallenge(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if re := AppendChallenge(nil, &c); !bytes.Equal(re, b) {
			t.Fatalf("AppendChallenge(ParseChallenge(b)) != b\n got  %x\n want %x", re, b)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f, garbage(ResponseLen, 7), garbage(ResponseLen+1, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r, err := ParseResponse(b)
		want := len(b) == ResponseLen && b[0] == byte0(Version1, TypeResponse)
		if (err == nil) != want {
			t.Fatalf("ParseResponse(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if h.Res1 != b[1] || h.Res47 != b[47] {
			t.Fatalf("reserved bytes not preserved")
		}
		re := make([]byte, ResponseLen)
		PutHeader(re, &h)
		PutResponsePayload(re[HeaderLen:], &r)
		if w := append(canonicalHeader(b), b[HeaderLen:]...); !bytes.Equal(re, w) {
			t.Fatalf("re-encoded RESPONSE\n got  %x\n want %x", re, w)
		}
	})
}

func FuzzParseAccept(f *testing.F) {
	addSeeds(f, garbage(AcceptLen, 9), garbage(AcceptLen-1, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, a, err := ParseAccept(b)
		want := len(b) == AcceptLen && b[0] == byte0(Version1, TypeAccept)
		if (err == nil) != want {
			t.Fatalf("ParseAccept(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if h.Res1 != b[1] || h.Res47 != b[47] {
			t.Fatalf("reserved bytes not preserved")
		}
		re := make([]byte, AcceptLen)
		PutHeader(re, &h)
		PutAcceptPayload(re[HeaderLen:], &a)
		if w := append(canonicalHeader(b), b[HeaderLen:]...); !bytes.Equal(re, w) {
			t.Fatalf("re-encoded ACCEPT\n got  %x\n want %x", re, w)
		}
	})
}

func FuzzParseClose(f *testing.F) {
	addSeeds(f,
		AppendClose(nil, &Close{Code: CodeProtocolError, Scope: ScopeChannelFIN, Detail: 3, Reason: "naïve"}),
		[]byte{0, 0, 0, 0, 0, 0, 0},
		[]byte{0x0a, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0xe2, 0x82},
		append([]byte{1, 3, 0, 0, 0, 0, 0, 0}, "x"...),
		append(make([]byte, CloseFixedLen), bytes.Repeat([]byte("é"), MaxReasonLen/2)...),
		garbage(40, 11))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseClose(b)
		want := len(b) >= CloseFixedLen && len(b) <= CloseFixedLen+MaxReasonLen && b[1] <= 2 && utf8.Valid(b[CloseFixedLen:])
		if (err == nil) != want {
			t.Fatalf("ParseClose(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		re := AppendClose(nil, &c)
		if len(re) != len(b) || !bytes.Equal(re[:4], b[:4]) || !allZero(re[4:8]) ||
			!bytes.Equal(re[CloseFixedLen:], b[CloseFixedLen:]) || c.Reason != string(b[CloseFixedLen:]) {
			t.Fatalf("AppendClose(ParseClose(b))\n got  %x\n from %x", re, b)
		}
		c2, err := ParseClose(re)
		if err != nil || c2 != c {
			t.Fatalf("second round trip: %+v, %v", c2, err)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	two := AppendWindowUpdate(AppendWindowUpdate(nil, WindowUpdate{1, 7, 1000}), WindowUpdate{255, 0, 1 << 31})
	addSeeds(f, two, two[:7], garbage(MaxWindowUpdates*WindowUpdateLen, 12),
		garbage((MaxWindowUpdates+1)*WindowUpdateLen, 13), garbage(9, 14))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []WindowUpdate
		err := ParseAck(b, func(w WindowUpdate) { got = append(got, w) })
		want := len(b)%WindowUpdateLen == 0 && len(b)/WindowUpdateLen <= MaxWindowUpdates
		if (err == nil) != want {
			t.Fatalf("ParseAck(%d bytes) error = %v, oracle accepts = %v", len(b), err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			if len(got) != 0 {
				t.Fatalf("fn called %d times before an error", len(got))
			}
			return
		}
		if len(got) != len(b)/WindowUpdateLen {
			t.Fatalf("%d entries from %d bytes", len(got), len(b))
		}
		var re []byte
		for _, w := range got {
			re = AppendWindowUpdate(re, w)
		}
		canon := bytes.Clone(b)
		for i := 0; i < len(canon); i += WindowUpdateLen {
			canon[i+1] = 0
		}
		if !bytes.Equal(re, canon) && !(len(re) == 0 && len(canon) == 0) {
			t.Fatalf("re-encoded ACK\n got  %x\n want %x", re, canon)
		}
	})
}

func FuzzParseVersionClose(f *testing.F) {
	addSeeds(f, AppendVersionClose(nil, [8]byte{0xff, 1, 2, 3, 4, 5, 6, 7}, 0xffff), garbage(VNCloseLen, 15),
		garbage(VNCloseLen+1, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, vers, err := ParseVersionClose(b)
		want := len(b) == VNCloseLen && PacketType(b) == TypeClose && b[2] == 0 && b[3] == 0 &&
			b[44] == 0 && b[45] == 8 && b[80] == byte(CodeVersionMismatch)
		if (err == nil) != want {
			t.Fatalf("ParseVersionClose(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if ack != binary.BigEndian.Uint64(b[12:20]) || vers != binary.BigEndian.Uint16(b[82:84]) {
			t.Fatalf("ack/versions not taken from bytes 12-19 / 82-83")
		}
		re := AppendVersionClose(nil, [8]byte(b[12:20]), vers)
		canon := make([]byte, VNCloseLen)
		canon[0] = byte0(Version1, TypeClose)
		copy(canon[12:20], b[12:20])
		canon[45] = 8
		canon[80] = byte(CodeVersionMismatch)
		copy(canon[82:84], b[82:84])
		if !bytes.Equal(re, canon) {
			t.Fatalf("re-encoded VN CLOSE\n got  %x\n want %x", re, canon)
		}
		ack2, vers2, err := ParseVersionClose(re)
		if err != nil || ack2 != ack || vers2 != vers {
			t.Fatalf("second round trip: %#x %#x %v", ack2, vers2, err)
		}
	})
}

// readCorpusFile decodes a one-value "go test fuzz v1" []byte file.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		t.Fatalf("%s: not a one-value go test fuzz v1 file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// TestFuzzCorpusValidSeeds checks that the committed "valid" seeds are
// accepted, the "truncated" ones rejected, and that every target has at
// least three seeds.
func TestFuzzCorpusValidSeeds(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"FuzzParseHeader":    func(b []byte) error { _, err := ParseHeader(b); return err },
		"FuzzParseInit":      func(b []byte) error { _, err := ParseInit(b); return err },
		"FuzzParseChallenge": func(b []byte) error { _, err := ParseChallenge(b); return err },
		"FuzzParseResponse":  func(b []byte) error { _, _, err := ParseResponse(b); return err },
		"FuzzParseAccept":    func(b []byte) error { _, _, err := ParseAccept(b); return err },
		"FuzzParseClose":     func(b []byte) error { _, err := ParseClose(b); return err },
		"FuzzParseAck":       func(b []byte) error { return ParseAck(b, func(WindowUpdate) {}) },
		"FuzzParseVersionClose": func(b []byte) error {
			_, _, err := ParseVersionClose(b)
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
			b := readCorpusFile(t, filepath.Join(dir, e.Name()))
			err := parse(b)
			switch {
			case strings.HasPrefix(e.Name(), "valid") && err != nil:
				t.Errorf("%s/%s rejected: %v", name, e.Name(), err)
			case strings.HasPrefix(e.Name(), "truncated") && err == nil:
				t.Errorf("%s/%s accepted", name, e.Name())
			}
		}
	}
}
