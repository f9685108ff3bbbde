package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

// sampleTelemetry has a distinct byte pattern in every field, so a field
// written at a wrong offset or width shows.
func sampleTelemetry() Telemetry {
	return Telemetry{
		RTTNs: 0x0101010101010101, JitterNs: 0x0202020202020202, LossPPM: 0x03030303, ThroughputBps: 0x04040404,
		MTU: 0x0505, QueueDepth: 0x0606, UptimeNs: 0x0707070707070707, RekeyCount: 0x08080808,
		ConfigVersion: 0x09090909, StateDigest: 0x0a0a0a0a, JournalHead: 0x0b0b0b0b0b0b0b0b,
		EchoSeq: 0x0c0c0c0c0c0c0c0c, EchoTimestamp: 0x0d0d0d0d0d0d0d0d, EchoDelayNs: 0x0e0e0e0e0e0e0e0e,
		RxPackets: 0x0f0f0f0f0f0f0f0f, RxBytes: 0x1010101010101010,
	}
}

// TestTelemetryLayout pins every field's offset and width (PROTOCOL.md
// §7.9.1): field k (1-based) fills its bytes with k.
func TestTelemetryLayout(t *testing.T) {
	tel := sampleTelemetry()
	b := AppendTelemetry(nil, &tel)
	if len(b) != TelemetryLen {
		t.Fatalf("%d bytes", len(b))
	}
	widths := []int{8, 8, 4, 4, 2, 2, 8, 4, 4, 4, 8, 8, 8, 8, 8, 8}
	off := 0
	for k, w := range widths {
		if want := bytes.Repeat([]byte{byte(k + 1)}, w); !bytes.Equal(b[off:off+w], want) {
			t.Errorf("field %d at %d: %x, want %x", k+1, off, b[off:off+w], want)
		}
		off += w
	}
	if off != TelemetryLen {
		t.Fatalf("widths sum to %d", off)
	}
	// The draft §8 block is the first 56 bytes.
	if binary.BigEndian.Uint32(b[44:48]) != tel.StateDigest || binary.BigEndian.Uint64(b[48:56]) != tel.JournalHead {
		t.Errorf("state_digest/journal_head not at 44/48")
	}
}

func TestTelemetryRoundTrip(t *testing.T) {
	for _, tel := range []Telemetry{{}, sampleTelemetry(), {
		RTTNs: math.MaxUint64, JitterNs: 1, LossPPM: 1_000_000, ThroughputBps: math.MaxUint32, MTU: 65535,
		QueueDepth: 65535, UptimeNs: 1, RekeyCount: math.MaxUint32, ConfigVersion: 7, StateDigest: 0xdeadbeef,
		JournalHead: math.MaxUint64, EchoSeq: 1 << 62, EchoTimestamp: math.MaxUint64, EchoDelayNs: 0,
		RxPackets: math.MaxUint64, RxBytes: 1,
	}} {
		b := AppendTelemetry([]byte("pre"), &tel)
		if string(b[:3]) != "pre" || len(b) != 3+TelemetryLen {
			t.Fatalf("prefix lost or wrong length: %d", len(b))
		}
		got, err := ParseTelemetry(b[3:])
		if err != nil || got != tel {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, tel)
		}
	}
}

func TestParseTelemetryLength(t *testing.T) {
	good := AppendTelemetry(nil, &Telemetry{RTTNs: 1})
	long := append(bytes.Clone(good), 0)
	for n := 0; n <= len(long); n++ {
		_, err := ParseTelemetry(long[:n])
		if n == TelemetryLen {
			if err != nil {
				t.Errorf("%d bytes: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrLength) {
			t.Errorf("%d bytes: error %v, want ErrLength", n, err)
		}
	}
	// A notice-sized plaintext is not telemetry.
	if _, err := ParseTelemetry(make([]byte, NoticeLen)); !errors.Is(err, ErrLength) {
		t.Errorf("notice-sized plaintext: %v", err)
	}
}

func TestAppendTelemetryNoAlloc(t *testing.T) {
	tel := sampleTelemetry()
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendTelemetry(buf[:0], &tel) }); n != 0 {
		t.Errorf("AppendTelemetry allocates %v times", n)
	}
	// StateDigest itself may allocate its 78-byte input (hash/crc32
	// dispatches through a function value); it runs once per HEARTBEAT.
	d := DigestState{Role: RoleServer, Seq: 9}
	if n := testing.AllocsPerRun(100, func() { buf = AppendStateDigestInput(buf[:0], &d) }); n != 0 {
		t.Errorf("AppendStateDigestInput allocates %v times", n)
	}
}

func TestRTTSample(t *testing.T) {
	for _, c := range []struct {
		name           string
		seq, ts, delay uint64
		now            uint64
		want           uint64
		ok             bool
	}{
		{"plain", 5, 1000, 100, 1600, 500, true},
		{"zero delay", 5, 1000, 0, 1001, 1, true},
		{"no echo", 0, 1000, 100, 1600, 0, false},
		{"delay eats it", 5, 1000, 600, 1600, 0, false},
		{"delay exceeds", 5, 1000, 601, 1600, 0, false},
		{"now before echo", 5, 1000, 0, 999, 0, false},
		{"now at echo", 5, 1000, 0, 1000, 0, false},
		{"huge values", 5, math.MaxUint64 - 10, 3, math.MaxUint64, 7, true},
		{"huge delay", 5, 0, math.MaxUint64, math.MaxUint64, 0, false},
	} {
		tel := Telemetry{EchoSeq: c.seq, EchoTimestamp: c.ts, EchoDelayNs: c.delay}
		got, ok := tel.RTTSample(c.now)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: RTTSample = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestDigestStateBits(t *testing.T) {
	var d DigestState
	for ch := 0; ch < 256; ch++ {
		d.SetActive(uint8(ch), true)
		want := [32]byte{}
		want[ch/8] = 0x80 >> (ch % 8)
		if d.TxActive != want || !d.Active(uint8(ch)) {
			t.Fatalf("channel %d: bitmap %x", ch, d.TxActive)
		}
		for other := 0; other < 256; other++ {
			if other != ch && d.Active(uint8(other)) {
				t.Fatalf("channel %d set, %d reads active", ch, other)
			}
		}
		d.SetActive(uint8(ch), false)
		if d.TxActive != ([32]byte{}) || d.Active(uint8(ch)) {
			t.Fatalf("channel %d: not cleared", ch)
		}
	}
	d.SetActive(0, true)
	d.SetActive(255, true)
	d.SetActive(0, true) // idempotent
	if d.TxActive[0] != 0x80 || d.TxActive[31] != 0x01 {
		t.Errorf("bitmap %x", d.TxActive)
	}
}

// TestStateDigestInput pins the serialization and shows that every field,
// every bitmap bit and the format byte change the digest.
func TestStateDigestInput(t *testing.T) {
	d := DigestState{Role: RoleClient, SID: fill16(0x5a), Epoch: 0x01020304, Seq: 0x1112131415161718,
		EpochFirstSeq: 0x2122232425262728, DataBytesSent: 0x3132333435363738}
	d.SetActive(9, true)
	in := AppendStateDigestInput(nil, &d)
	want := []byte{1, 1}
	want = append(want, d.SID[:]...)
	want = append(want, 1, 2, 3, 4)
	want = append(want, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18)
	want = append(want, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28)
	want = append(want, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38)
	bm := make([]byte, 32)
	bm[1] = 0x40
	want = append(want, bm...)
	if !bytes.Equal(in, want) || len(in) != StateDigestInputLen {
		t.Fatalf("input\n got  %x\n want %x", in, want)
	}
	if got := StateDigest(&d); got != crc32.ChecksumIEEE(want) {
		t.Fatalf("StateDigest = %08x, want CRC-32/IEEE %08x", got, crc32.ChecksumIEEE(want))
	}
	base := StateDigest(&d)
	mutations := map[string]func(*DigestState){
		"role":      func(x *DigestState) { x.Role = RoleServer },
		"sid":       func(x *DigestState) { x.SID[15] ^= 1 },
		"epoch":     func(x *DigestState) { x.Epoch++ },
		"seq":       func(x *DigestState) { x.Seq++ },
		"first seq": func(x *DigestState) { x.EpochFirstSeq-- },
		"data":      func(x *DigestState) { x.DataBytesSent += 1 << 40 },
		"channel":   func(x *DigestState) { x.SetActive(200, true) },
		"clear":     func(x *DigestState) { x.SetActive(9, false) },
	}
	for name, m := range mutations {
		x := d
		m(&x)
		if StateDigest(&x) == base {
			t.Errorf("%s does not change the digest", name)
		}
	}
	// The format byte is part of the input: the same bytes with another
	// format give another CRC.
	other := bytes.Clone(want)
	other[0] = 2
	if crc32.ChecksumIEEE(other) == base {
		t.Error("format byte not covered")
	}
}

func FuzzParseTelemetry(f *testing.F) {
	tel := sampleTelemetry()
	f.Add(AppendTelemetry(nil, &tel))
	f.Add(make([]byte, TelemetryLen))
	f.Add(make([]byte, TelemetryLen-1))
	f.Add(make([]byte, NoticeLen))
	f.Add(garbage(TelemetryLen+1, 21))
	f.Fuzz(func(t *testing.T, b []byte) {
		tel, err := ParseTelemetry(b)
		if (err == nil) != (len(b) == TelemetryLen) {
			t.Fatalf("ParseTelemetry(%d bytes) error = %v", len(b), err)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if re := AppendTelemetry(nil, &tel); !bytes.Equal(re, b) {
			t.Fatalf("AppendTelemetry(ParseTelemetry(b)) != b\n got  %x\n want %x", re, b)
		}
		// RTTSample never panics and never returns a sample it cannot justify.
		now := binary.BigEndian.Uint64(b[0:8])
		if r, ok := tel.RTTSample(now); ok && (tel.EchoSeq == 0 || r == 0 || r+tel.EchoDelayNs+tel.EchoTimestamp != now) {
			t.Fatalf("RTTSample(%d) = %d on %+v", now, r, tel)
		}
	})
}
