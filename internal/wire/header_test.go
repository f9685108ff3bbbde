package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func fill32(b byte) (a [32]byte) {
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

func fill16(b byte) (a [16]byte) {
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

func TestHeaderRoundTrip(t *testing.T) {
	all32 := [32]byte{}
	for i := range all32 {
		all32[i] = 0xff
	}
	all16 := [16]byte{}
	for i := range all16 {
		all16[i] = 0xff
	}
	tests := []struct {
		name string
		h    Header
	}{
		{"zero", Header{}},
		{"init-like", Header{Version: Version1, Type: TypeInit, Seq: 0x0123456789abcdef, Timestamp: 1764000012345678901, Length: InitPayloadLen}},
		{"data", Header{Version: Version1, Type: TypeData, Flags: FlagEncrypted | FlagRequireAck, Seq: 7, Ack: 9,
			SID: fill16(0x10), Timestamp: 43500000, Length: 27, Channel: 3, HMAC: fill32(0x40)}},
		{"all flags", Header{Version: Version1, Type: TypeClose, Flags: 0xffff}},
		{"defined flags", Header{Version: Version1, Type: TypeAck, Flags: FlagsDefined}},
		{"max", Header{Version: 15, Type: 15, Flags: math.MaxUint16, Seq: math.MaxUint64, Ack: math.MaxUint64,
			SID: all16, Timestamp: math.MaxUint64, Length: MaxPayload, Channel: math.MaxUint8, HMAC: all32}},
		{"high bits", Header{Version: 8, Type: TypeIntegrity, Flags: 0x8000, Seq: 1 << 63, Ack: 1 << 63,
			Timestamp: 1 << 63, Length: 0x8000, Channel: 0x80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b [HeaderLen]byte
			PutHeader(b[:], &tc.h)
			got, err := ParseHeader(b[:])
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.h {
				t.Fatalf("round trip:\n got  %+v\n want %+v", got, tc.h)
			}
			if PayloadLen(b[:]) != int(tc.h.Length) {
				t.Errorf("PayloadLen = %d, want %d", PayloadLen(b[:]), tc.h.Length)
			}
			if PacketVersion(b[:]) != tc.h.Version {
				t.Errorf("PacketVersion = %d, want %d", PacketVersion(b[:]), tc.h.Version)
			}
			if PacketType(b[:]) != tc.h.Type {
				t.Errorf("PacketType = %v, want %v", PacketType(b[:]), tc.h.Type)
			}
			// With a payload following, only the first 80 bytes are read.
			long := append(b[:], 0xaa, 0xbb, 0xcc)
			got2, err := ParseHeader(long)
			if err != nil || got2 != tc.h {
				t.Errorf("ParseHeader with trailing payload = %+v, %v", got2, err)
			}
		})
	}
}

func TestHeaderLayout(t *testing.T) {
	h := Header{Version: 1, Type: TypeData, Flags: 0x0203, Seq: 0x0405060708090a0b, Ack: 0x0c0d0e0f10111213,
		SID: fill16(0x14), Timestamp: 0x2425262728292a2b, Length: 0x2c2d, Channel: 0x2e, HMAC: fill32(0x30)}
	var b [HeaderLen]byte
	PutHeader(b[:], &h)
	want := make([]byte, HeaderLen)
	for i := range want {
		want[i] = byte(i)
	}
	want[0] = 0x13
	want[1] = 0
	want[47] = 0
	if !bytes.Equal(b[:], want) {
		t.Fatalf("layout\n got  %x\n want %x", b[:], want)
	}
}

func TestPutHeaderZeroesReserved(t *testing.T) {
	h := Header{Version: Version1, Type: TypeData, Res1: 0xff, Res47: 0xa5, Seq: 1}
	b := bytes.Repeat([]byte{0xee}, HeaderLen+4) // dirty buffer
	PutHeader(b, &h)
	if b[1] != 0 || b[47] != 0 {
		t.Fatalf("reserved bytes written as %#x, %#x; want 0, 0", b[1], b[47])
	}
	for i := HeaderLen; i < len(b); i++ {
		if b[i] != 0xee {
			t.Fatalf("PutHeader wrote past byte 79 (byte %d = %#x)", i, b[i])
		}
	}
	got, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	h.Res1, h.Res47 = 0, 0
	if got != h {
		t.Fatalf("got %+v, want %+v", got, h)
	}
}

func TestPutHeaderShortPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("PutHeader into 79 bytes did not panic")
		}
	}()
	PutHeader(make([]byte, HeaderLen-1), &Header{})
}

func TestParseHeaderShort(t *testing.T) {
	buf := bytes.Repeat([]byte{0x11}, HeaderLen)
	if _, err := ParseHeader(nil); !errors.Is(err, ErrShort) {
		t.Errorf("ParseHeader(nil) error = %v, want ErrShort", err)
	}
	for n := 0; n < HeaderLen; n++ {
		if _, err := ParseHeader(buf[:n]); !errors.Is(err, ErrShort) {
			t.Errorf("ParseHeader(%d bytes) error = %v, want ErrShort", n, err)
		}
	}
	if _, err := ParseHeader(buf); err != nil {
		t.Errorf("ParseHeader(80 bytes) error = %v", err)
	}
}

func TestParseHeaderKeepsReserved(t *testing.T) {
	var b [HeaderLen]byte
	PutHeader(b[:], &Header{Version: Version1, Type: TypeHeartbeat, Seq: 5})
	b[1], b[47] = 0x5a, 0xc3
	h, err := ParseHeader(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if h.Res1 != 0x5a || h.Res47 != 0xc3 {
		t.Fatalf("Res1, Res47 = %#x, %#x; want 0x5a, 0xc3", h.Res1, h.Res47)
	}
	if h.Version != Version1 || h.Type != TypeHeartbeat || h.Seq != 5 {
		t.Fatalf("other fields disturbed: %+v", h)
	}
}

func TestPacketVersionType(t *testing.T) {
	for i := 0; i < 256; i++ {
		b := []byte{byte(i)}
		if PacketVersion(b) != uint8(i>>4) || PacketType(b) != Type(i&0x0f) {
			t.Errorf("byte0 %#02x: version %d type %d", i, PacketVersion(b), PacketType(b))
		}
	}
	var b [HeaderLen]byte
	b[44], b[45] = 0xff, 0xfe
	if PayloadLen(b[:]) != 0xfffe {
		t.Errorf("PayloadLen = %#x", PayloadLen(b[:]))
	}
}

func TestTypeString(t *testing.T) {
	want := map[Type]string{TypeInit: "INIT", TypeChallenge: "CHALLENGE", TypeResponse: "RESPONSE",
		TypeData: "DATA", TypeAck: "ACK", TypeHeartbeat: "HEARTBEAT", TypeRekey: "REKEY", TypeClose: "CLOSE",
		TypeConfig: "CONFIG", TypeRollback: "ROLLBACK", TypeDiscover: "DISCOVER", TypeJournal: "JOURNAL",
		TypeIntegrity: "INTEGRITY", 0xD: "TYPE(0xd)", 0xF: "TYPE(0xf)", 0xff: "TYPE(0xff)"}
	for ty, s := range want {
		if ty.String() != s {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(ty), ty.String(), s)
		}
	}
}

// TestHeaderVectors decodes the golden packets and compares every header
// field with the vector's header object.
func TestHeaderVectors(t *testing.T) {
	v := loadVectors(t)
	for _, name := range []string{"init", "challenge", "response", "accept", "traffic_epoch0.0", "traffic_epoch0.1"} {
		t.Run(name, func(t *testing.T) {
			field := ".bytes"
			if strings.HasPrefix(name, "traffic") {
				field = ".packet"
			}
			pkt := v.Hex(t, name+field)
			hp := name + ".header."
			h, err := ParseHeader(pkt)
			if err != nil {
				t.Fatal(err)
			}
			check := func(field string, got, want any) {
				t.Helper()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: got %v, want %v", field, got, want)
				}
			}
			check("byte0", pkt[0], v.Hex(t, hp+"byte0_hex")[0])
			check("version", uint64(h.Version), v.Num(t, hp+"version"))
			check("type", uint64(h.Type), v.Num(t, hp+"type"))
			check("version nibble", uint64(PacketVersion(pkt)), v.Num(t, hp+"version"))
			check("type nibble", uint64(PacketType(pkt)), v.Num(t, hp+"type"))
			check("flags", h.Flags, v.U16(t, hp+"flags"))
			check("seq", h.Seq, v.U64(t, hp+"seq"))
			check("seq (json.Number)", h.Seq, v.Num(t, hp+"seq"))
			check("ack", h.Ack, v.U64(t, hp+"ack"))
			check("ack (json.Number)", h.Ack, v.Num(t, hp+"ack"))
			check("sid", fmt.Sprintf("%x", h.SID), fmt.Sprintf("%x", v.Hex(t, hp+"sid")))
			check("timestamp", h.Timestamp, v.U64(t, hp+"timestamp"))
			check("timestamp (json.Number)", h.Timestamp, v.Num(t, hp+"timestamp"))
			check("length", uint64(h.Length), v.Num(t, hp+"length"))
			check("PayloadLen", uint64(PayloadLen(pkt)), v.Num(t, hp+"length"))
			check("packet size", len(pkt), HeaderLen+int(h.Length))
			check("channel", uint64(h.Channel), v.Num(t, hp+"channel"))
			check("hmac", fmt.Sprintf("%x", h.HMAC), fmt.Sprintf("%x", v.Hex(t, hp+"hmac")))
			check("Res1", h.Res1, uint8(0))
			check("Res47", h.Res47, uint8(0))
			var re [HeaderLen]byte
			PutHeader(re[:], &h)
			if !bytes.Equal(re[:], pkt[:HeaderLen]) {
				t.Errorf("PutHeader(ParseHeader(pkt)) != pkt[:80]\n got  %x\n want %x", re[:], pkt[:HeaderLen])
			}
		})
	}
}
