package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestNoticeLayout(t *testing.T) {
	for _, c := range []struct {
		n    Notice
		want []byte
	}{
		{Notice{Code: CodeOverload, Pause: 1500}, []byte{0x09, 0, 0x05, 0xdc, 0, 0, 0, 0}},
		{Notice{Code: CodeOverload}, []byte{0x09, 0, 0, 0, 0, 0, 0, 0}},
		{Notice{Code: CodeOverload, Pause: 0xffff, MsgID: 7}, []byte{0x09, 0, 0xff, 0xff, 0, 0, 0, 0}}, // MsgID unused: sent 0
		{Notice{Code: CodeFragTimeout, MsgID: 0x01020304}, []byte{0x04, 0, 0, 0, 1, 2, 3, 4}},
		{Notice{Code: CodeFragTimeout, Pause: 9, MsgID: 5}, []byte{0x04, 0, 0, 0, 0, 0, 0, 5}}, // Pause unused: sent 0
		{Notice{Code: 0x42, Pause: 9, MsgID: 5}, []byte{0x42, 0, 0, 0, 0, 0, 0, 0}},            // unknown code: fields not sent
	} {
		b := AppendNotice([]byte{0xee}, &c.n)
		if !bytes.Equal(b[1:], c.want) || b[0] != 0xee {
			t.Errorf("AppendNotice(%+v) = %x, want ee%x", c.n, b, c.want)
		}
	}
}

func TestNoticeRoundTrip(t *testing.T) {
	for _, n := range []Notice{
		{Code: CodeOverload}, {Code: CodeOverload, Pause: 1}, {Code: CodeOverload, Pause: 65535},
		{Code: CodeFragTimeout}, {Code: CodeFragTimeout, MsgID: 0xffffffff}, {Code: CodeNoError}, {Code: 0x80}, {Code: 0xff},
	} {
		got, err := ParseNotice(AppendNotice(nil, &n))
		if err != nil || got != n {
			t.Errorf("round trip %+v: %+v, %v", n, got, err)
		}
	}
}

func TestParseNoticeLength(t *testing.T) {
	long := append(AppendNotice(nil, &Notice{Code: CodeOverload, Pause: 10}), 0)
	for n := 0; n <= len(long); n++ {
		_, err := ParseNotice(long[:n])
		if n == NoticeLen {
			if err != nil {
				t.Errorf("%d bytes: %v", n, err)
			}
		} else if !errors.Is(err, ErrLength) {
			t.Errorf("%d bytes: error %v, want ErrLength", n, err)
		}
	}
	if _, err := ParseNotice(make([]byte, TelemetryLen)); !errors.Is(err, ErrLength) {
		t.Errorf("telemetry-sized plaintext: %v", err)
	}
}

// TestParseNoticeIgnoresUnused: byte 1 is reserved, and the field a code
// does not use is ignored, whatever it holds.
func TestParseNoticeIgnoresUnused(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want Notice
	}{
		{[]byte{0x09, 0xff, 0x00, 0x10, 0xff, 0xff, 0xff, 0xff}, Notice{Code: CodeOverload, Pause: 16}},
		{[]byte{0x04, 0x80, 0xff, 0xff, 0x00, 0x00, 0x00, 0x07}, Notice{Code: CodeFragTimeout, MsgID: 7}},
		{[]byte{0x33, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, Notice{Code: 0x33}},
	} {
		for _, m := range flipMasks {
			b := bytes.Clone(c.b)
			b[1] ^= m
			got, err := ParseNotice(b)
			if err != nil || got != c.want {
				t.Errorf("ParseNotice(%x) = %+v, %v; want %+v", b, got, err, c.want)
			}
		}
	}
}

func TestOverloadPause(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint16
	}{
		{-time.Second, 0}, {0, 0}, {1, 1}, {time.Millisecond, 1}, {time.Millisecond + 1, 2},
		{1500 * time.Millisecond, 1500}, {MaxPause - 1, 65535}, {MaxPause, 65535}, {time.Hour, 65535},
	} {
		if got := OverloadPause(c.d); got != c.want {
			t.Errorf("OverloadPause(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestAppendNoticeNoAlloc(t *testing.T) {
	n := Notice{Code: CodeOverload, Pause: 100}
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() { buf = AppendNotice(buf[:0], &n) }); a != 0 {
		t.Errorf("AppendNotice allocates %v times", a)
	}
}

func FuzzParseNotice(f *testing.F) {
	f.Add(AppendNotice(nil, &Notice{Code: CodeOverload, Pause: 1500}))
	f.Add(AppendNotice(nil, &Notice{Code: CodeFragTimeout, MsgID: 5}))
	f.Add([]byte{0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x09, 0, 0, 0, 0, 0, 0})
	f.Add(garbage(TelemetryLen, 22))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNotice(b)
		if (err == nil) != (len(b) == NoticeLen) {
			t.Fatalf("ParseNotice(%x) error = %v", b, err)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		// Canonical form: byte 1 zero; bytes 2-3 only for OVERLOAD, 4-7
		// only for FRAG_TIMEOUT.
		canon := make([]byte, NoticeLen)
		canon[0] = b[0]
		switch Code(b[0]) {
		case CodeOverload:
			copy(canon[2:4], b[2:4])
		case CodeFragTimeout:
			copy(canon[4:8], b[4:8])
		}
		re := AppendNotice(nil, &n)
		if !bytes.Equal(re, canon) {
			t.Fatalf("AppendNotice(ParseNotice(%x)) = %x, want %x", b, re, canon)
		}
		if n2, err := ParseNotice(re); err != nil || n2 != n {
			t.Fatalf("second round trip: %+v, %v", n2, err)
		}
	})
}
