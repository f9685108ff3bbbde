package selftest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Continuous health tests on randomness (draft §17.3, RT-C06), after NIST
// SP 800-90B §4.4, applied to 8-bit samples: every byte a Source hands out.
//
// # Parameters
//
// H, the assumed min-entropy per sample, is 8 bits: crypto/rand is a
// cryptographically secure generator whose output bytes are meant to be
// indistinguishable from uniform, so 8 bits is both the claim and the
// value under which the false-positive rate below is exact, not merely a
// bound. (A lower assumed H would widen the cutoffs and blunt the tests
// without buying anything: a healthy CSPRNG does not emit 6-bit bytes.)
//
// α, the false-positive probability of one test decision, is 2^-64. This
// is below SP 800-90B's suggested range (2^-40 ≤ α ≤ 2^-20) on purpose:
// 90B assumes a noise source whose failure is handled by its entropy source
// (re-initialisation, an alarm), whereas here a failure is permanent and
// takes the node out of service, and the tested volume is large. The RCT
// makes one decision per byte, so at α = 2^-30 (cutoff 5, exact rate 2^-32)
// a healthy node would falsely condemn itself about once per 4 GiB of
// randomness, about 15 s of a Source read flat out, and a 64 MiB test
// would fail 1.6 % of the time. At α = 2^-64 the per-byte rate is 2^-64
// (RCT) + 2^-66/512 (APT), i.e. one false alarm in about 2,000 years of
// reading at 300 MB/s. The price in sensitivity is small: a stuck source is
// caught after 9 bytes instead of 5, and a value that makes up 1/16 of the
// output after about 9 KiB on average, as at α = 2^-30 (1/8: 4 KiB); only
// biases near 1/30 go from slow (30 KiB) to very slow (1.4 MB) detection.
//
// # Repetition Count Test (SP 800-90B §4.4.1)
//
// Fails when one value repeats C times in a row:
//
//	C = 1 + ceil(-log2(α) / H) = 1 + ceil(64 / 8) = 9
//
// For uniform bytes, P(a given byte completes a run of C) = 2^(-H·(C-1))
// = 2^-64 = α.
//
// # Adaptive Proportion Test (SP 800-90B §4.4.2)
//
// Non-overlapping windows of W = 512 samples (90B's size for non-binary
// sources); the first sample A of a window is counted with B = 1 and B is
// incremented for each of the other W-1 samples equal to A; failure when
// B ≥ C. C is the smallest value with
//
//	P(1 + Binomial(W-1, 2^-H) ≥ C) ≤ α,  i.e. C = 27 (exact P = 2^-66.02)
//
// 90B writes this as C = 1 + CRITBINOM(W, 2^-H, 1-α), which gives 26 here;
// that form uses W trials where the counter above only has W-1 free ones
// (its exact false-positive rate at 26 is 2^-62.2 > α), so the exact
// computation is used. TestCutoffDerivation recomputes both cutoffs from H,
// α and W with exact rational arithmetic.
const (
	// AssumedMinEntropy is H, in bits per 8-bit sample.
	AssumedMinEntropy = 8
	// AlphaLog2 is -log2(α), α being the false-positive probability of one
	// test decision (one byte for the RCT, one window for the APT).
	AlphaLog2 = 64
	// RCTCutoff is C of the Repetition Count Test.
	RCTCutoff = 9
	// APTWindow is W of the Adaptive Proportion Test.
	APTWindow = 512
	// APTCutoff is C of the Adaptive Proportion Test.
	APTCutoff = 27
	// StartupSamples are tested and discarded before a Source hands out its
	// first byte (SP 800-90B §4.3: start-up tests over at least 1024
	// consecutive samples).
	StartupSamples = 1024
)

// Names of the health tests, as reported in [HealthError.Test].
const (
	TestRCT = "repetition count"
	TestAPT = "adaptive proportion"
	// TestStartup reports a source that could not even supply the
	// start-up samples.
	TestStartup = "start-up"
)

// ErrHealth is wrapped by every health-test failure.
var ErrHealth = errors.New("selftest: randomness health test failed")

// HealthError describes the failure that latched a Source. Sample counts
// the bytes the Source had tested (including the start-up samples) when
// the failure was detected.
type HealthError struct {
	Test   string // TestRCT, TestAPT or TestStartup
	Value  byte   // the value that repeated or recurred
	Count  int    // how often it did (≥ Cutoff)
	Cutoff int
	Sample uint64
	Cause  error // TestStartup only: why the start-up samples were not read
}

func (e *HealthError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("selftest: randomness health test failed: %s: only %d of %d samples read: %v",
			e.Test, e.Sample, StartupSamples, e.Cause)
	}
	how := "times in a row"
	if e.Test == TestAPT {
		how = fmt.Sprintf("times in a %d-sample window", APTWindow)
	}
	return fmt.Sprintf("selftest: randomness health test failed: %s test: value 0x%02x seen %d %s (cutoff %d) by sample %d",
		e.Test, e.Value, e.Count, how, e.Cutoff, e.Sample)
}

// Unwrap makes errors.Is(err, ErrHealth) hold.
func (e *HealthError) Unwrap() error { return ErrHealth }

// Source is an io.Reader of random bytes that runs the Repetition Count
// and Adaptive Proportion tests on every byte it returns. Once a test
// fails, the Source is failed for good (fail closed): every later Read
// returns the same *HealthError, and the buffer of the failing Read is
// wiped and reported as 0 bytes, so no byte from a failing stream is ever
// used. Err reports the failure; Failed lets a Monitor react at once.
//
// A Source is safe for concurrent use. The tests run under a mutex after
// the underlying read, so concurrent readers serialise only for the tests
// (about 1 GB/s), not for the generator.
//
// Only bytes read through the Source are tested. Note that since Go 1.26
// crypto/ecdh's GenerateKey ignores its reader argument; use
// [Source.X25519Key] to draw an X25519 key through the tests.
type Source struct {
	r      io.Reader
	failed atomic.Pointer[HealthError]
	done   chan struct{} // closed when failed is set

	mu sync.Mutex
	n  uint64 // samples tested
	// RCT state: the last sample, how many samples before it equal it in
	// a row, and whether there was a last sample.
	rctVal    byte
	rctRun    int
	rctPrimed bool
	// APT state: the window's reference value, its count, and the samples
	// still to come in the window (0: the next sample opens a window).
	aptVal   byte
	aptCount int
	aptLeft  int
	sep      [1]byte
}

// NewSource wraps r, or crypto/rand.Reader if r is nil, and runs the
// start-up tests on StartupSamples bytes, which are discarded. If they fail
// (or r cannot supply them) the returned Source is already failed.
func NewSource(r io.Reader) *Source {
	if r == nil {
		r = rand.Reader
	}
	s := &Source{r: r, done: make(chan struct{})}
	var buf [StartupSamples]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil && s.Err() == nil {
		s.fail(&HealthError{Test: TestStartup, Sample: s.n, Cause: err})
	}
	clear(buf[:])
	return s
}

// Read fills p from the underlying reader and health-tests what it read.
// It returns a *HealthError (wrapping ErrHealth) and n = 0 if the Source
// has failed, now or before. Errors of the underlying reader are passed
// through; the bytes that came with them are tested first.
func (s *Source) Read(p []byte) (int, error) {
	if err := s.failed.Load(); err != nil {
		clear(p)
		return 0, err
	}
	n, rerr := s.r.Read(p)
	if n > 0 {
		s.mu.Lock()
		herr := s.test(p[:n])
		s.mu.Unlock()
		if herr != nil {
			clear(p)
			return 0, herr
		}
	}
	return n, rerr
}

// Err returns the failure that latched the Source, or nil while healthy.
func (s *Source) Err() error {
	if e := s.failed.Load(); e != nil {
		return e
	}
	return nil
}

// Failed returns a channel closed when the Source fails.
func (s *Source) Failed() <-chan struct{} { return s.done }

// X25519Key draws 32 bytes through the health tests and makes an X25519
// private key of them. (ecdh.X25519().GenerateKey ignores its reader since
// Go 1.26, so passing a Source to it would test nothing.)
func (s *Source) X25519Key() (*ecdh.PrivateKey, error) {
	var b [32]byte
	defer clear(b[:])
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

func (s *Source) fail(e *HealthError) *HealthError {
	if s.failed.CompareAndSwap(nil, e) {
		close(s.done)
		return e
	}
	return s.failed.Load()
}

// test runs both tests over p; s.mu is held. It returns the latched
// failure, if any.
func (s *Source) test(p []byte) *HealthError {
	if e := s.failed.Load(); e != nil {
		return e // failed by a concurrent reader meanwhile
	}
	if i, failed := s.rct(p); failed {
		return s.fail(&HealthError{Test: TestRCT, Value: p[i], Count: RCTCutoff, Cutoff: RCTCutoff, Sample: s.n + uint64(i) + 1})
	}

	// Adaptive Proportion Test, a window at a time; bytes.Count is
	// vectorised, so this costs a fraction of the RCT loop.
	base := s.n
	for q := p; len(q) > 0; {
		if s.aptLeft == 0 {
			s.aptVal, s.aptCount, s.aptLeft = q[0], 1, APTWindow-1
			q = q[1:]
			continue
		}
		m := min(len(q), s.aptLeft)
		s.sep[0] = s.aptVal
		s.aptCount += bytes.Count(q[:m], s.sep[:])
		s.aptLeft -= m
		q = q[m:]
		if s.aptCount >= APTCutoff {
			return s.fail(&HealthError{Test: TestAPT, Value: s.aptVal, Count: s.aptCount, Cutoff: APTCutoff, Sample: base + uint64(len(p)-len(q))})
		}
	}
	s.n += uint64(len(p))
	return nil
}

// rctNeed is the number of equal neighbours that make a run of RCTCutoff.
const rctNeed = RCTCutoff - 1

// rct's word loop sees a run of equal neighbours only where it touches a
// word boundary; one lying strictly inside an 8-byte word is at most 6
// long, so rctNeed must be at least 7. This line fails to compile if not.
var _ [rctNeed - 7]struct{}

// rct runs the Repetition Count Test over p, continuing from the last
// sample and the count of equal neighbours carried in s. On failure it
// returns the index of the sample that completed a run of RCTCutoff.
//
// It compares eight samples with their predecessors at a time: the XOR of
// two overlapping 64-bit loads has a zero byte exactly where a sample
// equals the one before it. The zero bytes at the word's low end extend
// the run carried in; those at its high end start the next one.
func (s *Source) rct(p []byte) (at int, failed bool) {
	const lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	if len(p) == 0 {
		return 0, false
	}
	run := s.rctRun
	if s.rctPrimed && p[0] == s.rctVal {
		if run++; run >= rctNeed {
			return 0, true
		}
	} else {
		run = 0
	}
	i := 1
	for q := p; len(q) >= 9; q = q[8:] { // q[0] is p[i-1]
		w := binary.LittleEndian.Uint64(q) ^ binary.LittleEndian.Uint64(q[1:9])
		nz := ((w & lo7) + lo7 | w) & hi // top bit of each byte: it is non-zero
		if k := bits.TrailingZeros64(nz) >> 3; run+k >= rctNeed {
			return i + rctNeed - run - 1, true
		}
		if nz == 0 {
			run += 8
		} else {
			run = bits.LeadingZeros64(nz) >> 3
		}
		i += 8
	}
	for ; i < len(p); i++ {
		if p[i] == p[i-1] {
			if run++; run >= rctNeed {
				return i, true
			}
		} else {
			run = 0
		}
	}
	s.rctVal, s.rctRun, s.rctPrimed = p[len(p)-1], run, true
	return 0, false
}
