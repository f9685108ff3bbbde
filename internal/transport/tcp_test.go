package transport

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/testutil"
	"github.com/pool-go/pool/internal/wire"
)

// TestReadPacketResumesAfterDeadline: a read deadline that cuts a frame in
// the header or in the payload loses nothing; the next ReadPacket returns
// the whole packet. A session relies on it to take a blocked read back
// (session/rxrole.go); a lost byte would desynchronise the stream.
func TestReadPacketResumesAfterDeadline(t *testing.T) {
	raw, sc := testutil.TCPPair(t)
	c := NewTCPConn(sc, true)
	defer c.Close()

	const payload = 100
	pkt := make([]byte, wire.HeaderLen+payload)
	for i := range pkt {
		pkt[i] = byte(i)
	}
	wire.PutHeader(pkt, &wire.Header{Version: wire.Version1, Type: wire.TypeData, Length: payload})
	for _, cut := range []int{0, 30, wire.HeaderLen, wire.HeaderLen + 40} {
		if _, err := raw.Write(pkt[:cut]); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if p, err := c.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("cut at %d: got %v, %v; want the deadline error", cut, p, err)
		}
		_ = c.SetReadDeadline(time.Time{})
		if _, err := raw.Write(pkt[cut:]); err != nil {
			t.Fatal(err)
		}
		p, err := c.ReadPacket()
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if !bytes.Equal(*p, pkt) {
			t.Fatalf("cut at %d: packet differs after resuming", cut)
		}
	}
}
