package seal

// WindowSize is the raw-IP anti-replay window in packets (DESIGN 2.7; N02
// asks for at least 64).
const WindowSize = 4096

// ringWords holds one word more than the window needs, so the word being
// recycled as the window slides can never still hold a bit inside the
// window (the same trick as wireguard-go's replay filter).
const ringWords = WindowSize/64 + 1

// Window is a sliding anti-replay bitmap for a datagram transport
// (handshake.md §7.4). Check is read-only; Commit runs only after the packet
// authenticated, so a forgery can never move the window (§4.4 step 8).
type Window struct {
	highest uint64
	started bool
	bits    [ringWords]uint64
}

// Check reports whether seq is fresh: above the highest seen, or less than
// WindowSize below it and not yet seen. Anything older is a replay (N02).
func (w *Window) Check(seq uint64) bool {
	if !w.started || seq > w.highest {
		return true
	}
	if w.highest-seq >= WindowSize {
		return false
	}
	return w.bits[(seq/64)%ringWords]&(1<<(seq%64)) == 0
}

// Commit marks seq as received. Call only after Check(seq) passed and the
// packet fully authenticated.
func (w *Window) Commit(seq uint64) {
	switch {
	case !w.started:
		w.started = true
		w.highest = seq
	case seq > w.highest:
		if seq-w.highest >= WindowSize+64 {
			w.bits = [ringWords]uint64{}
		} else {
			for i := w.highest/64 + 1; i <= seq/64; i++ {
				w.bits[i%ringWords] = 0
			}
		}
		w.highest = seq
	}
	w.bits[(seq/64)%ringWords] |= 1 << (seq % 64)
}

// Highest returns the highest committed sequence number.
func (w *Window) Highest() uint64 { return w.highest }
