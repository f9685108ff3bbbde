package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

func TestJournalCheckpointRoundTrip(t *testing.T) {
	c := JournalCheckpoint{Seq: 0x0102030405060708}
	for i := range c.Head {
		c.Head[i] = byte(0xa0 + i)
	}
	b := AppendJournalCheckpoint(nil, &c)
	if len(b) != JournalCheckpointLen || JournalCheckpointLen != 44 {
		t.Fatalf("length %d", len(b))
	}
	if want := []byte{1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xa0}; !bytes.Equal(b[:13], want) {
		t.Fatalf("layout % x, want % x", b[:13], want)
	}
	got, err := ParseJournalCheckpoint(b)
	if err != nil || got != c {
		t.Fatalf("ParseJournalCheckpoint = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		b    []byte
		want error
	}{
		{nil, ErrLength},
		{b[:43], ErrLength},
		{append(append([]byte{}, b...), 0), ErrLength},
		{append([]byte{2}, b[1:]...), ErrMalformed},
		{append([]byte{1, 0, 1}, b[3:]...), ErrReserved},
	} {
		if _, err := ParseJournalCheckpoint(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("ParseJournalCheckpoint(% x) = %v, want %v", tc.b, err, tc.want)
		}
	}
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() { buf = AppendJournalCheckpoint(buf[:0], &c) }); a != 0 {
		t.Errorf("AppendJournalCheckpoint allocates %v times", a)
	}
}

func FuzzParseJournal(f *testing.F) {
	f.Add(AppendJournalCheckpoint(nil, &JournalCheckpoint{Seq: 7}))
	f.Add([]byte{1, 0, 0})
	f.Add(garbage(JournalCheckpointLen, 31))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseJournalCheckpoint(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if got := AppendJournalCheckpoint(nil, &c); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x gives %x", b, got)
		}
	})
}

func TestJournalHashesVector(t *testing.T) {
	v := loadSessionVectors(t)
	want := JournalHashes{Start: true, First: 5, Prev: [32]byte(v.Hex(t, "journal.hashes_prev"))}
	for i := range 3 {
		want.Hashes = append(want.Hashes, [32]byte(v.Hex(t, "journal.hashes."+strconv.Itoa(i))))
	}
	pt := v.Hex(t, "journal.hashes_plaintext")
	if got := AppendJournalHashes(nil, &want); !bytes.Equal(got, pt) {
		t.Fatalf("AppendJournalHashes = %x\nwant %x", got, pt)
	}
	got, err := ParseJournalHashes(pt)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseJournalHashes = %+v, %v", got, err)
	}
	ck := JournalCheckpoint{Seq: 7, Head: want.Hashes[2]}
	if b := AppendJournalCheckpoint(nil, &ck); !bytes.Equal(b, v.Hex(t, "journal.checkpoint_plaintext")) {
		t.Fatalf("AppendJournalCheckpoint = %x", b)
	}

	full := JournalHashes{First: 1, Hashes: make([][32]byte, JournalMaxHashes)}
	if b := AppendJournalHashes(nil, &full); len(b) != 8172 || len(b) > MaxFragMessage {
		t.Fatalf("a full HASHES is %d bytes", len(b))
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrLength},
		{"header only", pt[:JournalHashesHeaderLen], ErrLength},
		{"one byte short", pt[:len(pt)-1], ErrLength},
		{"one byte long", append(append([]byte{}, pt...), 0), ErrLength},
		{"checkpoint kind", append([]byte{1}, pt[1:]...), ErrMalformed},
		{"unknown flag", append([]byte{2, 3}, pt[2:]...), ErrReserved},
		{"count 0", append([]byte{2, 1, 0, 0}, pt[4:JournalHashesHeaderLen]...), ErrMalformed},
		{"count 255", append([]byte{2, 1, 0, 255}, pt[4:]...), ErrMalformed},
		{"first 0", append([]byte{2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0}, pt[12:]...), ErrMalformed},
		{"past 2^64", append([]byte{2, 1, 0, 3, 255, 255, 255, 255, 255, 255, 255, 255}, pt[12:]...), ErrMalformed},
	} {
		if _, err := ParseJournalHashes(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseJournalHashes = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParseJournalHashes(f *testing.F) {
	f.Add(AppendJournalHashes(nil, &JournalHashes{First: 1, Hashes: make([][32]byte, 2)}))
	f.Add([]byte{2, 1, 0, 1})
	f.Add(garbage(JournalHashesHeaderLen+32, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseJournalHashes(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if got := AppendJournalHashes(nil, &h); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x gives %x", b, got)
		}
	})
}
