package pmtu

import (
	"sync"
	"time"
)

// Gate spaces the probes of every session a node holds with one peer, so
// that P05's "at most one probe per second per peer" holds across them. The
// node keeps one Gate per peer identity and puts it in each of that peer's
// sessions' Config; the zero Gate is ready. It is safe for concurrent use
// (sessions run on their own goroutines).
type Gate struct {
	mu   sync.Mutex
	used bool
	last time.Time
}

// reserve takes the gate for a probe sent now, or returns how long to wait.
func (g *Gate) reserve(now time.Time, interval time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used {
		if w := g.last.Add(interval).Sub(now); w > 0 {
			return w
		}
	}
	g.used, g.last = true, now
	return 0
}
