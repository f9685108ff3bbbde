package session

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// stateLog collects a session's OnEvent reports.
type stateLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *stateLog) add(ev Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }

func (l *stateLog) get() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

// waitEvents waits until l holds an event that done accepts.
func (l *stateLog) wait(t *testing.T, what string, done func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := l.get()
		if done(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: events %+v", what, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkOverloadEvents: starts and ends alternate, all of one side, and
// the last is an end (the pause is over once everything was read).
func checkOverloadEvents(t *testing.T, who string, evs []Event, local bool) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("%s: %d overload events, want a start and an end: %+v", who, len(evs), evs)
	}
	for i, ev := range evs {
		want := EventOverloadStart
		if i%2 == 1 {
			want = EventOverloadEnd
		}
		if ev.Kind != want || ev.Local != local {
			t.Fatalf("%s: event %d is %v (local %v), want %v (local %v): %+v", who, i, ev.Kind, ev.Local, want, local, evs)
		}
		if want == EventOverloadStart && ev.Pause != time.Second {
			t.Errorf("%s: start asks for %v, want 1s", who, ev.Pause)
		}
	}
	if len(evs)%2 != 0 {
		t.Fatalf("%s: overload never ended: %+v", who, evs)
	}
}

// TestOverloadEvents: a receiver past its high-water mark reports that it
// signaled OVERLOAD and lifted it; the sender reports being paused and
// resumed; both in order (draft §11: state transitions are journaled).
func TestOverloadEvents(t *testing.T) {
	var cl, sl stateLog
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	cli := New(cc, ce, Config{OnEvent: cl.add})
	srv := New(sc, se, Config{OverloadHighWater: 256 << 10, OnEvent: sl.add})
	defer closeBoth(cli, srv)
	waitConfirmed(t, srv)

	ch, err := cli.OpenChannel(-1)
	if err != nil {
		t.Fatal(err)
	}
	go func() { ch.Write(make([]byte, 4<<20)); ch.CloseWrite() }()
	cl.wait(t, "the sender is told to pause", func(evs []Event) bool { return len(evs) > 0 })
	sch, err := srv.AcceptChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, sch); n != 4<<20 || err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	ended := func(evs []Event) bool { return len(evs)%2 == 0 }
	checkOverloadEvents(t, "receiver", sl.wait(t, "receiver lifts its OVERLOAD", ended), true)
	checkOverloadEvents(t, "sender", cl.wait(t, "sender resumes", ended), false)
}

// TestIntegrityEvents: the first correct proof is reported once, not
// every later one.
func TestIntegrityEvents(t *testing.T) {
	var cl stateLog
	ce, se := handshakePair(t)
	cc, sc := tcpPair(t)
	cli, srv := New(cc, ce, Config{OnEvent: cl.add}), New(sc, se, Config{})
	defer closeBoth(cli, srv)
	waitConfirmed(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if err := cli.VerifyIntegrity(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // any further event would be queued by now
	if evs := cl.get(); len(evs) != 1 || evs[0].Kind != EventIntegrityVerified {
		t.Fatalf("events after three verifications: %+v", evs)
	}
}

// checkMTUEvents: each change starts where the one before ended, from the
// 512-byte floor to the path's size.
func checkMTUEvents(t *testing.T, evs []Event, path int) {
	t.Helper()
	prev := wire.MinMTU
	for i, ev := range evs {
		if ev.Kind != EventMTU {
			continue // INTEGRITY reports its own
		}
		if ev.PrevMTU != prev || ev.MTU == prev {
			t.Fatalf("event %d: %+v after MTU %d; all %+v", i, ev, prev, evs)
		}
		prev = ev.MTU
	}
	if prev != path {
		t.Fatalf("MTU events end at %d, path carries %d: %+v", prev, path, evs)
	}
}
