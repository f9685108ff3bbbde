package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRekeyRoundTrip(t *testing.T) {
	r := Rekey{Kind: RekeyAck, Epoch: 0x01020304}
	for i := range r.E {
		r.E[i] = byte(i)
	}
	b := AppendRekey(nil, &r)
	if len(b) != RekeyLen || b[0] != 2 || !bytes.Equal(b[4:8], []byte{1, 2, 3, 4}) || b[8] != 0 || b[39] != 31 {
		t.Fatalf("layout % x", b)
	}
	got, err := ParseRekey(b)
	if err != nil || got != r {
		t.Fatalf("ParseRekey = %+v, %v", got, err)
	}
}

func TestRekeyRejects(t *testing.T) {
	good := AppendRekey(nil, &Rekey{Kind: RekeyInit, Epoch: 1})
	for _, c := range []struct {
		name string
		p    []byte
		want error
	}{
		{"short", good[:39], ErrLength},
		{"long", append(append([]byte{}, good...), 0), ErrLength},
		{"kind 0", append([]byte{0}, good[1:]...), ErrMalformed},
		{"kind 3", append([]byte{3}, good[1:]...), ErrMalformed},
		{"reserved", append([]byte{1, 0, 1}, good[3:]...), ErrReserved},
	} {
		if _, err := ParseRekey(c.p); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzParseRekey(f *testing.F) {
	f.Add(AppendRekey(nil, &Rekey{Kind: RekeyInit, Epoch: 1}))
	f.Add(AppendRekey(nil, &Rekey{Kind: RekeyAck, Epoch: 0xffffffff, E: [32]byte{9}}))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParseRekey(p)
		oracle := len(p) == RekeyLen && (p[0] == 1 || p[0] == 2) && p[1] == 0 && p[2] == 0 && p[3] == 0
		if (err == nil) != oracle {
			t.Fatalf("ParseRekey(% x) = %v; oracle says valid=%v", p, err, oracle)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if !bytes.Equal(AppendRekey(nil, &r), p) {
			t.Fatalf("re-encoding differs")
		}
	})
}
