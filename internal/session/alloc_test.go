package session

import (
	"io"
	"testing"
)

// TestDataPathAllocatesNothing: in steady state a full-size DATA packet
// costs no heap allocation anywhere in the process — not in Write, the
// writer's sealing and writev, the reader's framing and opening, delivery,
// nor Read (DESIGN §5: pooled buffers, sealing in place). A regression
// here shows up as GC work per packet in pool bench. The name ends in
// Integration so that "make integration", which runs without the race
// detector, runs it.
func TestDataPathAllocsIntegration(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random; make integration runs this test without it")
	}
	// Full-size packets go through the writer goroutine; 64-byte ones
	// are sealed and written by Write itself (direct.go).
	for _, size := range []int{MaxDataPlaintext, 64} {
		dataPathAllocs(t, size)
	}
}

func dataPathAllocs(t *testing.T, size int) {
	cli, srv := sessionPair(t, Config{})
	c, err := cli.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, size)
	got := make([]byte, len(msg))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	s, err := srv.AcceptChannel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	step := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	for range 200 { // warm the pools, the queues and the window
		step()
	}
	if n := testing.AllocsPerRun(500, step); n != 0 {
		t.Errorf("%v allocations per %d-byte DATA packet (sent, received, read), want 0", n, len(msg))
	}
}
