package handshake

import (
	"hash/maphash"
	"net/netip"
	"time"
)

// limiterSlots is the fixed size of the per-prefix token-bucket table. It is
// global state, not per-INIT state, so statelessness holds: an INIT flood
// from many prefixes shares buckets instead of growing a map (handshake.md
// §1.1 P1.7).
const limiterSlots = 4096

// Default per-prefix INIT rate (per second) and burst. wireguard-go allows
// 20/s with a burst of 5 per source; a /24 or /56 holds many hosts, so more.
const (
	DefaultInitRate  = 100
	DefaultInitBurst = 200
)

type bucket struct {
	tokens float64
	last   int64
}

// limiter charges each INIT to its source prefix: /24 for IPv4, /56 for
// IPv6 (DESIGN 2.8). Not safe for concurrent use; the Server locks it.
type limiter struct {
	rate, burst float64
	seed        maphash.Seed
	table       [limiterSlots]bucket
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, seed: maphash.MakeSeed()}
}

// Prefix returns the rate-limit prefix of a: /24 of IPv4, /56 of IPv6.
func Prefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		p, _ := a.Prefix(24)
		return p
	}
	p, _ := a.Prefix(56)
	return p
}

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	if l == nil {
		return true
	}
	p := Prefix(a).Addr().As16()
	b := &l.table[maphash.Bytes(l.seed, p[:])%limiterSlots]
	t := now.UnixNano()
	if b.last == 0 {
		b.tokens = l.burst
	} else if t > b.last {
		b.tokens += float64(t-b.last) / 1e9 * l.rate
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
