package frag

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// fragPayload is the fragment payload at a given MTU if a fragment packet
// carries the 80-byte header, a 16-byte tag and an 8-byte fragment header
// (the reference's layout; internal/wire fixes ours). Only the shape of the
// boundaries matters here.
func fragPayload(mtu int) int { return mtu - 104 }

func split(t *testing.T, msg []byte, max int) []frag {
	t.Helper()
	var fs []frag
	err := Split(msg, max, func(off, total uint32, last bool, part []byte) error {
		if int(total) != len(msg) {
			t.Fatalf("total %d for a %d-byte message", total, len(msg))
		}
		fs = append(fs, frag{off, part, last})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Contiguous, each at most max, each non-empty, LAST_FRAG on the final one only.
	next := 0
	for i, f := range fs {
		if int(f.off) != next || len(f.data) == 0 || len(f.data) > max || f.last != (i == len(fs)-1) {
			t.Fatalf("fragment %d of %d: offset %d (want %d), %d bytes, last %v", i, len(fs), f.off, next, len(f.data), f.last)
		}
		next += len(f.data)
	}
	if next != len(msg) || len(fs) != (len(msg)+max-1)/max {
		t.Fatalf("%d fragments covering %d of %d bytes", len(fs), next, len(msg))
	}
	return fs
}

// Split then Add, for sizes around the fragment-payload and cap boundaries,
// delivered in order, reversed and shuffled.
func TestSplitRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, mtu := range []int{576, 1280, 1400, 9000} {
		p, limit := fragPayload(mtu), MaxMessage(mtu)
		sizes := []int{1, 2, p - 1, p, p + 1, 2*p - 1, 2 * p, 2*p + 1, limit - p - 1, limit - p, limit - p + 1, limit - 1, limit}
		for _, n := range sizes {
			msg := pattern(uint32(n), 0, n)
			fs := split(t, msg, p)
			orders := map[string][]int{"in order": nil, "reversed": nil, "shuffled": nil}
			for i := range fs {
				orders["in order"] = append(orders["in order"], i)
			}
			orders["reversed"] = slices.Clone(orders["in order"])
			slices.Reverse(orders["reversed"])
			orders["shuffled"] = rng.Perm(len(fs))
			for name, order := range orders {
				r := NewReassembler(Config{MTU: mtu})
				var got []byte
				for i, k := range order {
					out, err := r.Add(42, fs[k].off, uint32(n), fs[k].last, fs[k].data)
					if err != nil {
						t.Fatalf("MTU %d, %d bytes, %s: fragment %d: %v", mtu, n, name, k, err)
					}
					if (out != nil) != (i == len(order)-1) {
						t.Fatalf("MTU %d, %d bytes, %s: delivered after %d of %d fragments", mtu, n, name, i+1, len(order))
					}
					got = out
				}
				mustVerify(t, r)
				st := r.Stats()
				if !bytes.Equal(got, msg) || st.Completed != 1 || st.Buffered != 0 || st.PeakBuffered > st.Limit || st.Evicted+st.EvictedMemory != 0 {
					t.Fatalf("MTU %d, %d bytes, %s: %+v", mtu, n, name, st)
				}
			}
		}
		// One byte more than the cap is refused at the first fragment.
		r := NewReassembler(Config{MTU: mtu})
		fs := split(t, make([]byte, limit+1), p)
		_, err := r.Add(1, fs[0].off, uint32(limit+1), fs[0].last, fs[0].data)
		wantErr(t, err, ErrTooLarge)
	}
}

// Sixteen messages interleaved fragment by fragment, as a sender
// multiplexing channels would send them, all complete when they fit the cap.
func TestInterleaved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const mtu = 1400
		p := fragPayload(mtu)
		size := MaxMessage(mtu) / MaxSlots // 1400: two fragments each
		r := NewReassembler(Config{MTU: mtu})
		var all [][]frag
		for id := range MaxSlots {
			all = append(all, split(t, pattern(uint32(id), 0, size), p))
		}
		delivered := 0
		for k := range all[0] {
			for id, fs := range all {
				msg, err := r.Add(uint32(id), fs[k].off, uint32(size), fs[k].last, fs[k].data)
				if err != nil {
					t.Fatal(err)
				}
				if msg != nil {
					if !bytes.Equal(msg, pattern(uint32(id), 0, size)) {
						t.Fatal("wrong message")
					}
					delivered++
				}
				time.Sleep(time.Millisecond)
			}
		}
		mustVerify(t, r)
		if st := r.Stats(); delivered != MaxSlots || st.Evicted+st.EvictedMemory+st.Expired != 0 {
			t.Fatalf("delivered %d: %+v", delivered, st)
		}
	})
}

func TestSplitErrors(t *testing.T) {
	noop := func(uint32, uint32, bool, []byte) error { return nil }
	if err := Split(nil, 100, noop); err == nil {
		t.Error("split an empty message")
	}
	if err := Split([]byte{1}, 0, noop); err == nil {
		t.Error("split with a 0-byte payload")
	}
	stop := errors.New("stop")
	calls := 0
	err := Split(make([]byte, 1000), 100, func(uint32, uint32, bool, []byte) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	// A message no larger than the payload is one last fragment.
	fs := split(t, []byte("hello"), 5)
	if len(fs) != 1 || !fs[0].last {
		t.Fatalf("%+v", fs)
	}
}
