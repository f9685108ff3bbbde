package frag

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReassembler reads its input as a program of operations on one
// Reassembler (see fuzzOp) and checks, after every operation: no panic;
// every error wraps exactly one sentinel; the white-box invariants and the
// counters (verify); Buffered within Limit; and, against a shadow copy of
// every byte the Reassembler accepted, that delivered messages are exactly
// those bytes, that conflicts, duplicates, mismatches and timeouts are
// reported exactly when the shadow says so, and that refused fragments
// change nothing.
func FuzzReassembler(f *testing.F) {
	for _, p := range fuzzSeeds() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		runProgram(t, prog)
	})
}

// Operation encoding. Each operation starts with a byte op; op&7 is the
// kind and op>>3 its flags. Missing bytes read as zero.
//
//	kind 0-4  fragment: id = byte % 20; total = canonical(id), or with flag 1
//	          a raw BE16; offset = BE16 % (total+8); length = byte; data =
//	          pattern(id, offset, length); LAST_FRAG = (offset+length ==
//	          total), inverted by flag 2; flag 4 corrupts the first byte.
//	kind 5    advance the clock by byte × 50 ms
//	kind 6    Expire
//	kind 7    SetMTU(40 + byte)
const (
	fuzzIDs = 20
	fuzzMTU = 64 // MaxMessage = Limit = 1024
)

func canonicalTotal(id uint32) uint32 { return 1 + (id*97+13)%1024 }

type shadow struct {
	total uint32
	first time.Time
	b     []int16 // -1: not held
}

type reader struct{ p []byte }

func (r *reader) byte() byte {
	if len(r.p) == 0 {
		return 0
	}
	b := r.p[0]
	r.p = r.p[1:]
	return b
}

func (r *reader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

func runProgram(t *testing.T, prog []byte) Stats {
	now := time.Unix(1_000_000, 0)
	r := NewReassembler(Config{MTU: fuzzMTU, Now: func() time.Time { return now }})
	model := map[uint32]*shadow{}
	in := &reader{prog}
	for step := 0; len(in.p) > 0; step++ {
		op := in.byte()
		kind, flags := op&7, op>>3
		switch kind {
		case 5:
			now = now.Add(time.Duration(in.byte()) * 50 * time.Millisecond)
		case 6:
			for _, id := range r.Expire() {
				sh := model[id]
				if sh == nil || now.Before(sh.first.Add(MaxTimeout)) {
					t.Fatalf("step %d: Expire returned %d, not due", step, id)
				}
				delete(model, id)
			}
			for _, s := range r.slots {
				if !now.Before(s.deadline) {
					t.Fatalf("step %d: message %d due but not expired", step, s.id)
				}
			}
		case 7:
			r.SetMTU(40 + int(in.byte()))
		default:
			id := uint32(in.byte()) % fuzzIDs
			total := canonicalTotal(id)
			if flags&1 != 0 {
				total = uint32(in.u16())
			}
			off := uint32(in.u16()) % (total + 8)
			data := pattern(id, int(off), int(in.byte()))
			last := uint64(off)+uint64(len(data)) == uint64(total)
			if flags&2 != 0 {
				last = !last
			}
			if flags&4 != 0 && len(data) > 0 {
				data[0] ^= 0x55
			}
			checkAdd(t, step, r, model, now, id, off, total, last, data)
		}
		// Messages the Reassembler dropped on its own (evicted) leave the model.
		for id := range model {
			if r.find(id) == nil {
				delete(model, id)
			}
		}
		if err := r.verify(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	return r.Stats()
}

func checkAdd(t *testing.T, step int, r *Reassembler, model map[uint32]*shadow, now time.Time,
	id, off, total uint32, last bool, data []byte) {
	sh := model[id]
	before := r.Stats()
	msg, err := r.Add(id, off, total, last, data)
	after := r.Stats()
	where := fmt.Sprintf("step %d: Add(%d, %d, %d, %v, %d bytes)", step, id, off, total, last, len(data))
	if after.Fragments != before.Fragments+1 {
		t.Fatalf("%s: fragment not counted", where)
	}
	var got error
	if err != nil {
		got = sentinelOf(t, err)
		if msg != nil {
			t.Fatalf("%s: message and error %v", where, err)
		}
	}

	// An independent oracle for the checks that need no state.
	end := uint64(off) + uint64(len(data))
	var want error
	switch {
	case total == 0 || len(data) == 0 || end > uint64(total) || last != (end == uint64(total)):
		want = ErrMalformed
	case int(total) > r.maxMsg:
		want = ErrTooLarge
	case sh != nil && !now.Before(sh.first.Add(MaxTimeout)):
		want = ErrTimeout
	case sh != nil && sh.total != total:
		want = ErrTotalMismatch
	case sh != nil:
		// Compare with the bytes the shadow holds.
		differ, allHeld := false, true
		for i, c := range data {
			if v := sh.b[int(off)+i]; v < 0 {
				allHeld = false
			} else if byte(v) != c {
				differ = true
			}
		}
		switch {
		case differ:
			want = ErrConflict
		case allHeld:
			want = ErrDuplicate
		}
	}
	switch {
	case want != nil && got != want:
		t.Fatalf("%s: got %v, want %v", where, err, want)
	case want == nil && sh != nil && got != nil && got != ErrTooFragmented:
		t.Fatalf("%s: held message refused a fitting fragment: %v", where, err)
	case want == nil && sh == nil && got != nil && got != ErrDuplicate && got != ErrLate:
		// With no slot, only a recently finished id is refused.
		t.Fatalf("%s: new message refused: %v", where, err)
	}

	switch got {
	case ErrConflict, ErrTotalMismatch, ErrTimeout:
		if r.find(id) != nil {
			t.Fatalf("%s: %v left the message in place", where, err)
		}
		delete(model, id)
		return
	case nil:
	default:
		// Refusals that change nothing at all.
		if after.Buffered != before.Buffered || after.Active != before.Active || after.Started != before.Started {
			t.Fatalf("%s: %v changed state: %+v -> %+v", where, err, before, after)
		}
		return
	}

	// Accepted: record the bytes, and check a delivered message against them.
	if sh == nil {
		sh = &shadow{total: total, first: now, b: make([]int16, total)}
		for i := range sh.b {
			sh.b[i] = -1
		}
	}
	for i, c := range data {
		sh.b[int(off)+i] = int16(c)
	}
	if msg == nil {
		if r.find(id) == nil {
			t.Fatalf("%s: accepted, not delivered, and no slot", where)
		}
		model[id] = sh
		return
	}
	if len(msg) != int(total) {
		t.Fatalf("%s: delivered %d bytes", where, len(msg))
	}
	for i, c := range msg {
		if sh.b[i] != int16(c) {
			t.Fatalf("%s: delivered byte %d = %d, shadow %d", where, i, c, sh.b[i])
		}
	}
	if r.find(id) != nil {
		t.Fatalf("%s: delivered but still held", where)
	}
	delete(model, id)
}

// Seed programs, written to testdata/fuzz/FuzzReassembler by
// FRAG_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds ./internal/frag.
type prog []byte

func (p *prog) frag(flags byte, id byte, off uint16, n byte) {
	*p = append(*p, flags<<3, id)
	*p = binary.BigEndian.AppendUint16(*p, off)
	*p = append(*p, n)
}

func (p *prog) fragTotal(flags byte, id byte, total, off uint16, n byte) {
	*p = append(*p, (flags|1)<<3, id)
	*p = binary.BigEndian.AppendUint16(*p, total)
	*p = binary.BigEndian.AppendUint16(*p, off)
	*p = append(*p, n)
}

// whole sends message id in order, in fragments of n bytes.
func (p *prog) whole(id byte, n int) {
	total := int(canonicalTotal(uint32(id)))
	for off := 0; off < total; off += n {
		p.frag(0, id, uint16(off), byte(min(n, total-off)))
	}
}

func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	var p prog
	p.whole(1, 200) // 111 bytes: a single fragment
	p.whole(2, 100) // 208 bytes: three fragments
	seeds["in-order"] = p

	p = nil
	total := int(canonicalTotal(3)) // 305
	for off := total - total%50; off >= 0; off -= 50 {
		p.frag(0, 3, uint16(off), byte(min(50, total-off)))
		p.frag(0, 3, uint16(off), byte(min(50, total-off))) // duplicate
	}
	seeds["reverse-duplicates"] = p

	p = nil
	p.frag(0, 4, 0, 100)
	p.frag(4, 4, 50, 100) // conflict
	p.frag(0, 4, 150, 100)
	p.fragTotal(0, 5, 500, 0, 100)
	p.fragTotal(0, 5, 400, 100, 100) // total mismatch
	p.frag(2, 6, 0, 10)              // LAST_FRAG inverted
	p.frag(0, 6, 600, 10)            // offset beyond the total (596)
	p.frag(0, 6, 20, 0)              // empty
	p.fragTotal(0, 7, 4000, 0, 100)  // too large
	seeds["refusals"] = p

	p = nil
	for id := range byte(fuzzIDs) {
		p.frag(0, id, 1, 40) // 18 valid messages: evictions for slots
	}
	for id := byte(2); id < 10; id++ {
		p.frag(0, id, 41, 200) // past the cap: evicted for memory
	}
	seeds["slots-and-cap"] = p

	p = nil
	p.frag(0, 8, 0, 10)
	p = append(p, 5, 99) // 4.95 s
	p.frag(0, 8, 10, 10)
	p = append(p, 6, 5, 1, 6) // Expire; +50 ms; Expire
	p.frag(0, 8, 20, 10)
	p.frag(0, 9, 0, 10)
	p = append(p, 5, 100)
	p.frag(0, 9, 10, 10) // timeout found by Add
	seeds["timeout"] = p

	p = nil
	for i := range 70 {
		p.frag(0, 10, uint16(1+2*i), 1) // 64 pieces, then too many
	}
	p.frag(0, 9, 0, 255) // total 887
	p.frag(0, 9, 255, 255)
	p = append(p, 7, 0) // SetMTU(40): MaxMessage 640, messages 9 and 10 dropped
	p.frag(0, 9, 510, 255)
	seeds["pieces-and-mtu"] = p
	return seeds
}

// The seeds run as ordinary tests and reach what they were written for.
func TestFuzzSeeds(t *testing.T) {
	reach := map[string]func(Stats) bool{
		"in-order":           func(s Stats) bool { return s.Completed == 2 },
		"reverse-duplicates": func(s Stats) bool { return s.Completed == 1 && s.Duplicates == 7 },
		"refusals": func(s Stats) bool {
			return s.Conflicts == 1 && s.Mismatched == 1 && s.Malformed == 3 && s.Refused == 1 && s.Late == 1
		},
		"slots-and-cap":  func(s Stats) bool { return s.Evicted > 0 && s.EvictedMemory > 0 },
		"timeout":        func(s Stats) bool { return s.Expired == 2 && s.Late == 2 },
		"pieces-and-mtu": func(s Stats) bool { return s.TooFragmented == 6 && s.EvictedMemory == 2 && s.Refused == 1 },
	}
	for name, p := range fuzzSeeds() {
		t.Run(name, func(t *testing.T) {
			if st := runProgram(t, p); !reach[name](st) {
				t.Errorf("seed does not reach its target: %+v", st)
			}
		})
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("FRAG_WRITE_SEEDS") == "" {
		t.Skip("set FRAG_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzReassembler")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReassembler")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, p := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", []byte(p))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
