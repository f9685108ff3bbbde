package node

import (
	"sync"
	"time"
)

// logRate lets a repeated warning through once per interval per key and
// counts what it held back, so that a peer retrying with an unauthorized
// key cannot flood the log (the journal of issue 5 will aggregate the same
// way). Its memory is bounded: past maxKeys distinct keys it starts over.
type logRate struct {
	interval time.Duration
	maxKeys  int

	mu   sync.Mutex
	seen map[string]*logRateEntry
}

type logRateEntry struct {
	last       time.Time
	suppressed uint64
}

func newLogRate(interval time.Duration, maxKeys int) *logRate {
	return &logRate{interval: interval, maxKeys: maxKeys, seen: make(map[string]*logRateEntry)}
}

// allow reports whether to log key's event now, and how many of its events
// were held back since it last did.
func (r *logRate) allow(key string, now time.Time) (ok bool, suppressed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.seen[key]
	if e == nil {
		if len(r.seen) >= r.maxKeys {
			clear(r.seen)
		}
		r.seen[key] = &logRateEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) < r.interval {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	return true, suppressed
}
