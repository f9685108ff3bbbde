package frag

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// P04's rationale: "many small fragment sequences that are never
// completed". A million random fragments, none at offset 0 so that no
// message can ever complete: mostly from a window of 24 message ids that
// slides like a sender's counter (more messages than slots, more bytes than
// the cap), some from random ids, with some wrong totals, duplicates and
// conflicting bytes, over minutes of fake time with pauses longer than the
// timeout. The held bytes never pass the cap and the counters account for
// every fragment and every message.
func TestFloodNeverCompletes(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	synctest.Test(t, func(t *testing.T) {
		const mtu = 1400
		r := NewReassembler(Config{MTU: mtu})
		maxMsg := MaxMessage(mtu)
		rng := rand.New(rand.NewPCG(4, 2))
		totalOf := func(id uint32) uint32 { return 2 + (id*7919)%uint32(maxMsg-1) } // 2..maxMsg
		buf := make([]byte, fragPayload(mtu))
		for i := range n {
			id := uint32(i/2000) + rng.Uint32N(24)
			if rng.IntN(20) == 0 {
				id = rng.Uint32()
			}
			total := totalOf(id)
			switch rng.IntN(100) {
			case 0:
				total = 2 + rng.Uint32N(uint32(maxMsg-1)) // a total that disagrees
			case 1:
				total = uint32(maxMsg + 1 + rng.IntN(1<<20)) // too large
			}
			off := 1 + rng.Uint32N(total-1) // never 0
			size := 1 + rng.IntN(len(buf))
			if rng.IntN(4) == 0 {
				size = 1 + rng.IntN(8) // tiny fragments, to push the piece count
			}
			end := min(uint64(off)+uint64(size), uint64(total))
			data := buf[:end-uint64(off)]
			for j := range data {
				data[j] = byte(uint32(off)+uint32(j)) ^ byte(id)
			}
			if rng.IntN(100) == 0 {
				data[0] ^= 0xff // conflicts with whatever is held there
			}
			msg, err := r.Add(id, off, total, end == uint64(total), data)
			if msg != nil {
				t.Fatalf("fragment %d completed message %d", i, id)
			}
			if err != nil {
				sentinelOf(t, err)
			}
			if r.buffered > r.maxMsg || r.buffered+r.overhead > r.maxMsg+Headroom || len(r.slots) > MaxSlots {
				t.Fatalf("fragment %d: %d+%d bytes in %d slots", i, r.buffered, r.overhead, len(r.slots))
			}
			switch {
			case i%50_000 == 49_999:
				time.Sleep(6 * time.Second) // a pause: everything held times out
				if i%100_000 == 99_999 {
					r.Expire() // else Add finds the deadlines passed
				}
			case i%1000 == 999:
				time.Sleep(10 * time.Millisecond)
				r.Expire()
			}
			if i%10_000 == 0 {
				mustVerify(t, r)
			}
		}
		mustVerify(t, r)
		st := r.Stats()
		t.Logf("%d fragments: %+v", n, st)
		if st.Completed != 0 || st.PeakBuffered > st.Limit || st.Fragments != uint64(n) {
			t.Fatalf("%+v", st)
		}
		// Every kind of pressure and refusal was exercised.
		for name, v := range map[string]uint64{"Evicted": st.Evicted, "EvictedMemory": st.EvictedMemory,
			"Expired": st.Expired, "Refused": st.Refused, "Conflicts": st.Conflicts, "Duplicates": st.Duplicates,
			"Mismatched": st.Mismatched, "Late": st.Late} {
			if v == 0 {
				t.Errorf("flood never produced %s", name)
			}
		}
	})
}

// fill holds as much as the cap allows in pieces of size bytes with
// one-byte holes between them, spread over as many slots as possible: the
// most memory a peer can pin with pieces of that size.
func fill(t testing.TB, r *Reassembler, size int) {
	// k pieces in each of n slots fit if n·k·size ≤ MaxMessage and
	// n·(k·size + lists) ≤ MaxMessage + Headroom.
	fit := func(n, k int) bool {
		return n*k*size <= r.maxMsg && n*(k*size+PieceCost*listCap(k)) <= r.maxMsg+Headroom &&
			k*(size+1)+1 <= r.maxMsg
	}
	slots, k := r.maxSlots, 1
	for !fit(slots, 1) {
		slots--
	}
	for k < MaxPieces && fit(slots, k+1) {
		k++
	}
	stride := size + 1
	total := uint32(k*stride + 1)
	data := make([]byte, size)
	for id := range uint32(slots) {
		for j := range k {
			if _, err := r.Add(id, uint32(j*stride+1), total, false, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := r.Stats(); st.Active != slots || st.Evicted+st.EvictedMemory != 0 {
		t.Fatalf("%+v", st)
	}
}

func listCap(k int) int {
	c := 1
	for c < k {
		c *= 2
	}
	return c
}

// The memory a peer can pin, measured on the Go heap: N reassemblers are
// filled and the retained heap divided by N. Tiny pieces are the worst case
// (the allocator rounds each up to its size class), full-size ones the
// ordinary case.
func TestMemoryBound(t *testing.T) {
	const n = 200
	for _, mtu := range []int{576, 1400, 9000} {
		for _, size := range []int{1, 9, 17, 33, 100, 1000, fragPayload(mtu)} {
			rs := make([]*Reassembler, n)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range rs {
				rs[i] = NewReassembler(Config{MTU: mtu})
				fill(t, rs[i], size)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := int(after.HeapAlloc-before.HeapAlloc) / n
			st := rs[0].Stats()
			mustVerify(t, rs[0])
			runtime.KeepAlive(rs)
			t.Logf("MTU %5d, %4d-byte pieces: Buffered %6d + Overhead %4d, Limit %6d; heap per peer %6d bytes = %.2f × Limit",
				mtu, size, st.Buffered, st.Overhead, st.Limit, per, float64(per)/float64(st.Limit))
			// Beyond what is charged: size-class rounding of the pieces
			// (under 16 bytes each, 1/8 for large ones), 16 slot records,
			// the Reassembler itself.
			bound := st.Limit + Headroom + st.Limit/8 + MaxSlots*MaxPieces*16 + MaxSlots*256 + 1024
			if per > bound {
				t.Errorf("MTU %d, %d-byte pieces: %d bytes per peer, bound %d", mtu, size, per, bound)
			}
		}
	}
}
