package frag

import (
	"errors"
	"fmt"
	"testing"
)

var sentinels = []error{ErrMalformed, ErrTooLarge, ErrTotalMismatch, ErrDuplicate,
	ErrConflict, ErrTooFragmented, ErrTimeout, ErrLate}

// sentinelOf returns the one package sentinel err wraps.
func sentinelOf(t testing.TB, err error) error {
	t.Helper()
	var found error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			if found != nil {
				t.Fatalf("error %q wraps both %v and %v", err, found, s)
			}
			found = s
		}
	}
	if found == nil {
		t.Fatalf("error %q wraps no package sentinel", err)
	}
	return found
}

// verify checks the white-box invariants and that the counters add up.
func (r *Reassembler) verify() error {
	if r.buffered > r.maxMsg || r.buffered+r.overhead > r.maxMsg+Headroom {
		return fmt.Errorf("buffered %d + overhead %d, limit %d", r.buffered, r.overhead, r.maxMsg)
	}
	if len(r.slots) > r.maxSlots {
		return fmt.Errorf("%d slots > %d", len(r.slots), r.maxSlots)
	}
	sum, lists := 0, 0
	seen := map[uint32]bool{}
	for _, s := range r.slots {
		if seen[s.id] {
			return fmt.Errorf("message %d has two slots", s.id)
		}
		seen[s.id] = true
		if len(s.pieces) == 0 || len(s.pieces) > MaxPieces {
			return fmt.Errorf("message %d: %d pieces", s.id, len(s.pieces))
		}
		var charged, received int
		var prevEnd uint32
		for i, p := range s.pieces {
			if len(p.b) == 0 {
				return fmt.Errorf("message %d piece %d is empty", s.id, i)
			}
			if i > 0 && p.off < prevEnd {
				return fmt.Errorf("message %d piece %d at %d overlaps the previous one ending at %d", s.id, i, p.off, prevEnd)
			}
			if uint64(p.off)+uint64(len(p.b)) > uint64(s.total) {
				return fmt.Errorf("message %d piece %d beyond total", s.id, i)
			}
			prevEnd = p.end()
			charged += cap(p.b)
			received += len(p.b)
		}
		if cap(s.pieces) > MaxPieces {
			return fmt.Errorf("message %d: piece list capacity %d", s.id, cap(s.pieces))
		}
		lists += PieceCost * cap(s.pieces)
		if charged != s.charged || received != int(s.received) {
			return fmt.Errorf("message %d: charged %d/%d received %d/%d", s.id, s.charged, charged, s.received, received)
		}
		if received >= int(s.total) {
			return fmt.Errorf("message %d complete but not delivered", s.id)
		}
		sum += charged
	}
	if sum != r.buffered || lists != r.overhead {
		return fmt.Errorf("buffered %d, overhead %d; slots hold %d, %d", r.buffered, r.overhead, sum, lists)
	}
	return r.Stats().addUp()
}

func (st Stats) addUp() error {
	frag := st.Accepted + st.Duplicates + st.Conflicts + st.Mismatched + st.Malformed +
		st.Refused + st.TooFragmented + st.Late
	if frag != st.Fragments {
		return fmt.Errorf("fragment outcomes sum to %d, Fragments = %d: %+v", frag, st.Fragments, st)
	}
	msgs := st.Completed + st.Expired + st.Evicted + st.EvictedMemory + st.Aborted + uint64(st.Active)
	if msgs != st.Started {
		return fmt.Errorf("message outcomes sum to %d, Started = %d: %+v", msgs, st.Started, st)
	}
	if st.Buffered > st.Limit || st.Buffered+st.Overhead > st.Limit+Headroom || st.Buffered > st.PeakBuffered {
		return fmt.Errorf("buffered %d (peak %d) + overhead %d, limit %d", st.Buffered, st.PeakBuffered, st.Overhead, st.Limit)
	}
	return nil
}

func mustVerify(t testing.TB, r *Reassembler) {
	t.Helper()
	if err := r.verify(); err != nil {
		t.Fatal(err)
	}
}

// pattern returns n bytes of message id starting at offset off: every
// byte depends on both, so misplaced bytes are caught.
func pattern(id uint32, off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := uint32(off+i)*2654435761 ^ id*40503
		b[i] = byte(x>>24) ^ byte(x>>13)
	}
	return b
}

type frag struct {
	off  uint32
	data []byte
	last bool
}

// cut splits pattern(id, 0, total) at the given offsets.
func cut(id uint32, total int, at ...int) []frag {
	msg := pattern(id, 0, total)
	var fs []frag
	prev := 0
	for _, a := range append(at, total) {
		fs = append(fs, frag{uint32(prev), msg[prev:a], a == total})
		prev = a
	}
	return fs
}
