package handshake

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// MinDifficulty is the P11 floor: a puzzle always costs at least 2^16 hashes.
const MinDifficulty = 16

// DefaultClientMaxDifficulty caps what a forged CHALLENGE can make a client
// spend: 2^24 steps, about 2 s of one core (handshake.md §6).
const DefaultClientMaxDifficulty = 24

// MaxClientDifficulty bounds the configurable cap: 2^28 steps is already
// about half a minute of one core (handshake.md §6).
const MaxClientDifficulty = 28

// LeadingZeros counts the leading zero bits of SHA-256(SID || N), MSB-first
// from byte 0 (handshake.md §6, vectors note 20, PROTOCOL.md §12.2).
func LeadingZeros(sid *[16]byte, n *[16]byte) int {
	var in [32]byte
	copy(in[:16], sid[:])
	copy(in[16:], n[:])
	sum := sha256.Sum256(in[:])
	z := 0
	for i := 0; i < len(sum); i += 8 {
		w := binary.BigEndian.Uint64(sum[i : i+8])
		if w != 0 {
			return z + bits.LeadingZeros64(w)
		}
		z += 64
	}
	return z
}

// PuzzleOK reports whether N solves the puzzle seeded by sid at difficulty d.
func PuzzleOK(sid *[16]byte, n *[16]byte, d uint8) bool {
	return LeadingZeros(sid, n) >= int(d)
}

// nonceFor encodes the search counter as N = BE128(k) (vectors note 20, PROTOCOL.md §12.2).
func nonceFor(k uint64) (n [16]byte) {
	binary.BigEndian.PutUint64(n[8:], k)
	return n
}

// Solve finds a nonce with at least d leading zero bits. It splits the
// counter space across workers (worker w tries k ≡ w mod workers), so with
// one worker it returns the smallest k, as the golden vectors do. It stops
// when ctx is done and then returns ctx.Err().
func Solve(ctx context.Context, sid [16]byte, d uint8, workers int) ([16]byte, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		found atomic.Bool
		once  sync.Once
		res   [16]byte
		wg    sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			for i := uint64(0); ; i++ {
				if i&0x3ff == 0 && (found.Load() || ctx.Err() != nil) {
					return
				}
				n := nonceFor(start + i*uint64(workers))
				if PuzzleOK(&sid, &n, d) {
					once.Do(func() { res = n; found.Store(true) })
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	if !found.Load() {
		return res, ctx.Err()
	}
	return res, nil
}
