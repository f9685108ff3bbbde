package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

// The worked example of docs/JOURNAL.md; the test below checks that the
// document shows exactly these values.
const (
	exampleGenesisHex = "3b08e1fd8ebe3a6a277c9677557164fc3ab31d71cd327257f3c7a5594d5e9b08"
	exampleRecordHex  = "000000b10819ba0d" +
		"0000000000000001" + "1886caf21c963206" + "1886caf21c963206" + "0000000000000001" +
		"0000000000000003" + "0000000000000004" + "0005" + "003d" +
		"076f7574636f6d65" + "0009636f6e6669726d6564" +
		"0773657373696f6e" + "0020" + "3030313132323333343435353636373738383939616162626363646465656666" +
		exampleGenesisHex +
		"ea2cc6386f9d5a0e270ec6da56c426dc63ea26f917e0641403916a4f42561dd3" +
		"b14e6350"
	exampleHashHex = "ea2cc6386f9d5a0e270ec6da56c426dc63ea26f917e0641403916a4f42561dd3"
	exampleTrunc   = "0xea2cc6386f9d5a0e"
)

func TestWorkedExample(t *testing.T) {
	if hex.EncodeToString(Genesis[:]) != exampleGenesisHex {
		t.Fatalf("Genesis = %x", Genesis)
	}
	e := exampleEntry()
	rec, err := appendRecord(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(rec); got != exampleRecordHex {
		t.Fatalf("record\n got %s\nwant %s", got, exampleRecordHex)
	}
	if hex.EncodeToString(e.Hash[:]) != exampleHashHex {
		t.Fatalf("hash %x", e.Hash)
	}
	if got := Truncate(e.Hash); got != 0xea2cc6386f9d5a0e {
		t.Fatalf("Truncate = %#x", got)
	}
	// Decoding gives the entry back.
	r, err := NewReader(bytes.NewReader(append([]byte(Magic), rec...)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || !got.Time.Equal(e.Time) || got.Type != TypeConfig || got.Detail["outcome"] != "confirmed" ||
		got.Session() != "00112233445566778899aabbccddeeff" || got.ConfigBefore != 3 || got.ConfigAfter != 4 || got.Hash != e.Hash {
		t.Fatalf("decoded %+v", got)
	}

	doc, err := os.ReadFile("../../docs/JOURNAL.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, want := range []string{exampleGenesisHex, exampleRecordHex, exampleHashHex, exampleTrunc, "1767323045000000006"} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/JOURNAL.md does not show %s", want)
		}
	}
}

func TestTypeNames(t *testing.T) {
	for _, ty := range Types() {
		back, err := ParseType(ty.String())
		if err != nil || back != ty {
			t.Errorf("%v: ParseType = %v, %v", ty, back, err)
		}
	}
	if Type(999).String() != "type(999)" {
		t.Errorf("unknown type prints %q", Type(999).String())
	}
	if ty, err := ParseType("type(999)"); err != nil || ty != 999 {
		t.Errorf("ParseType(type(999)) = %v, %v", ty, err)
	}
	if _, err := ParseType("nonsense"); err == nil {
		t.Error("ParseType accepted nonsense")
	}
}

func TestDetailLimits(t *testing.T) {
	for name, d := range map[string]map[string]string{
		"empty key":     {"": "x"},
		"upper key":     {"Session": "x"},
		"space key":     {"a b": "x"},
		"long key":      {strings.Repeat("k", MaxDetailKey+1): "x"},
		"long value":    {"k": strings.Repeat("v", MaxDetailValue+1)},
		"invalid utf-8": {"k": "\xff"},
		"too much": {"a": strings.Repeat("v", 1000), "b": strings.Repeat("v", 1000),
			"c": strings.Repeat("v", 100)},
	} {
		if _, err := appendDetail(nil, d); !errors.Is(err, ErrDetail) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := appendDetail(nil, map[string]string{strings.Repeat("k", MaxDetailKey): strings.Repeat("v", MaxDetailValue)}); err != nil {
		t.Errorf("maximal key and value refused: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	e := exampleEntry()
	rec, _ := appendRecord(nil, &e)
	f.Add(append([]byte(Magic), rec...))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 100 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// appendCRC appends the body CRC to a record lacking it.
func appendCRC(rec []byte) []byte {
	return binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec[8:], castagnoli))
}
