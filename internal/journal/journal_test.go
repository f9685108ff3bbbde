package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openT(t *testing.T, path string, opts Options) *Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	j, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// fill appends n entries with varied types and details.
func fill(t *testing.T, j *Journal, n int) []Entry {
	t.Helper()
	types := Types()[:12] // the counts TestFilter expects assume a cycle of 12
	var out []Entry
	for i := range n {
		e, err := j.Append(Entry{
			Type:         types[i%len(types)],
			ConfigBefore: uint64(i), ConfigAfter: uint64(i + 1),
			Detail: map[string]string{"i": strconv.Itoa(i), "session": fmt.Sprintf("s%d", i%3)},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func readAll(t *testing.T, path string) []Entry {
	t.Helper()
	var out []Entry
	for e, err := range Entries(path, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	if seq, h := j.Head(); seq != 0 || h != Genesis {
		t.Fatalf("empty head = %d %x", seq, h)
	}
	written := fill(t, j, 50)
	seq, head := j.Head()
	if seq != 50 || head != written[49].Hash {
		t.Fatalf("head = %d %x", seq, head)
	}
	if j.HeadTruncated() != Truncate(head) {
		t.Fatal("HeadTruncated")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); n != 50 || err != nil {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	got := readAll(t, path)
	if len(got) != 50 {
		t.Fatalf("read %d entries", len(got))
	}
	prev := Genesis
	for i, e := range got {
		w := written[i]
		if e.Seq != uint64(i+1) || !e.Time.Equal(w.Time) || e.Type != w.Type || e.Hash != w.Hash || e.Prev != prev ||
			e.Offset != w.Offset || e.Count != 1 || e.ConfigAfter != uint64(i+1) || e.Detail["i"] != strconv.Itoa(i) {
			t.Fatalf("entry %d: got %+v want %+v", i, e, w)
		}
		prev = e.Hash
	}
	// Reopen continues the chain.
	j = openT(t, path, Options{})
	if s, h := j.Head(); s != 50 || h != head {
		t.Fatalf("reopened head = %d %x", s, h)
	}
	e, err := j.Append(Entry{Type: TypeStop})
	if err != nil || e.Seq != 51 || e.Prev != head {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	j.Close()
	if n, err := Verify(path); n != 51 || err != nil {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	defer j.Close()
	if _, err := Open(path, Options{Logger: quiet()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
}

func TestFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	j := openT(t, path, Options{Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	fill(t, j, 36)
	j.Close()
	all := readAll(t, path)
	count := func(f Filter) int {
		n := 0
		for e, err := range Entries(path, f) {
			if err != nil {
				t.Fatal(err)
			}
			if !f.Match(&e) {
				t.Fatal("Entries yielded a non-matching entry")
			}
			n++
		}
		return n
	}
	if n := count(Filter{Types: []Type{TypeRekey, TypeError}}); n != 6 {
		t.Errorf("types: %d", n)
	}
	if n := count(Filter{Session: "s1"}); n != 12 {
		t.Errorf("session: %d", n)
	}
	if n := count(Filter{Since: all[10].Time, Until: all[20].Time}); n != 10 {
		t.Errorf("time range: %d", n)
	}
	if n := count(Filter{Session: "s0", Types: []Type{TypeConnect}}); n != 3 {
		t.Errorf("session+type: %d", n)
	}
}

// offsets returns each entry's record offset and the file size.
func offsets(t *testing.T, path string) ([]int64, []byte) {
	t.Helper()
	var offs []int64
	for _, e := range readAll(t, path) {
		offs = append(offs, e.Offset)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return append(offs, int64(len(b))), b
}

func makeJournal(t *testing.T, n int) (string, []int64, []byte) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	fill(t, j, n)
	j.Close()
	offs, b := offsets(t, path)
	return path, offs, b
}

func wantBad(t *testing.T, path string, seq uint64, off int64) {
	t.Helper()
	_, err := Verify(path)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Torn || ce.Seq != seq || ce.Offset != off {
		t.Fatalf("Verify: %v; want the bad entry %d at offset %d", err, seq, off)
	}
	if _, err := Open(path, Options{Logger: quiet()}); !errors.As(err, &ce) || ce.Seq != seq || ce.Offset != off {
		t.Fatalf("Open: %v; want a refusal naming entry %d at offset %d", err, seq, off)
	}
}

func TestTamperFlipEveryByte(t *testing.T) {
	path, offs, orig := makeJournal(t, 10)
	// Every byte of entry 5, each bit pattern 0x01 and 0x80.
	for i := offs[4]; i < offs[5]; i++ {
		for _, x := range []byte{0x01, 0x80} {
			b := append([]byte(nil), orig...)
			b[i] ^= x
			os.WriteFile(path, b, 0o600)
			wantBad(t, path, 5, offs[4])
		}
	}
}

func TestTamperRecomputedChecksums(t *testing.T) {
	// An editor who fixes the CRCs is still caught by the entry hash.
	path, offs, orig := makeJournal(t, 10)
	r, _ := NewReader(bytesReader(orig))
	var es []Entry
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		es = append(es, e)
	}
	es[4].Detail["i"] = "evil"
	hash := es[4].Hash
	rec, err := appendRecord(nil, &es[4])
	if err != nil {
		t.Fatal(err)
	}
	copy(rec[len(rec)-36:], hash[:]) // keep the old hash so the chain still links...
	rec = rec[:len(rec)-4]
	rec = appendCRC(rec)
	b := append(append(append([]byte(nil), orig[:offs[4]]...), rec...), orig[offs[5]:]...)
	os.WriteFile(path, b, 0o600)
	wantBad(t, path, 5, offs[4])
}

func TestTamperDropSwapCut(t *testing.T) {
	path, offs, orig := makeJournal(t, 10)
	rec := func(i int) []byte { return orig[offs[i-1]:offs[i]] } // entry i (1-based)
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	head := orig[:offs[4]] // magic + entries 1–4
	tail := orig[offs[6]:] // entries 7–10

	t.Run("drop", func(t *testing.T) {
		os.WriteFile(path, cat(head, rec(6), tail), 0o600)
		wantBad(t, path, 5, offs[4])
	})
	t.Run("swap", func(t *testing.T) {
		os.WriteFile(path, cat(head, rec(6), rec(5), tail), 0o600)
		wantBad(t, path, 5, offs[4])
	})
	t.Run("cut middle", func(t *testing.T) {
		os.WriteFile(path, cat(orig[:offs[4]+10], orig[offs[6]+20:]), 0o600)
		wantBad(t, path, 5, offs[4])
	})
	t.Run("cut whole records", func(t *testing.T) {
		os.WriteFile(path, cat(head, tail), 0o600)
		wantBad(t, path, 5, offs[4])
	})
	t.Run("duplicate", func(t *testing.T) {
		os.WriteFile(path, cat(head, rec(5), rec(5), rec(6), tail), 0o600)
		wantBad(t, path, 6, offs[5])
	})
	t.Run("drop first", func(t *testing.T) {
		os.WriteFile(path, cat(orig[:8], orig[offs[1]:]), 0o600)
		wantBad(t, path, 1, 8)
	})
	t.Run("bad magic", func(t *testing.T) {
		os.WriteFile(path, cat([]byte("POOLJNL2"), orig[8:]), 0o600)
		if _, err := Verify(path); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Verify: %v", err)
		}
	})
}

func TestTornTailRepaired(t *testing.T) {
	path, offs, orig := makeJournal(t, 10)
	last := offs[9]
	flipLast := append([]byte(nil), orig...)
	flipLast[len(flipLast)-10] ^= 1
	cases := map[string][]byte{
		"3 header bytes":       orig[:last+3],
		"header only":          orig[:last+8],
		"half a record":        orig[:last+(offs[10]-last)/2],
		"all but one byte":     orig[:offs[10]-1],
		"zero-filled tail":     append(append([]byte(nil), orig[:last]...), make([]byte, 4096)...),
		"whole-zero extension": append(append([]byte(nil), orig...), make([]byte, 100)...),
		"bad last checksum":    flipLast,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(path, b, 0o600)
			good := 9
			if name == "whole-zero extension" {
				good = 10
			}
			n, err := Verify(path)
			if !errors.Is(err, ErrTornTail) || n != good {
				t.Fatalf("Verify = %d, %v; want %d and a torn tail", n, err, good)
			}
			j := openT(t, path, Options{})
			if seq, _ := j.Head(); seq != uint64(good+1) {
				t.Fatalf("head after repair = %d", seq)
			}
			e, err := j.Append(Entry{Type: TypeStart})
			if err != nil {
				t.Fatal(err)
			}
			j.Close()
			if n, err := Verify(path); err != nil || n != good+2 || e.Seq != uint64(good+2) {
				t.Fatalf("after repair Verify = %d, %v", n, err)
			}
			es := readAll(t, path)
			if rec := es[good]; rec.Type != TypeRecovery || rec.Detail["offset"] == "" || rec.Detail["truncated_bytes"] == "0" {
				t.Fatalf("recovery entry %+v", rec)
			}
		})
	}
}

func TestAggregateFlood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	flood := Entry{Type: TypeError, Detail: map[string]string{"code": "AUTH_FAIL", "peer": "192.0.2.1"}}
	for i := range 100_000 {
		if err := j.Note(flood); err != nil {
			t.Fatal(err)
		}
		if i%10_000 == 0 { // batched: ten events of 7
			j.Note(Entry{Type: TypeError, Detail: map[string]string{"code": "SEQ_INVALID"}, Count: 7})
		}
	}
	if p := j.Pending(); p != 100_070 {
		t.Fatalf("Pending = %d", p)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, path)
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	counts := map[string]uint64{}
	for _, e := range es {
		counts[e.Detail["code"]] += e.Count
	}
	if counts["AUTH_FAIL"] != 100_000 || counts["SEQ_INVALID"] != 70 {
		t.Fatalf("counts %v", counts)
	}
	if st, _ := os.Stat(path); st.Size() > 1024 {
		t.Fatalf("journal is %d bytes", st.Size())
	}
}

func TestAggregateWindowCloses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	j := openT(t, path, Options{Now: now, AggregateWindow: 40 * time.Millisecond, MaxAggregateKeys: 4})
	defer j.Close()
	start := now()
	for range 7 {
		j.Note(Entry{Type: TypeHandshakeFailure, Detail: map[string]string{"reason": "puzzle"}})
	}
	for i := range 10 { // 3 more keys fit, 7 overflow
		j.Note(Entry{Type: TypeError, Detail: map[string]string{"k": strconv.Itoa(i)}})
	}
	if s, _ := j.Head(); s != 0 {
		t.Fatal("written before the window closed")
	}
	advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for j.Pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("window never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	es := readAll(t, path)
	if len(es) != 5 {
		t.Fatalf("%d entries", len(es))
	}
	var total uint64
	for _, e := range es {
		total += e.Count
		if !e.First.Equal(start) || !e.Time.Equal(start.Add(time.Minute)) {
			t.Errorf("entry %d: first %v time %v", e.Seq, e.First, e.Time)
		}
		if e.Type == TypeHandshakeFailure && e.Count != 7 {
			t.Errorf("handshake failures: count %d", e.Count)
		}
		if e.Detail["aggregated"] == "overflow" && e.Count != 7 {
			t.Errorf("overflow count %d", e.Count)
		}
	}
	if total != 17 {
		t.Fatalf("total count %d", total)
	}
}

func TestFullAtCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{MaxBytes: 4096})
	n := 0
	var err error
	for ; n < 1000; n++ {
		if _, err = j.Append(Entry{Type: TypeConnect, Detail: map[string]string{"session": "abc"}}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || n == 0 {
		t.Fatalf("after %d appends: %v", n, err)
	}
	if j.Size() > 4096 {
		t.Fatalf("size %d past the cap", j.Size())
	}
	// Still full, still no panic; Note's flush fails with a log, not a crash.
	if _, err := j.Append(Entry{Type: TypeConnect, Detail: map[string]string{"session": "abc"}}); !errors.Is(err, ErrFull) {
		t.Fatal(err)
	}
	j.Note(Entry{Type: TypeError, Detail: map[string]string{"session": "abc", "code": "AUTH_FAIL"}})
	if err := j.Close(); !errors.Is(err, ErrFull) {
		t.Fatalf("Close with an unwritable aggregate: %v", err)
	}
	if got, err := Verify(path); got != n || err != nil {
		t.Fatalf("Verify = %d, %v", got, err)
	}
	j = openT(t, path, Options{MaxBytes: 8192})
	if _, err := j.Append(Entry{Type: TypeConnect}); err != nil {
		t.Fatal(err)
	}
	j.Close()
}

// faultFile fails writes with ENOSPC after writing part of the record, or
// fails Sync.
type faultFile struct {
	*os.File
	writeErr, syncErr error
}

func (f *faultFile) Write(b []byte) (int, error) {
	if f.writeErr != nil {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, f.writeErr
	}
	return f.File.Write(b)
}

func (f *faultFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

func TestENOSPC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	fill(t, j, 3)
	ff := &faultFile{File: j.osf, writeErr: &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}}
	j.f = ff
	if _, err := j.Append(Entry{Type: TypeError}); !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on ENOSPC: %v", err)
	}
	if n, err := Verify(path); n != 3 || err != nil {
		t.Fatalf("after a failed write: Verify = %d, %v (the partial record must be cut)", n, err)
	}
	ff.writeErr = nil // space freed
	e, err := j.Append(Entry{Type: TypeError})
	if err != nil || e.Seq != 4 {
		t.Fatalf("append after space freed: %d %v", e.Seq, err)
	}
	ff.syncErr = syscall.ENOSPC
	if _, err := j.Append(Entry{Type: TypeError}); !errors.Is(err, ErrFull) {
		t.Fatalf("Append on fsync ENOSPC: %v", err)
	}
	ff.syncErr = nil
	if _, err := j.Append(Entry{Type: TypeError}); err == nil {
		t.Fatal("journal accepted entries after a failed fsync")
	}
	if s, _ := j.Head(); s != 4 {
		t.Fatalf("durable head %d, want 4", s)
	}
	j.Close()
}

func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{GroupCommit: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				e, err := j.Append(Entry{Type: TypeConnect, Detail: map[string]string{"g": strconv.Itoa(g), "i": strconv.Itoa(i)}})
				if err != nil {
					t.Error(err)
					return
				}
				if s, _ := j.Head(); s < e.Seq {
					t.Errorf("Append %d returned before the durable head reached it (%d)", e.Seq, s)
				}
				mu.Lock()
				seen[e.Seq] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	j.Close()
	if n, err := Verify(path); n != 320 || err != nil || len(seen) != 320 {
		t.Fatalf("Verify = %d, %v; %d distinct seqs", n, err, len(seen))
	}
}

// TestHashes: the in-memory run of recent hashes matches the file, across
// a reopen and past the ring's size.
func TestHashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j := openT(t, path, Options{})
	if first, _, hs := j.Hashes(1, 10); first != 0 || hs != nil {
		t.Fatalf("empty journal: %d %d", first, len(hs))
	}
	fill(t, j, 10)
	j.Close()
	j = openT(t, path, Options{})
	defer j.Close()
	es := fill(t, j, RecentHashes) // entries 11 .. 10+RecentHashes
	all := readAll(t, path)
	first, prev, hs := j.Hashes(1, 5)
	if first != 11 || prev != all[9].Hash || len(hs) != 5 || hs[0] != es[0].Hash {
		t.Fatalf("Hashes(1, 5) = %d %x %d hashes: entries 1-10 have left the ring", first, prev[:4], len(hs))
	}
	first, prev, hs = j.Hashes(4000, 300)
	if first != 4000 || prev != all[3998].Hash || len(hs) != 107 {
		t.Fatalf("Hashes(4000, 300) = %d, %d hashes", first, len(hs))
	}
	for i, h := range hs {
		if h != all[3999+i].Hash {
			t.Fatalf("hash of entry %d differs from the file's", 4000+i)
		}
	}
	if first, _, hs := j.Hashes(uint64(len(all))+1, 5); first != 0 || hs != nil {
		t.Fatalf("past the head: %d %d", first, len(hs))
	}
}
