package pmtu

import (
	"errors"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// A path that drops everything above N: the search of §7.10 ends exactly at
// N, with at most log2 of the range, plus one, distinct sizes, each too-big size costing exactly Tries probes, and the MTU
// only ever rising while it searches.
func TestSearchConverges(t *testing.T) {
	for _, limit := range []int{MaxProbe, 9000, 1480} {
		paths := slices.Compact(slices.Sorted(slices.Values([]int{576, 1280, 1500, 9000, limit})))
		for _, n := range paths {
			if n > limit {
				continue
			}
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				s := newSim(t, Config{Limit: limit}, n)
				if s.p.MTU() != Floor {
					t.Fatalf("initial MTU %d, want the floor %d", s.p.MTU(), Floor)
				}
				s.runToConvergence(5 * time.Minute)
				st := s.p.Stats()
				wantNear(t, st.MTU, n)
				if n == limit && st.MTU != limit {
					t.Fatalf("path carries the link limit %d, MTU %d", limit, st.MTU)
				}
				if s.lowest != Floor {
					t.Fatalf("MTU fell to %d during the first search", s.lowest)
				}
				sizes := s.sizesSince(0)
				if lim := maxSearchSizes(Floor, limit); len(sizes) > lim {
					t.Fatalf("%d sizes probed %v, want at most %d", len(sizes), sizes, lim)
				}
				if st.Probes != st.Acks+st.Timeouts || st.Timeouts != Tries*st.TooBig || st.Refused != 0 {
					t.Fatalf("counters on a lossless path: %+v", st)
				}
				if int(st.Acks+st.TooBig) != len(sizes) {
					t.Fatalf("%d acks + %d too big for %d sizes", st.Acks, st.TooBig, len(sizes))
				}
				t.Logf("link %5d, path %5d: MTU %5d after %2d sizes, %2d probes, %v", limit, n, st.MTU, len(sizes), st.Probes, time.Since(start))
			})
		}
	}
}

// P05: however often NextProbe is called — every millisecond, with acks
// back after a millisecond and a loss report every millisecond to provoke
// re-validations — probes leave at least one second apart, and never more
// than one is outstanding (sim.sent and sim.check fail the test otherwise).
// Even so flooded with loss reports, the search alternates with the
// re-validations and still finds the path.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, 1500)
		s.rtt, s.step = time.Millisecond, time.Millisecond
		calls := 0
		s.onTry = func() {
			calls++
			s.p.OnLoss()
		}
		const d = 3 * time.Minute
		s.run(d, nil)
		st := s.p.Stats()
		if st.Probes > uint64(d/MinInterval)+1 {
			t.Fatalf("%d probes in %v", st.Probes, d)
		}
		wantNear(t, st.MTU, 1500)
		if calls < int(d/time.Millisecond)-1 || len(s.sends) < 60 {
			t.Fatalf("%d calls sent %d probes: the test did not hammer", calls, len(s.sends))
		}
		t.Logf("%d NextProbe calls, %d probes, %+v", calls, len(s.sends), st)
	})
}

// A shared Gate holds P05 per peer across two sessions to the same peer.
func TestGateSpacesSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Gate
		a := newSim(t, Config{Limit: MaxProbe, Gate: &g}, 1500)
		b := newSim(t, Config{Limit: MaxProbe, Gate: &g}, 1500)
		var all []time.Time
		for range 120_000 { // two minutes, one call of each every millisecond
			for _, s := range []*sim{a, b} {
				s.deliver()
				if size, id, ok, _ := s.p.NextProbe(); ok {
					s.sent(size, id)
					all = append(all, time.Now())
				}
				s.check()
			}
			time.Sleep(time.Millisecond)
		}
		for i := 1; i < len(all); i++ {
			if gap := all[i].Sub(all[i-1]); gap < MinInterval {
				t.Fatalf("probes %v apart to one peer", gap)
			}
		}
		if len(a.sends) == 0 || len(b.sends) == 0 || len(all) < 30 {
			t.Fatalf("probes: %d and %d", len(a.sends), len(b.sends))
		}
	})
}

// Only the outstanding probe's id and size, before its timeout, are
// accepted; every other ack is refused with ErrRefused, counted, and changes
// nothing.
func TestRefusedAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(Config{Limit: 9000})
		refuse := func(id uint32, size int) {
			t.Helper()
			before := p.Stats()
			err := p.OnAck(id, size)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("OnAck(%d, %d) = %v, want ErrRefused", id, size, err)
			}
			after := p.Stats()
			before.Refused++
			if after != before {
				t.Fatalf("refused ack changed the state: %+v -> %+v", before, after)
			}
		}
		refuse(1, 9000) // unsolicited: nothing sent yet
		size, id, ok, wait := p.NextProbe()
		if !ok || size != 9000 || id != 1 || wait != ProbeTimeout {
			t.Fatalf("first probe: %d bytes, id %d, %v, wait %v", size, id, ok, wait)
		}
		refuse(2, 9000) // an id not yet used: guessed or forged
		refuse(0, 9000) // never a valid id
		refuse(math.MaxUint32, 9000)
		refuse(1, 8999)  // right id, other size
		refuse(1, 65535) // an ack claiming more than was probed
		time.Sleep(ProbeTimeout - time.Nanosecond)
		if err := p.OnAck(1, 9000); err != nil {
			t.Fatalf("ack just before the timeout: %v", err)
		}
		if p.MTU() != 9000 || !p.Stats().Converged {
			t.Fatalf("after the ack: %+v", p.Stats())
		}
		refuse(1, 9000) // duplicate
		if st := p.Stats(); st.Refused != 7 || st.Acks != 1 {
			t.Fatalf("counters %+v", st)
		}

		// Late and stale: probe 1 times out; the retry is probe 2; an ack
		// for 1 is refused after the timeout, even while 2 is outstanding.
		p = New(Config{Limit: 9000})
		size, id, _, _ = p.NextProbe()
		time.Sleep(ProbeTimeout)
		if err := p.OnAck(id, size); !errors.Is(err, ErrRefused) { // exactly at the deadline: late
			t.Fatalf("late ack: %v", err)
		}
		if st := p.Stats(); st.Timeouts != 1 || st.Refused != 1 || st.MTU != Floor {
			t.Fatalf("after a late ack: %+v", st)
		}
		size2, id2, ok, _ := p.NextProbe()
		if !ok || size2 != size || id2 != id+1 {
			t.Fatalf("retry: %d bytes id %d %v, want %d bytes id %d", size2, id2, ok, size, id+1)
		}
		refuse(id, size) // stale
		if err := p.OnAck(id2, size2); err != nil || p.MTU() != 9000 {
			t.Fatalf("retry's ack: %v, MTU %d", err, p.MTU())
		}
		if st := p.Stats(); st.Timeouts != 1 || st.TooBig != 0 || st.Refused != 2 || st.Acks != 1 {
			t.Fatalf("counters %+v", st)
		}
	})
}

// The 60 s re-probe (§7.10): nothing is sent for 60 s after convergence;
// then the search runs over [MTU, L] and finds a path that grew, without the
// MTU ever dropping meanwhile.
func TestReprobeFindsGrownPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, 1280)
		s.runToConvergence(5 * time.Minute)
		wantNear(t, s.p.MTU(), 1280)
		old := s.p.MTU()

		s.path = 9000
		i := s.mark()
		if _, _, ok, wait := s.p.NextProbe(); ok || wait != Reprobe {
			t.Fatalf("right after convergence: ok %v, wait %v, want %v", ok, wait, Reprobe)
		}
		s.run(Reprobe-time.Millisecond, nil)
		if len(s.sends) != i {
			t.Fatalf("%d probes within 60 s of convergence", len(s.sends)-i)
		}
		s.run(2*time.Millisecond, nil)
		if len(s.sends) != i+1 || s.sends[i].size != MaxProbe {
			t.Fatalf("at 60 s: probes %v, want one of the link limit", s.sends[i:])
		}
		s.runToConvergence(5 * time.Minute)
		wantNear(t, s.p.MTU(), 9000)
		if s.lowest != old {
			t.Fatalf("MTU fell to %d during the re-probe (was %d)", s.lowest, old)
		}
		if sizes := s.sizesSince(i); len(sizes) > maxSearchSizes(old, MaxProbe) {
			t.Fatalf("re-probe used %d sizes: %v", len(sizes), sizes)
		}
	})
}

// At the link limit the re-probe is a single probe of L, acknowledged.
func TestReprobeConfirmsLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: 9000}, 9000)
		s.runToConvergence(time.Minute)
		if s.p.MTU() != 9000 || len(s.sends) != 1 {
			t.Fatalf("MTU %d after %d probes", s.p.MTU(), len(s.sends))
		}
		for round := 1; round <= 3; round++ {
			s.run(Reprobe+time.Second, nil)
			if len(s.sends) != 1+round || s.sends[round].size != 9000 || s.p.MTU() != 9000 {
				t.Fatalf("round %d: probes %v, MTU %d", round, s.sends, s.p.MTU())
			}
		}
	})
}

// A confirmation of L that fails three times (the path shrank and no loss
// was reported) drops to the floor and searches [floor, L − 1].
func TestReprobeConfirmFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, MaxProbe)
		s.runToConvergence(time.Minute)
		s.path = 1500
		i := s.mark()
		s.run(Reprobe+time.Millisecond, nil)
		s.runToConvergence(5 * time.Minute)
		wantNear(t, s.p.MTU(), 1500)
		if s.lowest != Floor {
			t.Fatalf("lowest MTU %d, want the floor", s.lowest)
		}
		for _, r := range s.sends[i : i+Tries] {
			if r.size != MaxProbe {
				t.Fatalf("confirmation probes %v", s.sends[i:i+Tries])
			}
		}
	})
}

// Loss after the path shrank (§7.10, "Re-probe after loss"): the current MTU
// is probed Tries times (kept meanwhile: it was acknowledged), then the MTU
// drops to the floor and the search over [floor, MTU − 1] finds the new
// path. The MTU never exceeds an acknowledged size.
func TestLossAfterShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, 9000)
		s.runToConvergence(5 * time.Minute)
		old := s.p.MTU()
		wantNear(t, old, 9000)

		s.path = 1280
		time.Sleep(MinInterval) // so that P05 lets the first re-validation probe go at once
		i := s.mark()
		t0 := time.Now()
		s.p.OnLoss()
		if s.p.Stats().Converged {
			t.Fatal("still converged after OnLoss")
		}
		// The re-validation: Tries probes of the MTU, one ProbeTimeout apart
		// (longer than P05's second), the first at once.
		dropped := s.run(time.Minute, func() bool { return s.p.MTU() != old })
		if !dropped {
			t.Fatal("MTU never dropped")
		}
		if took := time.Since(t0); took != Tries*ProbeTimeout {
			t.Fatalf("MTU dropped after %v, want %v", took, Tries*ProbeTimeout)
		}
		if s.p.MTU() != Floor {
			t.Fatalf("MTU %d after the failed re-validation, want the floor", s.p.MTU())
		}
		for k, r := range s.sends[i : i+Tries] {
			if r.size != old || !r.at.Equal(t0.Add(time.Duration(k)*ProbeTimeout)) {
				t.Fatalf("re-validation probe %d: %d bytes at %v", k, r.size, r.at.Sub(t0))
			}
		}
		s.runToConvergence(5 * time.Minute)
		wantNear(t, s.p.MTU(), 1280)
		t.Logf("MTU %d -> %d in %v, %d probes", old, s.p.MTU(), time.Since(t0), len(s.sends)-i)
	})
}

// Loss that was not about the MTU: one probe of the current MTU, acked, and
// nothing changes. A single lost probe does not shrink the MTU either.
func TestLossWithoutShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, 1500)
		s.runToConvergence(5 * time.Minute)
		mtu := s.p.MTU()
		before := s.p.Stats()

		s.p.OnLoss()
		s.runToConvergence(time.Minute)
		st := s.p.Stats()
		if st.MTU != mtu || st.Probes != before.Probes+1 || st.Acks != before.Acks+1 {
			t.Fatalf("after a loss on an unchanged path: %+v (before %+v)", st, before)
		}

		// The first re-validation probe is lost too.
		var lostID uint32
		s.lose = func(size int, id uint32) bool {
			if lostID == 0 {
				lostID = id
				return true
			}
			return false
		}
		i := s.mark()
		s.p.OnLoss()
		s.runToConvergence(time.Minute)
		st2 := s.p.Stats()
		if st2.MTU != mtu || s.lowest != mtu || st2.Timeouts != st.Timeouts+1 || st2.TooBig != st.TooBig || len(s.sends)-i != 2 {
			t.Fatalf("a single lost probe: %+v (before %+v), probes %v", st2, st, s.sends[i:])
		}
	})
}

// Loss reported during a search above the floor pauses it for a
// re-validation. On a lossy link (a report every telemetry interval, 5 s,
// §7.9) the search resumes each time and still finds the path; when the
// path shrank below the search's lower bound, the MTU falls to the floor and
// a new search finds the new path.
func TestLossDuringSearch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: MaxProbe}, 9000)
		next := time.Now().Add(5 * time.Second)
		s.step = 10 * time.Millisecond
		s.onTry = func() {
			if !time.Now().Before(next) {
				s.p.OnLoss()
				next = next.Add(5 * time.Second)
			}
		}
		s.runToConvergence(10 * time.Minute)
		wantNear(t, s.p.MTU(), 9000)
		if s.lowest != Floor {
			t.Fatalf("lowest MTU %d", s.lowest)
		}
		st := s.p.Stats()
		if sizes := s.sizesSince(0); st.Losses < 10 || len(sizes) > maxSearchSizes(Floor, MaxProbe) {
			t.Fatalf("%+v, sizes %v", st, sizes)
		}
		t.Logf("lossy link: %+v after %d probes", st, len(s.sends))

		s = newSim(t, Config{Limit: MaxProbe}, 9000)
		if !s.run(5*time.Minute, func() bool { return s.p.MTU() > 2000 }) || s.converged() {
			t.Fatalf("no MTU above 2000 mid-search: %+v", s.p.Stats())
		}
		mid := s.p.MTU()
		s.path = 1280
		time.Sleep(MinInterval)
		s.p.OnLoss()
		i := s.mark()
		s.runToConvergence(5 * time.Minute)
		wantNear(t, s.p.MTU(), 1280)
		if s.lowest != Floor || s.sends[i].size != mid {
			t.Fatalf("MTU %d mid-search, lowest %d, then probes %v", mid, s.lowest, s.sends[i:])
		}
	})
}

// Loss at the floor is ignored (the floor is assumed to work), and loss
// while a probe is outstanding waits for it: at most one is outstanding,
// and its ack still counts before the re-validation.
func TestLossEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(Config{Limit: MaxProbe})
		p.OnLoss()
		size, _, ok, _ := p.NextProbe()
		if !ok || size != MaxProbe || p.Stats().Losses != 1 {
			t.Fatalf("loss at the floor changed the search: %d bytes", size)
		}

		// A search above the floor (the 60 s re-probe upward from ~9000)
		// has its probe of L outstanding when loss is reported.
		s := newSim(t, Config{Limit: MaxProbe}, 9000)
		s.runToConvergence(5 * time.Minute)
		p = s.p
		mtu := p.MTU()
		time.Sleep(Reprobe)
		size, id, ok, _ := p.NextProbe()
		if !ok || size != MaxProbe {
			t.Fatalf("re-probe at 60 s: %d bytes, %v", size, ok)
		}
		p.OnLoss()
		if _, _, ok, _ := p.NextProbe(); ok {
			t.Fatal("a second probe while one is outstanding")
		}
		// The path grew meanwhile: the outstanding probe's ack still counts.
		if err := p.OnAck(id, size); err != nil {
			t.Fatalf("the outstanding probe's ack after OnLoss: %v", err)
		}
		if p.MTU() != MaxProbe || p.Stats().Converged {
			t.Fatalf("after the ack: MTU %d (was %d), %+v", p.MTU(), mtu, p.Stats())
		}
		// Then the re-validation of the new MTU, P05's second later.
		if _, _, ok, wait := p.NextProbe(); ok || wait != MinInterval {
			t.Fatalf("re-validation before the interval: ok %v, wait %v", ok, wait)
		}
		time.Sleep(MinInterval)
		size, _, ok, _ = p.NextProbe()
		if !ok || size != MaxProbe {
			t.Fatalf("re-validation: %d bytes, ok %v, %+v", size, ok, p.Stats())
		}

		// Loss during a re-validation is ignored: still one probe out, then
		// one re-validation.
		p.OnLoss()
		if st := p.Stats(); st.Losses != 2 || st.Probes-st.Acks-st.Timeouts != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Over a reliable stream (the TCP overlay) nothing is probed and the MTU is
// the transport's whole limit at once (§7.10).
func TestReliable(t *testing.T) {
	limit := wire.HeaderLen + wire.MaxPayload // 65615, transport.TCPConn.MaxPacket()
	p := New(Config{Limit: limit, Reliable: true})
	if p.MTU() != limit {
		t.Fatalf("MTU %d, want %d", p.MTU(), limit)
	}
	for range 3 {
		if size, id, ok, wait := p.NextProbe(); ok || wait != 0 {
			t.Fatalf("probe over TCP: %d %d %v %v", size, id, ok, wait)
		}
	}
	p.OnLoss()
	if err := p.OnAck(1, 1500); !errors.Is(err, ErrRefused) {
		t.Fatalf("ack over TCP: %v", err)
	}
	if st := p.Stats(); st.MTU != limit || !st.Converged || st.Probes != 0 || st.Refused != 1 || st.Losses != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A datagram link that carries no more than the floor: nothing to search.
func TestLinkAtFloor(t *testing.T) {
	for _, limit := range []int{Floor, 300} {
		p := New(Config{Limit: limit})
		if _, _, ok, wait := p.NextProbe(); ok || wait != 0 || p.MTU() != limit || !p.Stats().Converged {
			t.Fatalf("limit %d: MTU %d, %+v", limit, p.MTU(), p.Stats())
		}
	}
}

// §7.10: ids are never reused. When they run out, probing stops and the MTU
// stays at what was acknowledged.
func TestIDsExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(Config{Limit: 9000})
		p.nextID = math.MaxUint32
		if _, id, ok, _ := p.NextProbe(); !ok || id != math.MaxUint32 {
			t.Fatalf("last id: %d %v", id, ok)
		}
		time.Sleep(ProbeTimeout) // unanswered: a retry would need a new id
		if _, _, ok, wait := p.NextProbe(); ok || wait != 0 || p.MTU() != Floor {
			t.Fatalf("after the last id: ok %v, wait %v, MTU %d", ok, wait, p.MTU())
		}
	})
}

func TestConfigPanics(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no limit":         {},
		"fast probes":      {Limit: 1500, MinInterval: 999 * time.Millisecond},
		"tiny floor":       {Limit: 1500, Floor: wire.ProbeMinSize - 1},
		"negative reprobe": {Limit: 1500, Reprobe: -time.Second},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			New(cfg)
		}()
	}
	// Slower than P05 is allowed.
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{Limit: 9000, MinInterval: 5 * time.Second}, 1500)
		s.runToConvergence(10 * time.Minute)
		for i := 1; i < len(s.sends); i++ {
			if gap := s.sends[i].at.Sub(s.sends[i-1].at); gap < 5*time.Second {
				t.Fatalf("gap %v with MinInterval 5 s", gap)
			}
		}
	})
}

// The answering side: one ack per probe, same id, size as received; after a
// burst of four, at most one per second; never an answer to anything else.
func TestResponder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewResponder(nil)
		probe := wire.Discover{Kind: wire.DiscoverProbe, Size: 1400, ID: 9}
		for i := range AnswerBurst {
			ack, ok := r.Answer(probe)
			if !ok || ack != (wire.Discover{Kind: wire.DiscoverProbeAck, Size: 1400, ID: 9}) {
				t.Fatalf("probe %d of the burst: %+v %v", i, ack, ok)
			}
		}
		if _, ok := r.Answer(probe); ok {
			t.Fatal("fifth probe at once answered")
		}
		for _, k := range []uint8{wire.DiscoverProbeAck, wire.DiscoverPeerExchange, 0} {
			if _, ok := r.Answer(wire.Discover{Kind: k, Size: 1400}); ok {
				t.Fatalf("kind %d answered", k)
			}
		}
		// A peer probing every 100 ms gets one answer per second.
		answered := 0
		for range 100 {
			time.Sleep(100 * time.Millisecond)
			if _, ok := r.Answer(probe); ok {
				answered++
			}
		}
		if answered < 9 || answered > 11 {
			t.Fatalf("%d answers in 10 s", answered)
		}
		// A well-behaved prober (one per second) is always answered.
		r = NewResponder(nil)
		for i := range 100 {
			if _, ok := r.Answer(probe); !ok {
				t.Fatalf("probe %d at 1/s dropped", i)
			}
			time.Sleep(MinInterval)
		}
		if a, d := r.Counts(); a != 100 || d != 0 {
			t.Fatalf("counts %d %d", a, d)
		}
	})
}
