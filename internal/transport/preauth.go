package transport

import (
	"net/netip"
	"sync"

	"github.com/pool-go/pool/internal/handshake"
)

// Pre-authentication caps (DESIGN 2.8). Over TCP a server is not stateless:
// each accepted connection holds a socket, a goroutine and buffers until its
// handshake ends, so their number is capped globally and per source prefix.
const (
	DefaultMaxPreAuth          = 1024
	DefaultMaxPreAuthPerPrefix = 64
)

// PreAuthLimiter counts connections that have not finished their handshake.
type PreAuthLimiter struct {
	max, perPrefix int
	mu             sync.Mutex
	total          int
	byPrefix       map[netip.Prefix]int
}

// NewPreAuthLimiter builds a limiter; zero values take the defaults.
func NewPreAuthLimiter(max, perPrefix int) *PreAuthLimiter {
	if max <= 0 {
		max = DefaultMaxPreAuth
	}
	if perPrefix <= 0 {
		perPrefix = DefaultMaxPreAuthPerPrefix
	}
	return &PreAuthLimiter{max: max, perPrefix: perPrefix, byPrefix: make(map[netip.Prefix]int)}
}

// Acquire admits a connection from a, or refuses it when either cap is hit.
// The map holds one entry per prefix with a live connection, so it is
// bounded by max.
func (l *PreAuthLimiter) Acquire(a netip.Addr) bool {
	p := handshake.Prefix(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.byPrefix[p] >= l.perPrefix {
		return false
	}
	l.total++
	l.byPrefix[p]++
	return true
}

// Release ends a connection's pre-auth phase.
func (l *PreAuthLimiter) Release(a netip.Addr) {
	p := handshake.Prefix(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byPrefix[p]--; l.byPrefix[p] <= 0 {
		delete(l.byPrefix, p)
	}
}

// InUse reports the connections currently in their handshake.
func (l *PreAuthLimiter) InUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
