package seal

import "testing"

func TestWindowReplay(t *testing.T) {
	var w Window
	commit := func(s uint64) {
		t.Helper()
		if !w.Check(s) {
			t.Fatalf("fresh seq %d refused", s)
		}
		w.Commit(s)
	}
	commit(1000)
	if w.Check(1000) {
		t.Fatal("duplicate accepted")
	}
	commit(1002)
	commit(1001) // reordered, inside the window
	if w.Check(1001) {
		t.Fatal("duplicate of reordered packet accepted")
	}
	commit(1000 + WindowSize)
	if w.Check(1000) {
		t.Fatal("seq exactly W below highest accepted (N02: older than highest-W must be dropped)")
	}
	if !w.Check(1003) {
		t.Fatal("unseen seq inside the window refused")
	}
	// Slide far: everything old is out of the window.
	commit(1_000_000)
	for _, s := range []uint64{1000, 1001, 1_000_000 - WindowSize} {
		if w.Check(s) {
			t.Fatalf("seq %d below the window accepted", s)
		}
	}
	if !w.Check(1_000_000 - WindowSize + 1) {
		t.Fatal("oldest seq inside the window refused")
	}
}

// TestWindowNoAliasing checks every distance: a packet seen at seq s must be
// refused as long as it stays inside the window, whatever the slide.
func TestWindowNoAliasing(t *testing.T) {
	for step := uint64(1); step < 3*WindowSize; step += 37 {
		var w Window
		w.Commit(5)
		w.Commit(5 + step)
		if w.Check(5) {
			t.Fatalf("step %d: replay of seq 5 accepted", step)
		}
	}
}

// TestWindowCheckIsReadOnly: an unauthenticated packet must never move the
// window (handshake.md §4.4 step 8), so Check alone changes nothing.
func TestWindowCheckIsReadOnly(t *testing.T) {
	var w Window
	w.Commit(10)
	w.Check(1 << 40)
	if !w.Check(11) || w.Highest() != 10 {
		t.Fatal("Check modified the window")
	}
}
