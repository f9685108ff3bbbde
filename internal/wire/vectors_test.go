package wire

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

// vectorFile is the golden file shared with internal/handshake.
const vectorFile = "../../testdata/handshake-v1.json"

type vectors map[string]any

// loadVectors reads the golden vectors with json.Number so that integers
// above 2^53 (nanosecond times, sequence numbers) are not rounded.
func loadVectors(t testing.TB) vectors {
	t.Helper()
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// get walks a dotted path such as "traffic_epoch0.0.packet".
func (v vectors) get(t testing.TB, path string) any {
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

func (v vectors) hex(t testing.TB, path string) []byte {
	t.Helper()
	s, ok := v.get(t, path).(string)
	if !ok {
		t.Fatalf("vector %q is not a string", path)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vector %q: %v", path, err)
	}
	return b
}

// u64 reads path+"_hex", the big-endian wire form of a 64-bit integer.
func (v vectors) u64(t testing.TB, path string) uint64 {
	t.Helper()
	b := v.hex(t, path+"_hex")
	if len(b) != 8 {
		t.Fatalf("vector %q_hex is %d bytes", path, len(b))
	}
	return binary.BigEndian.Uint64(b)
}

// u16 reads path+"_hex" as a big-endian 16-bit integer.
func (v vectors) u16(t testing.TB, path string) uint16 {
	t.Helper()
	b := v.hex(t, path+"_hex")
	if len(b) != 2 {
		t.Fatalf("vector %q_hex is %d bytes", path, len(b))
	}
	return binary.BigEndian.Uint16(b)
}

// num reads a JSON integer exactly (it must fit in uint64).
func (v vectors) num(t testing.TB, path string) uint64 {
	t.Helper()
	n, ok := v.get(t, path).(json.Number)
	if !ok {
		t.Fatalf("vector %q is not a number", path)
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		t.Fatalf("vector %q: %v", path, err)
	}
	return u
}

// vectorPackets lists the golden packets by name, for tests and fuzz seeds.
var vectorPacketPaths = []string{
	"init.bytes",
	"challenge.bytes",
	"response.bytes",
	"accept.bytes",
	"traffic_epoch0.0.packet",
	"traffic_epoch0.1.packet",
	"version_negotiation_close.received",
	"version_negotiation_close.bytes",
}

// vectorPackets returns the golden packets, or nil if the file is missing
// (fuzz seeding must not fail when run from another directory).
func vectorPackets(t testing.TB) map[string][]byte {
	t.Helper()
	if _, err := os.Stat(vectorFile); err != nil {
		return nil
	}
	v := loadVectors(t)
	m := make(map[string][]byte, len(vectorPacketPaths))
	for _, p := range vectorPacketPaths {
		m[p] = v.hex(t, p)
	}
	return m
}
