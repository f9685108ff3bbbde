package wire

import (
	"os"
	"testing"

	"github.com/pool-go/pool/internal/testutil"
)

// vectorFile is the golden file shared with internal/handshake.
const vectorFile = "../../testdata/handshake-v1.json"

type vectors = testutil.Vectors

func loadVectors(t testing.TB) vectors { return testutil.LoadVectors(t, vectorFile) }

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
		m[p] = v.Hex(t, p)
	}
	return m
}
