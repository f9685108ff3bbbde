package config

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// events collects what OnEvent reports.
type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) on(ev Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) get() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.ev...)
}

// confirmedSetup applies cfgA, then cfgB commit-confirmed within w.
func confirmedSetup(t *testing.T, dir string, ev *events, w time.Duration) *Store {
	t.Helper()
	s := openT(t, dir, Options{OnEvent: ev.on})
	if _, err := s.Apply(cfgA, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := s.ApplyConfirmed(cfgB, w, ApplyOptions{Author: "op"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 2 || v.Kind != KindApplyConfirmed {
		t.Fatalf("tentative version %+v", v)
	}
	if !bytes.Equal(readLive(t, s), cfgB) {
		t.Fatal("tentative config is not live")
	}
	return s
}

func checkRolledBack(t *testing.T, s *Store, ev *events) {
	t.Helper()
	if got := readLive(t, s); !bytes.Equal(got, cfgA) {
		t.Fatalf("live = %q, want the exact previous bytes %q", got, cfgA)
	}
	e := ev.get()
	if len(e) != 1 || e[0].Kind != EventRolledBack || e[0].Err != nil || e[0].Version.Number != 3 ||
		e[0].Version.RollbackOf != 1 || e[0].Pending.Version != 2 || e[0].Pending.Previous != 1 {
		t.Fatalf("events %+v", e)
	}
	cur, _ := s.Current()
	if cur.Number != 3 || cur.Kind != KindAutoRollback || cur.SHA256 != s.History()[0].SHA256 {
		t.Fatalf("Current = %+v", cur)
	}
	if _, ok := s.Pending(); ok {
		t.Fatal("still pending after the rollback")
	}
	if _, err := os.Stat(s.pendingPath()); !os.IsNotExist(err) {
		t.Fatal("pending.json still there")
	}
	if _, err := s.Confirm(); !errors.Is(err, ErrNoPending) {
		t.Fatalf("Confirm after the rollback: %v", err)
	}
}

func TestConfirmedRollsBackAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		s := confirmedSetup(t, t.TempDir(), &ev, 2*time.Minute)
		p, ok := s.Pending()
		if !ok || p.Version != 2 || p.Previous != 1 || !p.Deadline.Equal(time.Now().Add(2*time.Minute)) {
			t.Fatalf("Pending = %+v, %v", p, ok)
		}
		// Only one change may be pending.
		if _, err := s.ApplyConfirmed(cfgC, time.Minute, ApplyOptions{}); !errors.Is(err, ErrPending) {
			t.Fatalf("second ApplyConfirmed: %v", err)
		}
		if _, err := s.Apply(cfgC, ApplyOptions{}); !errors.Is(err, ErrPending) {
			t.Fatalf("Apply while pending: %v", err)
		}

		time.Sleep(2*time.Minute - time.Nanosecond)
		synctest.Wait()
		if !bytes.Equal(readLive(t, s), cfgB) || len(ev.get()) != 0 {
			t.Fatal("rolled back before the deadline")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		checkRolledBack(t, s, &ev)
		// Changes are accepted again.
		if _, err := s.Apply(cfgC, ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfirmKeeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		s := confirmedSetup(t, t.TempDir(), &ev, 2*time.Minute)
		time.Sleep(2*time.Minute - time.Second)
		p, err := s.Confirm()
		if err != nil || p.Version != 2 {
			t.Fatalf("Confirm = %+v, %v", p, err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if !bytes.Equal(readLive(t, s), cfgB) || len(ev.get()) != 0 {
			t.Fatal("a confirmed change was rolled back")
		}
		if _, err := os.Stat(s.pendingPath()); !os.IsNotExist(err) {
			t.Fatal("pending.json still there after Confirm")
		}
		if _, err := s.Confirm(); !errors.Is(err, ErrNoPending) {
			t.Fatalf("second Confirm: %v", err)
		}
		if cur, _ := s.Current(); cur.Number != 2 {
			t.Fatalf("Current = %d", cur.Number)
		}
	})
}

func TestExplicitRollbackEndsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		s := confirmedSetup(t, t.TempDir(), &ev, time.Minute)
		v, err := s.Rollback(0, ApplyOptions{})
		if err != nil || v.RollbackOf != 1 {
			t.Fatalf("Rollback = %+v, %v", v, err)
		}
		if _, ok := s.Pending(); ok {
			t.Fatal("still pending")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(ev.get()) != 0 || len(s.History()) != 3 {
			t.Fatalf("the deadline fired after an explicit rollback: %+v", ev.get())
		}
	})
}

func TestRestartAfterDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var ev events
		s := confirmedSetup(t, dir, &ev, time.Minute)
		s.Close() // the process dies; the deadline passes while it is down
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if len(ev.get()) != 0 || !bytes.Equal(readLive(t, s), cfgB) {
			t.Fatal("a closed store acted")
		}
		s = openT(t, dir, Options{OnEvent: ev.on})
		// Rolled back during Open, before it returned.
		checkRolledBack(t, s, &ev)
	})
}

func TestRestartBeforeDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var ev events
		s := confirmedSetup(t, dir, &ev, 2*time.Minute)
		deadline := time.Now().Add(2 * time.Minute)
		time.Sleep(30 * time.Second)
		s.Close()
		time.Sleep(30 * time.Second)
		s = openT(t, dir, Options{OnEvent: ev.on})
		p, ok := s.Pending()
		if !ok || p.Version != 2 || !p.Deadline.Equal(deadline) {
			t.Fatalf("after restart Pending = %+v, %v", p, ok)
		}
		if cur, _ := s.Current(); cur.Number != 2 {
			t.Fatalf("Current = %d", cur.Number)
		}
		// The timer is re-armed for the time that remains (60 s).
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if !bytes.Equal(readLive(t, s), cfgB) || len(ev.get()) != 0 {
			t.Fatal("rolled back before the deadline")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		checkRolledBack(t, s, &ev)
	})
}

func TestRestartThenConfirm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var ev events
		s := confirmedSetup(t, dir, &ev, 2*time.Minute)
		s.Close()
		s = openT(t, dir, Options{OnEvent: ev.on})
		if _, err := s.Confirm(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		s.Close()
		s = openT(t, dir, Options{OnEvent: ev.on})
		if _, ok := s.Pending(); ok || len(ev.get()) != 0 || !bytes.Equal(readLive(t, s), cfgB) {
			t.Fatal("a change confirmed after a restart did not stay")
		}
	})
}

// A tampered previous version is never applied by the deadline either:
// the tentative one stays live and pending, and the failure is reported.
func TestAutoRollbackRefusesTamperedHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		s := confirmedSetup(t, t.TempDir(), &ev, time.Minute)
		os.WriteFile(s.bytesPath(1), []byte("allow_any = true\n"), 0o600)
		time.Sleep(time.Minute)
		synctest.Wait()
		e := ev.get()
		var ie *IntegrityError
		if len(e) != 1 || e[0].Kind != EventRollbackFailed || !errors.As(e[0].Err, &ie) || ie.Version != 1 {
			t.Fatalf("events %+v", e)
		}
		if !bytes.Equal(readLive(t, s), cfgB) {
			t.Fatal("live file changed")
		}
		if _, ok := s.Pending(); !ok {
			t.Fatal("no longer pending")
		}
		if len(s.History()) != 2 {
			t.Fatal("a version was recorded")
		}
	})
}

// fakeTimer never fires: with it and a settable Now, a Confirm can arrive
// after the deadline but before the timer.
type fakeTimer struct{}

func (fakeTimer) Stop() bool { return true }

func TestConfirmTooLate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ev events
	s := openT(t, t.TempDir(), Options{
		OnEvent:   ev.on,
		Now:       func() time.Time { return now },
		AfterFunc: func(time.Duration, func()) Timer { return fakeTimer{} },
	})
	s.Apply(cfgA, ApplyOptions{})
	if _, err := s.ApplyConfirmed(cfgB, time.Minute, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyConfirmed(cfgB, 0, ApplyOptions{}); err == nil {
		t.Fatal("a zero window accepted")
	}
	now = now.Add(time.Minute)
	if _, err := s.Confirm(); !errors.Is(err, ErrConfirmTooLate) {
		t.Fatalf("late Confirm: %v", err)
	}
	checkRolledBack(t, s, &ev)
}

func TestApplyConfirmedNeedsAPreviousVersion(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	if _, err := s.ApplyConfirmed(cfgA, time.Minute, ApplyOptions{}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("ApplyConfirmed on an empty store: %v", err)
	}
}

// A crash after pending.json was written but before the tentative bytes
// reached the live file: the tentative version never went live, so Open
// drops the pending record and records what is live.
func TestRestartTentativeNeverLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var ev events
		s := confirmedSetup(t, dir, &ev, time.Minute)
		s.Close()
		os.WriteFile(s.LiveFile(), cfgA, 0o600)
		s = openT(t, dir, Options{OnEvent: ev.on})
		if _, ok := s.Pending(); ok {
			t.Fatal("pending kept although its version is not live")
		}
		e := ev.get()
		if len(e) != 1 || e[0].Kind != EventRecovered || e[0].Version.Number != 3 {
			t.Fatalf("events %+v", e)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(ev.get()) != 1 || !bytes.Equal(readLive(t, s), cfgA) {
			t.Fatal("a dropped pending change acted")
		}
	})
}
