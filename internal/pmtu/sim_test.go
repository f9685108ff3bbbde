package pmtu

import (
	"math/bits"
	"slices"
	"testing"
	"time"
)

// sim drives one Prober the way a session's owner goroutine does, inside a
// synctest bubble, over a simulated path that drops every packet larger
// than path (an MTU black hole) and returns acks after rtt. After every step
// it checks the package's safety properties.
type sim struct {
	t     *testing.T
	p     *Prober
	cfg   Config
	path  int           // the largest packet that gets through
	rtt   time.Duration // probe out, ack back
	lose  func(size int, id uint32) bool
	step  time.Duration // > 0: call NextProbe every step (hammering), not only when due
	onTry func()        // called before each NextProbe when hammering

	pending []pendingAck
	sends   []sendRec
	acked   map[int]bool // sizes ever acknowledged
	lowest  int          // lowest MTU seen since the last mark
}

type pendingAck struct {
	id   uint32
	size int
	due  time.Time
}

type sendRec struct {
	at   time.Time
	size int
	id   uint32
}

func newSim(t *testing.T, cfg Config, path int) *sim {
	t.Helper()
	s := &sim{t: t, cfg: cfg, path: path, rtt: 30 * time.Millisecond, acked: map[int]bool{}}
	s.p = New(cfg)
	s.lowest = s.p.MTU()
	return s
}

// floor is the Prober's floor.
func (s *sim) floor() int { return s.p.floor }

// run drives the Prober for at most d of fake time, or until done reports
// true (checked between steps). It returns whether done was reached.
func (s *sim) run(d time.Duration, done func() bool) bool {
	s.t.Helper()
	end := time.Now().Add(d)
	for {
		s.deliver()
		if done != nil && done() {
			return true
		}
		now := time.Now()
		if !now.Before(end) {
			return false
		}
		if s.onTry != nil {
			s.onTry()
		}
		size, id, ok, wait := s.p.NextProbe()
		s.check()
		if ok {
			s.sent(size, id)
			continue
		}
		if done != nil && done() { // NextProbe may have settled it (a timeout)
			return true
		}
		next := end
		if s.step > 0 {
			next = now.Add(s.step)
		} else if wait > 0 {
			next = now.Add(wait)
		}
		if len(s.pending) > 0 && s.pending[0].due.Before(next) {
			next = s.pending[0].due
		}
		if next.After(end) {
			next = end
		}
		time.Sleep(next.Sub(now))
	}
}

func (s *sim) converged() bool { return s.p.Stats().Converged }

// runToConvergence drives until the Prober reports convergence, failing the
// test if it takes more than d.
func (s *sim) runToConvergence(d time.Duration) {
	s.t.Helper()
	if !s.run(d, s.converged) {
		s.t.Fatalf("not converged after %v: %+v", d, s.p.Stats())
	}
}

func (s *sim) sent(size int, id uint32) {
	s.t.Helper()
	now := time.Now()
	if n := len(s.sends); n > 0 {
		if gap := now.Sub(s.sends[n-1].at); gap < MinInterval {
			s.t.Fatalf("probe %d sent %v after probe %d: faster than P05's one per second", id, gap, s.sends[n-1].id)
		}
		if id <= s.sends[n-1].id {
			s.t.Fatalf("probe id %d after %d: ids must increase and never repeat", id, s.sends[n-1].id)
		}
	}
	if size < s.p.floor || size > s.p.limit {
		s.t.Fatalf("probe of %d bytes outside [%d, %d]", size, s.p.floor, s.p.limit)
	}
	s.sends = append(s.sends, sendRec{now, size, id})
	if size <= s.path && (s.lose == nil || !s.lose(size, id)) {
		s.pending = append(s.pending, pendingAck{id, size, now.Add(s.rtt)})
	}
}

// deliver hands the acks that are due to OnAck, as the session does after
// opening them. Only acks of the outstanding probe may be refused here, and
// only because they are late (rtt ≥ timeout).
func (s *sim) deliver() {
	s.t.Helper()
	now := time.Now()
	for len(s.pending) > 0 && !s.pending[0].due.After(now) {
		a := s.pending[0]
		s.pending = s.pending[1:]
		if err := s.p.OnAck(a.id, a.size); err == nil {
			s.acked[a.size] = true
		} else if s.rtt < s.p.timeout {
			s.t.Fatalf("timely ack of probe %d (%d bytes) refused: %v", a.id, a.size, err)
		}
		s.check()
	}
}

// check asserts the invariants that must hold at every instant.
func (s *sim) check() {
	s.t.Helper()
	st := s.p.Stats()
	mtu := s.p.MTU()
	if mtu != st.MTU {
		s.t.Fatalf("MTU() %d, Stats().MTU %d", mtu, st.MTU)
	}
	if mtu > s.p.limit {
		s.t.Fatalf("MTU %d above the link limit %d", mtu, s.p.limit)
	}
	if mtu != s.p.floor && !s.acked[mtu] {
		s.t.Fatalf("MTU %d was never acknowledged (acked: %v)", mtu, slices.Sorted(mapKeys(s.acked)))
	}
	if out := st.Probes - st.Acks - st.Timeouts; out > 1 {
		s.t.Fatalf("%d probes outstanding: %+v", out, st)
	}
	if st.Timeouts < Tries*st.TooBig {
		s.t.Fatalf("%d sizes too big after only %d timeouts", st.TooBig, st.Timeouts)
	}
	s.lowest = min(s.lowest, mtu)
}

// mark resets the record of the lowest MTU seen and returns the number of
// probes sent so far.
func (s *sim) mark() int {
	s.lowest = s.p.MTU()
	return len(s.sends)
}

// sizesSince returns the distinct sizes probed since probe index i.
func (s *sim) sizesSince(i int) []int {
	m := map[int]bool{}
	for _, r := range s.sends[i:] {
		m[r.size] = true
	}
	return slices.Sorted(mapKeys(m))
}

func mapKeys(m map[int]bool) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// maxSearchSizes bounds the distinct sizes one search over [lo, hi] probes:
// step 1 probes hi; then each probe of step 2 at least halves hi − lo
// (acked: ⌊s/2⌋ left; too big: ⌈s/2⌉ − 1), and the search stops below
// Resolution (1 byte) is reached, so a range whose width s0 = hi − 1 − lo has
// b bits needs at most b probes after step 1: log2 of the range.
func maxSearchSizes(lo, hi int) int {
	return 1 + max(0, bits.Len(uint(hi-1-lo))-(bits.Len(Resolution)-1))
}

// wantNear asserts §7.10's precision: the MTU found is the largest
// acknowledged size and at most Resolution − 1 bytes below the path's.
func wantNear(t *testing.T, got, path int) {
	t.Helper()
	if got > path || got <= path-Resolution {
		t.Fatalf("MTU %d on a path of %d, want %d..%d", got, path, path-Resolution+1, path)
	}
}
