package frag

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func add(t *testing.T, r *Reassembler, id uint32, total int, f frag) ([]byte, error) {
	t.Helper()
	msg, err := r.Add(id, f.off, uint32(total), f.last, f.data)
	mustVerify(t, r)
	return msg, err
}

func mustAdd(t *testing.T, r *Reassembler, id uint32, total int, f frag) []byte {
	t.Helper()
	msg, err := add(t, r, id, total, f)
	if err != nil {
		t.Fatalf("Add(msg %d, offset %d, %d bytes): %v", id, f.off, len(f.data), err)
	}
	return msg
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", want)
	}
	if got := sentinelOf(t, err); got != want {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// permutations calls fn with every ordering of 0..n-1.
func permutations(n int, fn func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			fn(slices.Clone(p))
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

// Any arrival order completes on exactly the fragment that supplies the last
// missing byte, with the right bytes, and leaves nothing buffered.
func TestOutOfOrder(t *testing.T) {
	const total = 1000
	fs := cut(3, total, 250, 500, 501, 900)
	permutations(len(fs), func(order []int) {
		r := NewReassembler(Config{MTU: 1400})
		for i, k := range order {
			msg := mustAdd(t, r, 3, total, fs[k])
			if i < len(order)-1 {
				if msg != nil {
					t.Fatalf("order %v: message delivered after %d fragments", order, i+1)
				}
				continue
			}
			if !bytes.Equal(msg, pattern(3, 0, total)) {
				t.Fatalf("order %v: wrong message", order)
			}
		}
		if st := r.Stats(); st.Completed != 1 || st.Buffered != 0 || st.Active != 0 || st.Accepted != uint64(len(fs)) {
			t.Fatalf("order %v: %+v", order, st)
		}
	})
}

// A slot's memory follows what arrived, not the declared total.
func TestMemoryFollowsArrivals(t *testing.T) {
	r := NewReassembler(Config{MTU: 1400}) // cap 22400
	total := MaxMessage(1400)
	mustAdd(t, r, 1, total, frag{uint32(total - 100), pattern(1, total-100, 100), true})
	if st := r.Stats(); st.Buffered != 100 {
		t.Fatalf("Buffered = %d after one 100-byte fragment of a %d-byte message", st.Buffered, total)
	}
	// In-order arrival grows one buffer, by doubling but never past the total.
	msg := pattern(2, 0, total)
	r = NewReassembler(Config{MTU: 1400})
	err := Split(msg, 1296, func(off, tot uint32, last bool, part []byte) error {
		got, err := r.Add(2, off, tot, last, part)
		mustVerify(t, r)
		if st := r.Stats(); !last && st.Buffered > 2*int(off+uint32(len(part))) {
			t.Fatalf("after %d bytes in order, Buffered = %d", off+uint32(len(part)), st.Buffered)
		}
		if last && !bytes.Equal(got, msg) {
			t.Fatal("wrong message")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.PeakBuffered > total || st.Buffered != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestDuplicatesAndOverlaps(t *testing.T) {
	const id, total = 9, 100
	whole := pattern(id, 0, total)
	part := func(lo, hi int) frag { return frag{uint32(lo), whole[lo:hi], hi == total} }

	t.Run("exact duplicate", func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		mustAdd(t, r, id, total, part(0, 40))
		_, err := add(t, r, id, total, part(0, 40))
		wantErr(t, err, ErrDuplicate)
		_, err = add(t, r, id, total, part(10, 20)) // a subset
		wantErr(t, err, ErrDuplicate)
		if msg := mustAdd(t, r, id, total, part(40, 100)); !bytes.Equal(msg, whole) {
			t.Fatal("wrong message")
		}
		if st := r.Stats(); st.Duplicates != 2 || st.Completed != 1 {
			t.Fatalf("%+v", st)
		}
		// A fragment of a delivered message is a duplicate too, and does
		// not open a ghost slot that would later time out.
		_, err = add(t, r, id, total, part(0, 40))
		wantErr(t, err, ErrDuplicate)
		if st := r.Stats(); st.Active != 0 || st.Duplicates != 3 {
			t.Fatalf("%+v", st)
		}
	})

	t.Run("overlap with the same bytes adds the new ones", func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		mustAdd(t, r, id, total, part(0, 10))
		mustAdd(t, r, id, total, part(20, 30))
		mustAdd(t, r, id, total, part(40, 50))
		mustAdd(t, r, id, total, part(5, 45)) // fills both holes, overlaps three pieces
		if n := len(r.slots[0].pieces); n != 1 {
			t.Fatalf("%d pieces after filling every hole, want 1", n)
		}
		if msg := mustAdd(t, r, id, total, part(45, 100)); !bytes.Equal(msg, whole) {
			t.Fatal("wrong message")
		}
	})

	t.Run("overlap with different bytes drops the message", func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		mustAdd(t, r, id, total, part(0, 50))
		bad := part(40, 60)
		bad.data = bytes.Clone(bad.data)
		bad.data[5]++ // byte 45
		_, err := add(t, r, id, total, bad)
		wantErr(t, err, ErrConflict)
		st := r.Stats()
		if st.Conflicts != 1 || st.Aborted != 1 || st.Active != 0 || st.Buffered != 0 {
			t.Fatalf("%+v", st)
		}
		// The rest of the message cannot resurrect it.
		_, err = add(t, r, id, total, part(50, 100))
		wantErr(t, err, ErrLate)
	})

	t.Run("second last fragment with another total", func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		mustAdd(t, r, id, total, part(0, 50))
		mustAdd(t, r, id, total, part(80, 100))
		_, err := r.Add(id, 60, 90, true, whole[60:90])
		mustVerify(t, r)
		wantErr(t, err, ErrTotalMismatch)
		if st := r.Stats(); st.Mismatched != 1 || st.Aborted != 1 || st.Active != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

func TestMalformed(t *testing.T) {
	d := make([]byte, 10)
	cases := []struct {
		name               string
		offset, total      uint32
		last               bool
		data               []byte
		wantErr            error
		wantMalf, wantRefu uint64
	}{
		{"total 0", 0, 0, true, nil, ErrMalformed, 1, 0},
		{"empty non-final fragment", 10, 100, false, nil, ErrMalformed, 1, 0},
		{"empty final fragment", 100, 100, true, []byte{}, ErrMalformed, 1, 0},
		{"beyond the total", 95, 100, false, d, ErrMalformed, 1, 0},
		{"offset beyond the total", 200, 100, false, d, ErrMalformed, 1, 0},
		{"offset overflows 32 bits", math.MaxUint32 - 3, math.MaxUint32, true, d, ErrMalformed, 1, 0},
		{"LAST_FRAG before the end", 0, 100, true, d, ErrMalformed, 1, 0},
		{"end without LAST_FRAG", 90, 100, false, d, ErrMalformed, 1, 0},
		{"total above the cap", 0, 1601, false, d, ErrTooLarge, 0, 1},
		{"total 4 GiB", 0, math.MaxUint32, false, d, ErrTooLarge, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReassembler(Config{MTU: 100}) // cap 1600
			msg, err := r.Add(1, c.offset, c.total, c.last, c.data)
			mustVerify(t, r)
			if msg != nil {
				t.Fatal("delivered a message")
			}
			wantErr(t, err, c.wantErr)
			st := r.Stats()
			if st.Malformed != c.wantMalf || st.Refused != c.wantRefu || st.Active != 0 || st.Buffered != 0 || st.Started != 0 {
				t.Fatalf("%+v", st)
			}
			// A refused first fragment does not burn the id.
			if msg := mustAdd(t, r, 1, 5, frag{0, pattern(1, 0, 5), true}); len(msg) != 5 {
				t.Fatal("id unusable after a refused fragment")
			}
		})
	}
}

// The declared total is refused before anything is allocated for it.
func TestTooLargeAllocatesNothing(t *testing.T) {
	r := NewReassembler(Config{MTU: 1400})
	data := make([]byte, 1000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 1000
	for i := range n {
		if _, err := r.Add(uint32(i), 0, math.MaxUint32, false, data); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 512 {
		t.Fatalf("%d bytes allocated per refused fragment (the error text only is expected)", per)
	}
}

func TestTooFragmented(t *testing.T) {
	r := NewReassembler(Config{MTU: 1400})
	const id, total = 5, 1000
	one := func(off int) frag { return frag{uint32(off), pattern(id, off, 1), false} }
	for i := range MaxPieces {
		mustAdd(t, r, id, total, one(2*i+1))
	}
	_, err := add(t, r, id, total, one(500))
	wantErr(t, err, ErrTooFragmented)
	// Bytes that extend a held piece need no new piece and still go in;
	// this one closes the hole between the first two pieces.
	mustAdd(t, r, id, total, one(2))
	if n := len(r.slots[0].pieces); n != MaxPieces-1 {
		t.Fatalf("%d pieces, want %d", n, MaxPieces-1)
	}
	if st := r.Stats(); st.TooFragmented != 1 || st.Active != 1 {
		t.Fatalf("%+v", st)
	}
}

// P04: the 17th message evicts the least recently used one, and an accepted
// fragment makes its message recently used again.
func TestLRUEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		const total = 300
		first := func(id uint32) frag { return frag{0, pattern(id, 0, 100), false} }
		for id := uint32(1); id <= MaxSlots; id++ {
			mustAdd(t, r, id, total, first(id))
			time.Sleep(time.Millisecond)
		}
		// Touch message 1 (the oldest); a mere duplicate does not count
		// as use, so message 2 stays the least recently used.
		mustAdd(t, r, 1, total, frag{100, pattern(1, 100, 100), false})
		_, err := add(t, r, 2, total, first(2))
		wantErr(t, err, ErrDuplicate)

		mustAdd(t, r, 17, total, first(17))
		st := r.Stats()
		if st.Evicted != 1 || st.Active != MaxSlots {
			t.Fatalf("%+v", st)
		}
		if r.find(2) != nil || r.find(1) == nil {
			t.Fatal("evicted the wrong message")
		}
		_, err = add(t, r, 2, total, frag{100, pattern(2, 100, 100), false})
		wantErr(t, err, ErrLate)

		// Message 1 survived and completes; 18 then evicts 3.
		if msg := mustAdd(t, r, 1, total, frag{200, pattern(1, 200, 100), true}); !bytes.Equal(msg, pattern(1, 0, total)) {
			t.Fatal("wrong message")
		}
		mustAdd(t, r, 18, total, first(18))
		mustAdd(t, r, 19, total, first(19))
		if r.find(3) != nil || r.Stats().Evicted != 2 {
			t.Fatalf("message 3 should be the one evicted: %+v", r.Stats())
		}
	})
}

// The byte cap gives back spare capacity first, then evicts least recently
// used messages, never the one the fragment belongs to.
func TestMemoryCapEvictsLRU(t *testing.T) {
	r := NewReassembler(Config{MTU: 100}) // cap 1600
	total := MaxMessage(100)
	part := func(id uint32, lo, hi int) frag { return frag{uint32(lo), pattern(id, lo, hi-lo), hi == total} }
	mustAdd(t, r, 1, total, part(1, 0, 500))
	mustAdd(t, r, 2, total, part(2, 0, 500))
	mustAdd(t, r, 1, total, part(1, 500, 700)) // doubles to 1000; 1 is now more recent than 2
	if st := r.Stats(); st.Buffered != 1500 || st.EvictedMemory != 0 {
		t.Fatalf("%+v", st)
	}
	// Message 3 needs 500 bytes, 100 are free: message 1 gives back its 300
	// spare bytes, which is not enough, so message 2 (LRU) goes.
	mustAdd(t, r, 3, total, part(3, 0, 500))
	st := r.Stats()
	if st.EvictedMemory != 1 || r.find(2) != nil || r.find(1) == nil || st.Buffered != 700+500 {
		t.Fatalf("want message 2 evicted for memory, 1 trimmed: %+v", st)
	}
	// A message as large as the cap still completes while others hold
	// most of it: they are evicted, least recently used first.
	for off := 0; off < total; off += 400 {
		msg := mustAdd(t, r, 4, total, part(4, off, off+400))
		if off == 400 && (r.find(1) != nil || r.find(3) == nil) {
			t.Fatal("want message 1 evicted before message 3")
		}
		if off+400 == total && !bytes.Equal(msg, pattern(4, 0, total)) {
			t.Fatal("wrong message")
		}
	}
	if st := r.Stats(); st.EvictedMemory != 3 || st.Active != 0 || st.Completed != 1 || st.PeakBuffered != total {
		t.Fatalf("%+v", st)
	}
}

// P04: a message still incomplete 5 s after its first fragment expires —
// at exactly 5 s, not at 4.9 s, and later fragments do not extend it.
func TestExpiryAtExactlyTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400}) // Now = time.Now: fake in the bubble
		start := time.Now()
		fs := cut(7, 3000, 1000, 2000)
		mustAdd(t, r, 7, 3000, fs[0])
		if d, ok := r.NextDeadline(); !ok || !d.Equal(start.Add(5*time.Second)) {
			t.Fatalf("NextDeadline = %v, %v; want start+5s", d, ok)
		}

		time.Sleep(4900 * time.Millisecond)
		if ids := r.Expire(); ids != nil {
			t.Fatalf("expired %v at 4.9 s", ids)
		}
		mustAdd(t, r, 7, 3000, fs[1]) // still accepted at 4.9 s
		if d, _ := r.NextDeadline(); !d.Equal(start.Add(5 * time.Second)) {
			t.Fatal("a later fragment moved the deadline")
		}
		time.Sleep(99 * time.Millisecond)
		if ids := r.Expire(); ids != nil {
			t.Fatalf("expired %v at 4.999 s", ids)
		}
		time.Sleep(time.Millisecond)
		if ids := r.Expire(); !slices.Equal(ids, []uint32{7}) {
			t.Fatalf("Expire at 5 s = %v, want [7]", ids)
		}
		mustVerify(t, r)
		if st := r.Stats(); st.Expired != 1 || st.Active != 0 || st.Buffered != 0 {
			t.Fatalf("%+v", st)
		}
		if _, ok := r.NextDeadline(); ok {
			t.Fatal("a deadline with no message")
		}
		_, err := add(t, r, 7, 3000, fs[2])
		wantErr(t, err, ErrLate)
	})
}

// Without a timer having fired, Add itself enforces the deadline: at 5 s
// the fragment is refused with ErrTimeout and the message counts as expired.
func TestAddEnforcesDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		fs := cut(1, 3000, 1000, 2000)
		gs := cut(2, 3000, 1000, 2000)
		mustAdd(t, r, 1, 3000, fs[0])
		mustAdd(t, r, 2, 3000, gs[0])
		time.Sleep(4900 * time.Millisecond)
		mustAdd(t, r, 2, 3000, gs[1])
		if msg := mustAdd(t, r, 2, 3000, gs[2]); !bytes.Equal(msg, pattern(2, 0, 3000)) {
			t.Fatal("a message completed at 4.9 s was not delivered")
		}
		time.Sleep(100 * time.Millisecond)
		_, err := add(t, r, 1, 3000, fs[1])
		wantErr(t, err, ErrTimeout)
		st := r.Stats()
		if st.Expired != 1 || st.Late != 1 || st.Completed != 1 || st.Active != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

// How a session drives expiry: a timer set from NextDeadline.
func TestTimerDrivenExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400})
		start := time.Now()
		mustAdd(t, r, 1, 3000, cut(1, 3000, 1000)[0])
		time.Sleep(2 * time.Second)
		mustAdd(t, r, 2, 3000, cut(2, 3000, 1000)[0])
		mustAdd(t, r, 3, 3000, cut(3, 3000, 1000)[0])

		var got []time.Duration
		var ids [][]uint32
		for {
			d, ok := r.NextDeadline()
			if !ok {
				break
			}
			tm := time.NewTimer(time.Until(d))
			<-tm.C
			got = append(got, time.Since(start))
			ids = append(ids, r.Expire())
		}
		if !slices.Equal(got, []time.Duration{5 * time.Second, 7 * time.Second}) {
			t.Fatalf("timer fired at %v", got)
		}
		if !slices.Equal(ids[0], []uint32{1}) || !slices.Equal(ids[1], []uint32{2, 3}) {
			t.Fatalf("expired %v", ids)
		}
		if st := r.Stats(); st.Expired != 3 {
			t.Fatalf("%+v", st)
		}
	})
}

func TestSetMTU(t *testing.T) {
	r := NewReassembler(Config{MTU: 1400})
	mustAdd(t, r, 1, 20000, frag{0, pattern(1, 0, 1000), false})
	mustAdd(t, r, 2, 10000, frag{0, pattern(2, 0, 8000), false})
	mustAdd(t, r, 3, 10000, frag{0, pattern(3, 0, 8000), false})
	// MaxMessage 12800: message 1 can never complete. Limit 14848: the
	// other two hold 16064, so message 2, the least recently used, goes.
	r.SetMTU(800)
	mustVerify(t, r)
	st := r.Stats()
	if st.Limit != 800*16 || st.EvictedMemory != 2 || r.find(1) != nil || r.find(2) != nil || r.find(3) == nil {
		t.Fatalf("%+v", st)
	}
	_, err := add(t, r, 4, 12801, frag{0, pattern(4, 0, 10), false})
	wantErr(t, err, ErrTooLarge)
	r.SetMTU(1400) // growing drops nothing
	mustVerify(t, r)
	if r.find(3) == nil {
		t.Fatal("growing the MTU dropped a message")
	}
}

func TestConfig(t *testing.T) {
	r := NewReassembler(Config{MTU: 1})
	if r.maxSlots != MaxSlots || r.timeout != MaxTimeout || r.maxMsg != 16 {
		t.Fatalf("defaults: %d slots, %v, cap %d", r.maxSlots, r.timeout, r.maxMsg)
	}
	for _, c := range []Config{
		{MTU: 0}, {MTU: -1}, {MTU: MaxMTU + 1},
		{MTU: 1400, Slots: MaxSlots + 1}, {MTU: 1400, Slots: -1},
		{MTU: 1400, Timeout: MaxTimeout + 1}, {MTU: 1400, Timeout: -1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewReassembler(%+v) did not panic", c)
				}
			}()
			NewReassembler(c)
		}()
	}
	// Fewer slots and a shorter timeout than P04's maximum are allowed.
	synctest.Test(t, func(t *testing.T) {
		r := NewReassembler(Config{MTU: 1400, Slots: 2, Timeout: time.Second})
		for id := uint32(1); id <= 3; id++ {
			mustAdd(t, r, id, 300, frag{0, pattern(id, 0, 100), false})
		}
		if st := r.Stats(); st.Evicted != 1 || st.Active != 2 {
			t.Fatalf("%+v", st)
		}
		time.Sleep(time.Second)
		if ids := r.Expire(); len(ids) != 2 {
			t.Fatalf("expired %v after 1 s", ids)
		}
	})
}

// An injected clock works outside a synctest bubble too.
func TestInjectedClock(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewReassembler(Config{MTU: 1400, Now: func() time.Time { return now }})
	mustAdd(t, r, 1, 300, frag{0, pattern(1, 0, 100), false})
	now = now.Add(5*time.Second - 1)
	if r.Expire() != nil {
		t.Fatal("expired early")
	}
	now = now.Add(1)
	if ids := r.Expire(); !slices.Equal(ids, []uint32{1}) {
		t.Fatalf("Expire = %v", ids)
	}
}

// Single-fragment messages complete without a slot.
func TestSingleFragment(t *testing.T) {
	r := NewReassembler(Config{MTU: 1400})
	data := pattern(1, 0, 50)
	msg := mustAdd(t, r, 1, 50, frag{0, data, true})
	if !bytes.Equal(msg, data) {
		t.Fatal("wrong message")
	}
	data[0]++ // the caller may reuse its buffer
	if msg[0] == data[0] {
		t.Fatal("message aliases the caller's buffer")
	}
	if st := r.Stats(); st.Started != 1 || st.Completed != 1 || st.PeakBuffered != 0 {
		t.Fatalf("%+v", st)
	}
}
