package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func collectAck(t *testing.T, p []byte) ([]WindowUpdate, error) {
	t.Helper()
	var got []WindowUpdate
	err := ParseAck(p, func(w WindowUpdate) { got = append(got, w) })
	return got, err
}

func TestParseAckEmpty(t *testing.T) {
	for _, p := range [][]byte{nil, {}} {
		got, err := collectAck(t, p)
		if err != nil || len(got) != 0 {
			t.Errorf("ParseAck(%v) = %v, %v", p, got, err)
		}
	}
	// A pure acknowledgment never calls fn, so a nil callback is fine.
	if err := ParseAck(nil, nil); err != nil {
		t.Errorf("ParseAck(nil, nil) = %v", err)
	}
}

func TestAppendWindowUpdateLayout(t *testing.T) {
	b := AppendWindowUpdate([]byte{0xaa}, WindowUpdate{Channel: 0x12, Gen: 0x0a0b, Credit: 0x01020304})
	if want := []byte{0xaa, 0x12, 0, 0x0a, 0x0b, 1, 2, 3, 4}; !bytes.Equal(b, want) {
		t.Fatalf("AppendWindowUpdate = %x, want %x", b, want)
	}
}

func TestParseAckEntries(t *testing.T) {
	ws := []WindowUpdate{{0, 0, 0}, {1, 1, 1}, {7, 300, 65536}, {255, math.MaxUint16, math.MaxUint32}, {0x80, 2, 0x80000000}}
	var p []byte
	for _, w := range ws {
		p = AppendWindowUpdate(p, w)
	}
	got, err := collectAck(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ws) {
		t.Fatalf("got %d entries, want %d", len(got), len(ws))
	}
	for i := range ws {
		if got[i] != ws[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], ws[i])
		}
	}
}

func TestParseAckMax(t *testing.T) {
	var p []byte
	for i := 0; i < MaxWindowUpdates; i++ {
		p = AppendWindowUpdate(p, WindowUpdate{Channel: uint8(i), Credit: uint32(i) * 1000})
	}
	got, err := collectAck(t, p)
	if err != nil || len(got) != MaxWindowUpdates {
		t.Fatalf("%d entries: %d decoded, %v", MaxWindowUpdates, len(got), err)
	}
	for i, w := range got {
		if w.Channel != uint8(i) || w.Credit != uint32(i)*1000 {
			t.Fatalf("entry %d = %+v", i, w)
		}
	}
	for _, n := range []int{MaxWindowUpdates + 1, 2 * MaxWindowUpdates} {
		q := bytes.Repeat(p[:WindowUpdateLen], n)
		got, err := collectAck(t, q)
		if !errors.Is(err, ErrLength) {
			t.Errorf("%d entries: error = %v, want ErrLength", n, err)
		}
		if len(got) != 0 {
			t.Errorf("%d entries: fn called %d times before the error", n, len(got))
		}
	}
}

func TestParseAckBadLength(t *testing.T) {
	p := bytes.Repeat([]byte{1, 0, 0, 0, 0, 0, 0, 9}, 3)
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 9, 15, 17, 23} {
		got, err := collectAck(t, p[:n])
		if !errors.Is(err, ErrLength) {
			t.Errorf("%d bytes: error = %v, want ErrLength", n, err)
		}
		if len(got) != 0 {
			t.Errorf("%d bytes: fn called %d times before the error", n, len(got))
		}
	}
	if _, err := collectAck(t, make([]byte, MaxWindowUpdates*WindowUpdateLen+1)); !errors.Is(err, ErrLength) {
		t.Errorf("2049 bytes: error = %v, want ErrLength", err)
	}
}

func TestParseAckIgnoresReserved(t *testing.T) {
	p := AppendWindowUpdate(nil, WindowUpdate{Channel: 3, Credit: 0xdeadbeef})
	p = AppendWindowUpdate(p, WindowUpdate{Channel: 4, Credit: 1})
	for _, off := range []int{0, WindowUpdateLen} {
		p[off+1] = 0xff // the one reserved byte
	}
	got, err := collectAck(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (WindowUpdate{3, 0, 0xdeadbeef}) || got[1] != (WindowUpdate{4, 0, 1}) {
		t.Errorf("got %+v", got)
	}
}
