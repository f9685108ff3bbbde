package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestFragmentHeaderLayout(t *testing.T) {
	f := Fragment{MsgID: 0x01020304, Offset: 0x0506, Total: 0x0708}
	b := AppendFragmentHeader([]byte{0xee}, &f)
	if want := []byte{0xee, 1, 2, 3, 4, 5, 6, 7, 8}; !bytes.Equal(b, want) {
		t.Fatalf("AppendFragmentHeader = %x, want %x", b, want)
	}
	// The layout of message 0, offset 0, total 3000.
	if b := AppendFragmentHeader(nil, &Fragment{Total: 3000}); !bytes.Equal(b, []byte{0, 0, 0, 0, 0, 0, 0x0b, 0xb8}) {
		t.Errorf("msg 0 offset 0 total 3000 = %x", b)
	}
}

// fragmentMessage cuts msg as a sender at the given MTU does.
func fragmentMessage(msgID uint32, msg []byte, mtu int) (flags []uint16, pts [][]byte) {
	chunk := FragChunkSize(mtu)
	for off := 0; off < len(msg); off += chunk {
		end := min(off+chunk, len(msg))
		f := Fragment{MsgID: msgID, Offset: uint16(off), Total: uint16(len(msg))}
		flags = append(flags, FragmentFlags(&f, end-off))
		pts = append(pts, append(AppendFragmentHeader(nil, &f), msg[off:end]...))
	}
	return flags, pts
}

func TestFragmentSplitReassemble(t *testing.T) {
	for _, mtu := range []int{MinMTU, 576, 1280, 1400, 1500, 9000} {
		for _, n := range []int{1, FragChunkSize(mtu) - 1, FragChunkSize(mtu), FragChunkSize(mtu) + 1, 1000, 4097, MaxFragMessage} {
			if n > MaxFragMessage {
				continue // at 9000 a whole message fits one packet
			}
			msg := garbage(n, uint32(mtu+n))
			flags, pts := fragmentMessage(42, msg, mtu)
			out := make([]byte, n)
			covered := 0
			for i, pt := range pts {
				if len(pt)+HeaderLen+TagLen > mtu {
					t.Fatalf("mtu %d, message %d: fragment %d is %d bytes on the wire", mtu, n, i, len(pt)+HeaderLen+TagLen)
				}
				f, chunk, err := ParseFragment(flags[i], pt)
				if err != nil {
					t.Fatalf("mtu %d, message %d, fragment %d: %v", mtu, n, i, err)
				}
				if f.MsgID != 42 || int(f.Total) != n {
					t.Fatalf("fragment %d header %+v", i, f)
				}
				if last := i == len(pts)-1; (flags[i]&FlagLastFrag != 0) != last || flags[i]&FlagFragment == 0 ||
					flags[i]&FlagEncrypted == 0 {
					t.Fatalf("fragment %d of %d: flags %#04x", i, len(pts), flags[i])
				}
				covered += copy(out[f.Offset:], chunk)
			}
			if covered != n || !bytes.Equal(out, msg) {
				t.Fatalf("mtu %d, message %d: reassembled %d bytes, equal %v", mtu, n, covered, bytes.Equal(out, msg))
			}
			if len(pts) > MaxFragMessage/MinFragChunk+1 {
				t.Fatalf("%d fragments", len(pts))
			}
		}
	}
}

func TestParseFragmentRules(t *testing.T) {
	mk := func(id uint32, off, total uint16, n int) []byte {
		return append(AppendFragmentHeader(nil, &Fragment{MsgID: id, Offset: off, Total: total}), make([]byte, n)...)
	}
	for _, c := range []struct {
		name  string
		flags uint16
		p     []byte
		err   error
	}{
		{"first of two", FlagsFragment, mk(1, 0, 600, 300), nil},
		{"last of two", FlagsLastFragment, mk(1, 300, 600, 300), nil},
		{"single fragment", FlagsLastFragment, mk(1, 0, 10, 10), nil},
		{"last, one byte", FlagsLastFragment, mk(1, 999, 1000, 1), nil},
		{"largest message", FlagsLastFragment, mk(1, MaxFragMessage-300, MaxFragMessage, 300), nil},
		{"non-last at the minimum chunk", FlagsFragment, mk(1, 0, 1000, MinFragChunk), nil},
		{"other flags ignored", FlagsFragment | FlagPriority | FlagRequireAck | 0x8000, mk(1, 0, 600, 300), nil},
		{"no FRAGMENT flag", FlagEncrypted, mk(1, 0, 600, 300), ErrMalformed},
		{"LAST_FRAG without FRAGMENT", FlagEncrypted | FlagLastFrag, mk(1, 300, 600, 300), ErrMalformed},
		{"empty", FlagsFragment, nil, ErrLength},
		{"header only", FlagsLastFragment, mk(1, 0, 1, 0), ErrLength},
		{"short header", FlagsFragment, mk(1, 0, 600, 0)[:7], ErrLength},
		{"total 0", FlagsLastFragment, mk(1, 0, 0, 1), ErrMalformed},
		{"total too big", FlagsFragment, mk(1, 0, MaxFragMessage+1, 300), ErrMalformed},
		{"total 65535", FlagsFragment, mk(1, 0, 65535, 300), ErrMalformed},
		{"beyond the end", FlagsLastFragment, mk(1, 500, 600, 101), ErrMalformed},
		{"offset past the end", FlagsLastFragment, mk(1, 65535, 600, 1), ErrMalformed},
		{"last without LAST_FRAG", FlagsFragment, mk(1, 300, 600, 300), ErrMalformed},
		{"LAST_FRAG short of the end", FlagsLastFragment, mk(1, 0, 600, 300), ErrMalformed},
		{"non-last chunk too small", FlagsFragment, mk(1, 0, 600, MinFragChunk-1), ErrMalformed},
	} {
		f, chunk, err := ParseFragment(c.flags, c.p)
		if c.err == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if len(chunk) != len(c.p)-FragHeaderLen || f.MsgID != 1 {
				t.Errorf("%s: %+v, %d-byte chunk", c.name, f, len(chunk))
			}
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.err)
		}
		if chunk != nil {
			t.Errorf("%s: chunk returned with an error", c.name)
		}
	}
}

func TestFragmentHelpers(t *testing.T) {
	if FragChunkSize(MinMTU) != 408 || FragOverhead != 104 || MaxFragMessage != 8192 {
		t.Errorf("chunk at 512 = %d, overhead %d, max %d", FragChunkSize(MinMTU), FragOverhead, MaxFragMessage)
	}
	if FragChunkSize(MinMTU) < MinFragChunk {
		t.Error("a sender at MinMTU could not meet MinFragChunk")
	}
	if FlagsFragment != 0x0009 || FlagsLastFragment != 0x0019 {
		t.Errorf("flags %#04x %#04x", FlagsFragment, FlagsLastFragment)
	}
	f := Fragment{Offset: 100, Total: 300}
	if FragmentFlags(&f, 199) != FlagsFragment || FragmentFlags(&f, 200) != FlagsLastFragment {
		t.Error("FragmentFlags")
	}
	for ty := Type(0); ty < 16; ty++ {
		want := ty == TypeConfig || ty == TypeRollback || ty == TypeDiscover || ty == TypeJournal
		if Fragmentable(ty) != want {
			t.Errorf("Fragmentable(%v) = %v", ty, !want)
		}
	}
}

func TestAppendFragmentHeaderNoAlloc(t *testing.T) {
	f := Fragment{MsgID: 1, Offset: 2, Total: 3}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFragmentHeader(buf[:0], &f) }); n != 0 {
		t.Errorf("AppendFragmentHeader allocates %v times", n)
	}
}

// fragmentFuzzInput prefixes a fragment plaintext with its BE16 flags: the
// fuzz targets take one []byte so that the corpus stays one value per file.
func fragmentFuzzInput(flags uint16, p []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, flags), p...)
}

func FuzzParseFragment(f *testing.F) {
	_, pts := fragmentMessage(5, garbage(1000, 25), MinMTU)
	f.Add(fragmentFuzzInput(FlagsFragment, pts[0]))
	f.Add(fragmentFuzzInput(FlagsLastFragment, pts[2]))
	f.Add(fragmentFuzzInput(FlagsFragment, pts[2]))
	f.Add(fragmentFuzzInput(FlagEncrypted, pts[0]))
	f.Add(fragmentFuzzInput(FlagsLastFragment, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0xaa}))
	f.Add([]byte{0, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		flags, p := binary.BigEndian.Uint16(in[:2]), in[2:]
		fr, chunk, err := ParseFragment(flags, p)
		want := false
		if flags&FlagFragment != 0 && len(p) > 8 {
			off, total, n := int(p[4])<<8|int(p[5]), int(p[6])<<8|int(p[7]), len(p)-8
			last := flags&FlagLastFrag != 0
			want = total >= 1 && total <= 8192 && off+n <= total && last == (off+n == total) && (last || n >= 256)
		}
		if (err == nil) != want {
			t.Fatalf("ParseFragment(%#04x, %x) error = %v, oracle accepts = %v", flags, p, err, want)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if !bytes.Equal(chunk, p[FragHeaderLen:]) {
			t.Fatal("chunk is not the bytes after the header")
		}
		if re := append(AppendFragmentHeader(nil, &fr), chunk...); !bytes.Equal(re, p) {
			t.Fatalf("re-encoded fragment\n got  %x\n want %x", re, p)
		}
		if FragmentFlags(&fr, len(chunk))&(FlagFragment|FlagLastFrag) != flags&(FlagFragment|FlagLastFrag) {
			t.Fatalf("FragmentFlags disagrees with an accepted fragment's flags %#04x", flags)
		}
	})
}
