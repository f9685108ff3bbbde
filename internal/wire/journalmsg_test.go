package wire

import (
	"bytes"
	"errors"
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
