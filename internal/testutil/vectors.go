package testutil

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Vectors is a golden vector file (testdata/*.json) read with exact
// integers: nanosecond times and sequence numbers exceed float64's 53-bit
// mantissa, so numbers are kept as json.Number.
type Vectors map[string]any

// LoadVectors reads a vector file.
func LoadVectors(t testing.TB, path string) Vectors {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// Get walks a dotted path such as "traffic_epoch0.0.packet".
func (v Vectors) Get(t testing.TB, path string) any {
	t.Helper()
	var cur any = map[string]any(v)
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = c[part]; !ok {
				t.Fatalf("vector %q: no %q", path, part)
			}
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				t.Fatalf("vector %q: bad index %q", path, part)
			}
			cur = c[i]
		default:
			t.Fatalf("vector %q: cannot descend into %q", path, part)
		}
	}
	return cur
}

// Str returns a string value.
func (v Vectors) Str(t testing.TB, path string) string {
	t.Helper()
	s, ok := v.Get(t, path).(string)
	if !ok {
		t.Fatalf("vector %q is not a string", path)
	}
	return s
}

// Hex decodes a lowercase-hex byte string.
func (v Vectors) Hex(t testing.TB, path string) []byte {
	t.Helper()
	b, err := hex.DecodeString(v.Str(t, path))
	if err != nil {
		t.Fatalf("vector %q: %v", path, err)
	}
	return b
}

// U64 reads path+"_hex", the big-endian wire form of a 64-bit integer.
func (v Vectors) U64(t testing.TB, path string) uint64 {
	t.Helper()
	b := v.Hex(t, path+"_hex")
	if len(b) != 8 {
		t.Fatalf("vector %q_hex is %d bytes", path, len(b))
	}
	return binary.BigEndian.Uint64(b)
}

// U16 reads path+"_hex" as a big-endian 16-bit integer.
func (v Vectors) U16(t testing.TB, path string) uint16 {
	t.Helper()
	b := v.Hex(t, path+"_hex")
	if len(b) != 2 {
		t.Fatalf("vector %q_hex is %d bytes", path, len(b))
	}
	return binary.BigEndian.Uint16(b)
}

// Num reads a JSON integer exactly.
func (v Vectors) Num(t testing.TB, path string) uint64 {
	t.Helper()
	n, ok := v.Get(t, path).(json.Number)
	if !ok {
		t.Fatalf("vector %q is not a number", path)
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		t.Fatalf("vector %q: %v", path, err)
	}
	return u
}
