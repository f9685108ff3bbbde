package selftest

import (
	"context"
	crand "crypto/rand"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// failLog records onFail calls.
type failLog struct {
	mu   sync.Mutex
	errs []error
}

func (f *failLog) record(err error) { f.mu.Lock(); f.errs = append(f.errs, err); f.mu.Unlock() }

func (f *failLog) get() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestMonitorNotHealthyBeforeStart(t *testing.T) {
	m := NewMonitor(0, nil, nil)
	if m.Healthy() || m.Runs() != 0 || m.LastErr() != nil || m.every != DefaultEvery {
		t.Fatal("fresh Monitor claims health or history")
	}
}

// TestMonitorRunsPeriodically: one round at Start, then one per period, on
// synctest's fake clock.
func TestMonitorRunsPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var fl failLog
		m := NewMonitor(time.Minute, NewSource(nil), fl.record)
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if !m.Healthy() || m.Runs() != 1 {
			t.Fatalf("after Start: healthy %v, runs %d", m.Healthy(), m.Runs())
		}
		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		if !m.Healthy() || m.Runs() != 11 || m.LastErr() != nil || len(fl.get()) != 0 {
			t.Fatalf("after 10 min: healthy %v, runs %d, err %v", m.Healthy(), m.Runs(), m.LastErr())
		}
		cancel()
		<-m.Done()
		time.Sleep(time.Hour)
		if m.Runs() != 11 {
			t.Fatal("ran after ctx was cancelled")
		}
	})
}

// TestMonitorLatchesKATFailure: a primitive that starts answering wrongly
// mid-life is caught at the next round; the Monitor reports it once, stops,
// and stays unhealthy even if the primitive "recovers".
func TestMonitorLatchesKATFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fl failLog
		m := NewMonitor(time.Minute, nil, fl.record)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		if m.Runs() != 4 || !m.Healthy() {
			t.Fatalf("runs %d healthy %v", m.Runs(), m.Healthy())
		}

		setCorrupt(t, PrimX25519)
		time.Sleep(time.Minute)
		synctest.Wait()
		var ke *KATError
		if m.Healthy() || !errors.As(m.LastErr(), &ke) || ke.Primitive != PrimX25519 {
			t.Fatalf("healthy %v, err %v", m.Healthy(), m.LastErr())
		}
		if m.Runs() != 5 || !isClosed(m.Done()) {
			t.Fatalf("runs %d, done %v", m.Runs(), isClosed(m.Done()))
		}
		if errs := fl.get(); len(errs) != 1 || errs[0] != m.LastErr() {
			t.Fatalf("onFail calls: %v", errs)
		}

		corruptHook.Store(nil) // the primitive "recovers"
		time.Sleep(time.Hour)
		if m.Healthy() || m.Runs() != 5 || m.Check() != m.LastErr() || len(fl.get()) != 1 {
			t.Fatal("Monitor recovered from a latched failure")
		}
	})
}

// TestMonitorFailsAtStart: a node whose primitives are wrong from the
// start is never healthy and never starts its loop.
func TestMonitorFailsAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		setCorrupt(t, PrimPacketSeal)
		var fl failLog
		m := Start(t.Context(), time.Minute, fl.record)
		var ke *KATError
		if m.Healthy() || !errors.As(m.LastErr(), &ke) || ke.Primitive != PrimPacketSeal {
			t.Fatalf("healthy %v, err %v", m.Healthy(), m.LastErr())
		}
		if !isClosed(m.Done()) || len(fl.get()) != 1 || m.Runs() != 1 {
			t.Fatal("loop started or onFail not called once")
		}
	})
}

// TestMonitorReactsToSourceAtOnce: when a consumer's read trips the health
// tests, the Monitor goes unhealthy without waiting for its next period.
func TestMonitorReactsToSourceAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := &switchReader{good: crand.Reader, badR: constReader(0)}
		src := NewSource(sr)
		var fl failLog
		m := NewMonitor(time.Hour, src, fl.record)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		sr.bad.Store(true)
		if _, err := src.Read(make([]byte, 32)); err == nil {
			t.Fatal("stuck source passed")
		}
		synctest.Wait() // no fake time passes
		var he *HealthError
		if m.Healthy() || !errors.As(m.LastErr(), &he) || he.Test != TestRCT {
			t.Fatalf("healthy %v, err %v", m.Healthy(), m.LastErr())
		}
		if m.Runs() != 2 || len(fl.get()) != 1 || !isClosed(m.Done()) {
			t.Fatalf("runs %d, onFail %d", m.Runs(), len(fl.get()))
		}
	})
}

// TestMonitorProbesIdleSource: the periodic probe read finds a generator
// that broke while nobody was drawing from it.
func TestMonitorProbesIdleSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sr := &switchReader{good: crand.Reader, badR: constReader(0xee)}
		m := NewMonitor(time.Minute, NewSource(sr), nil)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		sr.bad.Store(true)
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		var he *HealthError
		if m.Healthy() || !errors.As(m.LastErr(), &he) || he.Value != 0xee {
			t.Fatalf("healthy %v, err %v", m.Healthy(), m.LastErr())
		}
	})
}

func TestMonitorStartTwicePanics(t *testing.T) {
	m := NewMonitor(time.Minute, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); <-m.Done() }()
	m.Start(ctx)
	defer func() {
		if recover() == nil {
			t.Fatal("second Start did not panic")
		}
	}()
	m.Start(ctx)
}
