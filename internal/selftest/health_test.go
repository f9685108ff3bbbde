package selftest

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// bare returns a Source without start-up samples, for feeding test() an
// exact stream.
func bare() *Source { return &Source{done: make(chan struct{})} }

// constReader yields one byte value forever (a stuck generator).
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// switchReader reads from good until bad is set, then from badR.
type switchReader struct {
	good, badR io.Reader
	bad        atomic.Bool
}

func (s *switchReader) Read(p []byte) (int, error) {
	if s.bad.Load() {
		return s.badR.Read(p)
	}
	return s.good.Read(p)
}

func chacha(seed byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{seed}) }

func healthErr(t *testing.T, err error) *HealthError {
	t.Helper()
	var he *HealthError
	if !errors.As(err, &he) || !errors.Is(err, ErrHealth) {
		t.Fatalf("want a *HealthError wrapping ErrHealth, got %v", err)
	}
	return he
}

// TestCutoffDerivation recomputes the cutoffs from H, α and W with exact
// arithmetic (SP 800-90B §4.4.1, §4.4.2; see the comment in health.go).
func TestCutoffDerivation(t *testing.T) {
	const H, a = AssumedMinEntropy, AlphaLog2
	// RCT: C = 1 + ceil(-log2 α / H); the run probability 2^(-H(C-1)) ≤ α.
	if c := 1 + (a+H-1)/H; c != RCTCutoff {
		t.Errorf("RCT cutoff %d, formula gives %d", RCTCutoff, c)
	}
	if H*(RCTCutoff-1) < a {
		t.Errorf("RCT false-positive rate 2^-%d exceeds α = 2^-%d", H*(RCTCutoff-1), a)
	}

	// APT: P(1 + Bin(W-1, 2^-H) ≥ C) ≤ α. With p = 1/256 every term is
	// an integer over 256^(W-1), so compare numerators.
	tails := map[int][]*big.Int{}
	tail := func(n, k int) *big.Int { // 256^n · P(Bin(n, 1/256) ≥ k)
		if tails[n] == nil {
			// suffix[i] = Σ_{j ≥ i} C(n, j) · 255^(n-j)
			suffix := make([]*big.Int, n+2)
			suffix[n+1] = new(big.Int)
			pow := big.NewInt(1) // 255^(n-j), built from j = n down
			for j := n; j >= 0; j-- {
				term := new(big.Int).Binomial(int64(n), int64(j))
				term.Mul(term, pow)
				suffix[j] = term.Add(term, suffix[j+1])
				pow = new(big.Int).Mul(pow, big.NewInt(255))
			}
			tails[n] = suffix
		}
		return tails[n][k]
	}
	limit := new(big.Int).Lsh(big.NewInt(1), uint(8*(APTWindow-1)-a)) // 256^(W-1) · α
	c := 2
	for tail(APTWindow-1, c-1).Cmp(limit) > 0 {
		c++
	}
	if c != APTCutoff {
		t.Errorf("APT cutoff %d, exact computation gives %d", APTCutoff, c)
	}
	// 90B's CRITBINOM(W, p, 1-α) form: smallest k with P(Bin(W) > k) ≤ α.
	limitW := new(big.Int).Lsh(big.NewInt(1), uint(8*APTWindow-a))
	k := 0
	for tail(APTWindow, k+1).Cmp(limitW) > 0 {
		k++
	}
	if 1+k != APTCutoff-1 {
		t.Errorf("90B formula gives %d; the comment says %d", 1+k, APTCutoff-1)
	}
}

// TestStuckSource: an all-zero generator is caught by the RCT during the
// start-up samples, before a single byte is handed out.
func TestStuckSource(t *testing.T) {
	s := NewSource(constReader(0))
	he := healthErr(t, s.Err())
	if he.Test != TestRCT || he.Value != 0 || he.Sample != RCTCutoff || he.Count != RCTCutoff {
		t.Fatalf("got %+v", he)
	}
	buf := bytes.Repeat([]byte{0xff}, 64)
	if n, err := s.Read(buf); n != 0 || err != he {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if !bytes.Equal(buf, make([]byte, 64)) {
		t.Fatal("failed Read left bytes in the buffer")
	}
}

// counterStream never repeats a byte twice in a row and has each value
// twice per 512-byte window: healthy for both tests.
func counterStream(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestRCTBoundary(t *testing.T) {
	for run := 2; run <= RCTCutoff+2; run++ {
		stream := counterStream(3000)
		at := 1000
		for i := range run {
			stream[at+i] = stream[at]
		}
		// Keep the run from merging with the byte after it.
		if stream[at+run] == stream[at] {
			stream[at+run]++
		}
		err := bare().test(stream)
		if run < RCTCutoff {
			if err != nil {
				t.Fatalf("run of %d: %v", run, err)
			}
			continue
		}
		he := healthErr(t, err)
		if he.Test != TestRCT || he.Sample != uint64(at+RCTCutoff) || he.Value != stream[at] {
			t.Fatalf("run of %d: %+v", run, he)
		}
	}
}

// aptStream builds windows whose first byte is 0x41 and in which 0x41
// recurs every k bytes, the rest being a counter that skips 0x41.
func aptStream(k, windows int) []byte {
	b := make([]byte, 0, windows*APTWindow)
	f := byte(0)
	for range windows {
		for j := range APTWindow {
			if j%k == 0 {
				b = append(b, 0x41)
				continue
			}
			if f++; f == 0x41 {
				f++
			}
			b = append(b, f)
		}
	}
	return b
}

func TestAPTBoundary(t *testing.T) {
	// Every 20th byte: 26 occurrences per window, one below the cutoff.
	if err := bare().test(aptStream(20, 64)); err != nil {
		t.Fatalf("26 per window: %v", err)
	}
	// Every 19th byte: 27 occurrences, the cutoff.
	he := healthErr(t, bare().test(aptStream(19, 64)))
	if he.Test != TestAPT || he.Value != 0x41 || he.Count != APTCutoff || he.Sample != APTWindow {
		t.Fatalf("got %+v", he)
	}
}

// TestAPTOnBiasedSource: after 1 MiB of good output the generator starts
// emitting 0x41 one time in eight (the rest pseudo-random). No value runs
// long enough for the RCT; the APT must catch it within a few windows.
func TestAPTOnBiasedSource(t *testing.T) {
	biased := chacha(2)
	sr := &switchReader{good: chacha(1), badR: readerFunc(func(p []byte) (int, error) {
		biased.Read(p)
		for i := range p {
			if p[i]&7 == 0 { // 1/8 of positions, keyed off the stream
				p[i] = 0x41
			} else if p[i] == 0x41 {
				p[i] = 0x42
			}
		}
		return len(p), nil
	})}
	s := NewSource(sr)
	buf := make([]byte, 4096)
	for range 256 { // 1 MiB
		if _, err := s.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	sr.bad.Store(true)
	var err error
	read := 0
	for ; read < 64<<10 && err == nil; read += len(buf) {
		_, err = s.Read(buf)
	}
	he := healthErr(t, err)
	if he.Test != TestAPT || he.Value != 0x41 {
		t.Fatalf("got %+v after %d biased bytes", he, read)
	}
	t.Logf("APT fired after %d biased bytes: %v", read, he)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestNoFalseAlarmOnCryptoRand: 64 MiB of crypto/rand pass both tests
// (expected false alarms at α = 2^-64 per decision: 2^-38).
func TestNoFalseAlarmOnCryptoRand(t *testing.T) {
	s := NewSource(nil)
	buf := make([]byte, 1<<20)
	for range 64 {
		n, err := s.Read(buf)
		if err != nil || n != len(buf) {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	if s.Err() != nil || s.n != 64<<20+StartupSamples {
		t.Fatalf("err %v, tested %d", s.Err(), s.n)
	}
}

// TestFailClosed: once failed, a Source never hands out a byte again, even
// if its generator recovers, and keeps reporting the same failure.
func TestFailClosed(t *testing.T) {
	sr := &switchReader{good: crand.Reader, badR: constReader(0x5a)}
	s := NewSource(sr)
	buf := make([]byte, 256)
	if _, err := s.Read(buf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Failed():
		t.Fatal("Failed closed while healthy")
	default:
	}
	sr.bad.Store(true)
	_, err := s.Read(buf)
	he := healthErr(t, err)
	if he.Test != TestRCT || he.Value != 0x5a {
		t.Fatalf("got %+v", he)
	}
	sr.bad.Store(false) // the generator "recovers"
	for range 3 {
		for i := range buf {
			buf[i] = 0xff
		}
		n, err := s.Read(buf)
		if n != 0 || err != he {
			t.Fatalf("after failure Read = %d, %v", n, err)
		}
		if !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Fatal("buffer not wiped")
		}
	}
	if s.Err() != he {
		t.Fatalf("Err = %v", s.Err())
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed not closed")
	}
	if _, err := s.X25519Key(); err != he {
		t.Fatalf("X25519Key after failure: %v", err)
	}
}

// TestChunkingInvariance: state carries across Reads, so the same stream
// fails at the same sample however it is split.
func TestChunkingInvariance(t *testing.T) {
	stream := make([]byte, 10000)
	chacha(3).Read(stream)
	for i := range RCTCutoff {
		stream[4090+i] = 0x77 // a run straddling a 4096 boundary
	}
	var ref *HealthError
	for _, chunk := range []int{len(stream), 4096, 4093, 512, 7, 1} {
		s := bare()
		var err *HealthError
		for q := stream; len(q) > 0 && err == nil; {
			m := min(chunk, len(q))
			err = s.test(q[:m])
			q = q[m:]
		}
		if err == nil {
			t.Fatalf("chunk %d: no failure", chunk)
		}
		if ref == nil {
			ref = err
		} else if *err != *ref {
			t.Fatalf("chunk %d: %+v, want %+v", chunk, err, ref)
		}
	}
	if ref.Test != TestRCT || ref.Sample != 4090+RCTCutoff {
		t.Fatalf("got %+v", ref)
	}
}

// reference is SP 800-90B §4.4.1 and §4.4.2 written literally, one sample
// at a time: the oracle for the optimised tests. It returns the (1-based)
// sample at which each test first fails over the whole stream, 0 if never.
func reference(stream []byte) (rctAt, aptAt int) {
	rctA, rctB := stream[0], 1
	aptA, aptB, aptI := stream[0], 1, 1
	for i := 1; i < len(stream); i++ {
		x := stream[i]
		if x == rctA {
			if rctB++; rctB >= RCTCutoff && rctAt == 0 {
				rctAt = i + 1
			}
		} else {
			rctA, rctB = x, 1
		}
		if aptI == APTWindow {
			aptA, aptB, aptI = x, 1, 1
			continue
		}
		aptI++
		if x == aptA {
			if aptB++; aptB >= APTCutoff && aptAt == 0 {
				aptAt = i + 1
			}
		}
	}
	return rctAt, aptAt
}

// TestMatchesReference compares the optimised tests with the literal ones
// on streams with runs of every length and biased windows planted at
// random places, fed in random chunk sizes. The RCT must fire at exactly
// the reference's sample. The APT counts a chunk at a time, so it may
// report the end of the chunk or window being counted, never another
// window; and when both tests fail within one chunk the RCT is reported.
func TestMatchesReference(t *testing.T) {
	r := rand.New(chacha(9))
	var nRCT, nAPT int
	for trial := range 3000 {
		stream := make([]byte, 2000+r.IntN(6000))
		chacha(byte(trial)).Read(stream)
		if trial%2 == 0 { // a run of length 1..12 somewhere
			at, n, v := r.IntN(len(stream)-12), 1+r.IntN(12), byte(r.IntN(256))
			for i := range n {
				stream[at+i] = v
			}
		}
		if trial%2 == 1 || trial%5 == 0 { // one value scattered densely from some point on
			v, step := byte(r.IntN(256)), 10+r.IntN(20)
			for i := r.IntN(len(stream)); i < len(stream); i += step + r.IntN(3) {
				stream[i] = v
			}
		}
		rctAt, aptAt := reference(stream)

		s := bare()
		var err *HealthError
		for q := stream; len(q) > 0 && err == nil; {
			m := min(1+r.IntN(700), len(q))
			err = s.test(q[:m])
			q = q[m:]
		}
		switch {
		case err == nil:
			if rctAt != 0 || aptAt != 0 {
				t.Fatalf("trial %d: missed a failure (reference RCT %d, APT %d)", trial, rctAt, aptAt)
			}
		case err.Test == TestRCT:
			nRCT++
			if err.Sample != uint64(rctAt) {
				t.Fatalf("trial %d: RCT at %d, reference %d", trial, err.Sample, rctAt)
			}
		case err.Test == TestAPT:
			nAPT++
			if aptAt == 0 || err.Sample < uint64(aptAt) || (err.Sample-1)/APTWindow != uint64(aptAt-1)/APTWindow {
				t.Fatalf("trial %d: APT at %d, reference %d", trial, err.Sample, aptAt)
			}
			if rctAt != 0 && rctAt < aptAt {
				t.Fatalf("trial %d: APT reported, but the RCT failed first at %d", trial, rctAt)
			}
		}
	}
	if nRCT < 100 || nAPT < 100 {
		t.Fatalf("weak coverage: %d RCT and %d APT failures", nRCT, nAPT)
	}
	t.Logf("%d RCT and %d APT failures, all as the reference", nRCT, nAPT)
}

func TestStartupShortReader(t *testing.T) {
	s := NewSource(bytes.NewReader(counterStream(100)))
	he := healthErr(t, s.Err())
	if he.Test != TestStartup || !errors.Is(he.Cause, io.ErrUnexpectedEOF) || he.Sample != 100 {
		t.Fatalf("got %+v", he)
	}
}

// TestUnderlyingErrorPassesThrough: an error of the wrapped reader is the
// caller's to see and does not latch the Source.
func TestUnderlyingErrorPassesThrough(t *testing.T) {
	s := NewSource(bytes.NewReader(counterStream(StartupSamples + 10)))
	buf := make([]byte, 64)
	if n, err := s.Read(buf); n != 10 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

func TestConcurrentReaders(t *testing.T) {
	sr := &switchReader{good: crand.Reader, badR: constReader(0)}
	s := NewSource(sr)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, 1000)
			for range 200 {
				if _, err := s.Read(buf); err != nil {
					return
				}
			}
		})
	}
	sr.bad.Store(true)
	wg.Wait()
	// Whether or not a reader saw the switch, the next read gets zeros.
	if _, err := s.Read(make([]byte, 16)); err == nil {
		t.Fatal("zeros passed")
	}
	healthErr(t, s.Err())
}

func TestX25519Key(t *testing.T) {
	s := NewSource(nil)
	k1, err := s.X25519Key()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := s.X25519Key()
	if err != nil {
		t.Fatal(err)
	}
	if k1.Equal(k2) || len(k1.PublicKey().Bytes()) != 32 {
		t.Fatal("bad keys")
	}
}

const benchChunk = 64 << 10

func BenchmarkCryptoRand(b *testing.B) {
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	for b.Loop() {
		crand.Read(buf)
	}
}

func BenchmarkSource(b *testing.B) {
	s := NewSource(nil)
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHealthTests measures the tests alone (the overhead a Source
// adds to its generator), on random data read in chunks of each size.
func BenchmarkHealthTests(b *testing.B) {
	data := make([]byte, 4<<20)
	crand.Read(data)
	for _, size := range []int{32, 4096, benchChunk} {
		b.Run(byteSize(size), func(b *testing.B) {
			s := bare()
			off := 0
			b.SetBytes(int64(size))
			for b.Loop() {
				if off+size > len(data) {
					off = 0
				}
				if err := s.test(data[off : off+size]); err != nil {
					b.Fatal(err)
				}
				off += size
			}
		})
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<10:
		return itoa(n>>10) + "KiB"
	default:
		return itoa(n) + "B"
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
