package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestDiscoverProbeLayout(t *testing.T) {
	for _, size := range []uint16{ProbeMinSize, ProbeMinSize + 1, MinMTU, 1280, 1400, 1500, 9000, 65535} {
		d := Discover{Kind: DiscoverProbe, Size: size, ID: 0xa1b2c3d4}
		b := AppendDiscover([]byte{0xee}, &d)
		if b[0] != 0xee {
			t.Fatalf("prefix lost")
		}
		b = b[1:]
		if HeaderLen+len(b)+TagLen != int(size) {
			t.Errorf("size %d: plaintext %d bytes makes a %d-byte packet", size, len(b), HeaderLen+len(b)+TagLen)
		}
		if want := []byte{1, 0, byte(size >> 8), byte(size), 0xa1, 0xb2, 0xc3, 0xd4}; !bytes.Equal(b[:8], want) {
			t.Errorf("size %d: fixed part %x, want %x", size, b[:8], want)
		}
		if !allZero(b[8:]) {
			t.Errorf("size %d: padding not zero", size)
		}
		got, err := ParseDiscover(b)
		if err != nil || got != d {
			t.Errorf("size %d: ParseDiscover = %+v, %v", size, got, err)
		}
	}
}

func TestDiscoverAckLayout(t *testing.T) {
	d := Discover{Kind: DiscoverProbeAck, Size: 1400, ID: 7}
	b := AppendDiscover(nil, &d)
	if want := []byte{2, 0, 0x05, 0x78, 0, 0, 0, 7}; !bytes.Equal(b, want) {
		t.Fatalf("ack = %x, want %x", b, want)
	}
	if got, err := ParseDiscover(b); err != nil || got != d {
		t.Fatalf("ParseDiscover = %+v, %v", got, err)
	}
}

func TestParseDiscoverLengths(t *testing.T) {
	probe := AppendDiscover(nil, &Discover{Kind: DiscoverProbe, Size: 600, ID: 1})
	probe = append(probe, 0) // one byte of slack to cut from
	for n := 0; n <= len(probe); n++ {
		_, err := ParseDiscover(probe[:n])
		switch {
		case n == ProbePlaintextLen(600):
			if err != nil {
				t.Errorf("probe of %d bytes: %v", n, err)
			}
		case !errors.Is(err, ErrLength):
			t.Errorf("probe of %d bytes: error %v, want ErrLength", n, err)
		}
	}
	ack := append(AppendDiscover(nil, &Discover{Kind: DiscoverProbeAck, Size: 600, ID: 1}), make([]byte, 600)...)
	for n := 0; n <= len(ack); n++ {
		_, err := ParseDiscover(ack[:n])
		switch {
		case n == ProbeAckLen:
			if err != nil {
				t.Errorf("ack of %d bytes: %v", n, err)
			}
		case !errors.Is(err, ErrLength):
			t.Errorf("ack of %d bytes: error %v, want ErrLength", n, err)
		}
	}
	// A probe whose size field disagrees with its length, either way.
	p := AppendDiscover(nil, &Discover{Kind: DiscoverProbe, Size: 600})
	for _, size := range []uint16{599, 601, 104, 65535} {
		q := bytes.Clone(p)
		binary.BigEndian.PutUint16(q[2:4], size)
		if _, err := ParseDiscover(q); !errors.Is(err, ErrLength) {
			t.Errorf("size field %d on a 600-byte probe: %v", size, err)
		}
	}
}

func TestParseDiscoverMalformed(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"kind 0", []byte{0, 0, 0x02, 0, 0, 0, 0, 1}},
		{"kind 4", []byte{4, 0, 0x02, 0, 0, 0, 0, 1}},
		{"kind 255", []byte{255}},
		{"ack size 0", []byte{2, 0, 0, 0, 0, 0, 0, 1}},
		{"ack size 103", []byte{2, 0, 0, 103, 0, 0, 0, 1}},
		{"probe size 103", []byte{1, 0, 0, 103, 0, 0, 0, 1}},
		{"probe size 96", []byte{1, 0, 0, 96, 0, 0, 0, 1}},
	} {
		if _, err := ParseDiscover(c.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", c.name, err)
		}
	}
	// The smallest probe and ack are valid.
	if _, err := ParseDiscover([]byte{2, 0, 0, 104, 0, 0, 0, 1}); err != nil {
		t.Errorf("ack of size 104: %v", err)
	}
	if _, err := ParseDiscover([]byte{1, 0, 0, 104, 0, 0, 0, 1}); err != nil {
		t.Errorf("probe of size 104: %v", err)
	}
}

// TestParseDiscoverPeerExchange: kind 3 is reserved for the peer exchange;
// a v1 receiver accepts it whatever follows, to ignore it.
func TestParseDiscoverPeerExchange(t *testing.T) {
	for _, b := range [][]byte{{3}, {3, 0xff}, append([]byte{3}, garbage(4000, 23)...)} {
		d, err := ParseDiscover(b)
		if err != nil || d != (Discover{Kind: DiscoverPeerExchange}) {
			t.Errorf("peer exchange of %d bytes: %+v, %v", len(b), d, err)
		}
	}
	if _, err := ParseDiscover(nil); !errors.Is(err, ErrLength) {
		t.Errorf("empty: %v", err)
	}
}

func TestParseDiscoverIgnoresReserved(t *testing.T) {
	want := Discover{Kind: DiscoverProbe, Size: 512, ID: 99}
	b := AppendDiscover(nil, &want)
	for _, i := range []int{1, 8, 100, len(b) - 1} {
		for _, m := range flipMasks {
			q := bytes.Clone(b)
			q[i] ^= m
			if got, err := ParseDiscover(q); err != nil || got != want {
				t.Errorf("byte %d ^ %#02x: %+v, %v", i, m, got, err)
			}
		}
	}
	ack := AppendDiscover(nil, &Discover{Kind: DiscoverProbeAck, Size: 512, ID: 99})
	ack[1] = 0xff
	if got, err := ParseDiscover(ack); err != nil || got != (Discover{Kind: DiscoverProbeAck, Size: 512, ID: 99}) {
		t.Errorf("ack with byte 1 set: %+v, %v", got, err)
	}
}

func TestAppendDiscoverPanics(t *testing.T) {
	for _, d := range []Discover{{Kind: DiscoverProbe, Size: ProbeMinSize - 1}, {Kind: DiscoverProbe}, {Kind: 0, Size: 512},
		{Kind: DiscoverPeerExchange, Size: 512}, {Kind: 9, Size: 512}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppendDiscover(%+v) did not panic", d)
				}
			}()
			AppendDiscover(nil, &d)
		}()
	}
	// An ack may name any size the parser accepts; Append does not judge it.
	if b := AppendDiscover(nil, &Discover{Kind: DiscoverProbeAck, Size: 3}); len(b) != ProbeAckLen {
		t.Errorf("ack of size 3: %x", b)
	}
}

func TestAppendDiscoverNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 2000)
	probe := Discover{Kind: DiscoverProbe, Size: 1400, ID: 3}
	if n := testing.AllocsPerRun(100, func() { buf = AppendDiscover(buf[:0], &probe) }); n != 0 {
		t.Errorf("AppendDiscover(probe) allocates %v times", n)
	}
	ack := Discover{Kind: DiscoverProbeAck, Size: 1400, ID: 3}
	if n := testing.AllocsPerRun(100, func() { buf = AppendDiscover(buf[:0], &ack) }); n != 0 {
		t.Errorf("AppendDiscover(ack) allocates %v times", n)
	}
	// Padding is zero even when the caller's buffer held garbage.
	dirty := bytes.Repeat([]byte{0xaa}, 2000)
	b := AppendDiscover(dirty[:0], &probe)
	if !allZero(b[8:]) {
		t.Error("padding copied stale bytes from the caller's buffer")
	}
}

func FuzzParseDiscover(f *testing.F) {
	f.Add(AppendDiscover(nil, &Discover{Kind: DiscoverProbe, Size: 512, ID: 1}))
	f.Add(AppendDiscover(nil, &Discover{Kind: DiscoverProbe, Size: ProbeMinSize, ID: 0xffffffff}))
	f.Add(AppendDiscover(nil, &Discover{Kind: DiscoverProbeAck, Size: 1400, ID: 2}))
	f.Add([]byte{3, 1, 2, 3})
	f.Add([]byte{1, 0, 0, 104, 0, 0, 0})
	f.Add([]byte{})
	f.Add(garbage(300, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDiscover(b)
		want := false
		if len(b) > 0 {
			switch b[0] {
			case 3:
				want = true
			case 1, 2:
				if len(b) >= 8 {
					size := int(b[2])<<8 | int(b[3])
					want = size >= 104 && (b[0] == 1 && len(b) == size-96 || b[0] == 2 && len(b) == 8)
				}
			}
		}
		if (err == nil) != want {
			t.Fatalf("ParseDiscover(%x) error = %v, oracle accepts = %v", b, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if b[0] == DiscoverPeerExchange {
			if d != (Discover{Kind: DiscoverPeerExchange}) {
				t.Fatalf("peer exchange decoded as %+v", d)
			}
			return
		}
		canon := bytes.Clone(b)
		canon[1] = 0
		clear(canon[8:])
		if re := AppendDiscover(nil, &d); !bytes.Equal(re, canon) {
			t.Fatalf("AppendDiscover(ParseDiscover(b))\n got  %x\n want %x", re, canon)
		}
	})
}
