package bridge

import (
	"sync/atomic"
	"time"
)

// Counters are one route's totals, updated as connections come and go.
type Counters struct {
	conns     atomic.Uint64 // connections accepted (tcp2pool) or requested (pool2tcp)
	active    atomic.Int64  // connections now open
	refused   atomic.Uint64 // refused by the far side's status, or by our policy
	errors    atomic.Uint64 // connections that ended in an error (reset)
	bytesUp   atomic.Uint64 // from the TCP client towards the target
	bytesDown atomic.Uint64 // from the target back to the client
}

// RouteStats is a snapshot of a route's Counters.
type RouteStats struct {
	Route     string `json:"route"`
	Peer      string `json:"peer,omitempty"`
	Conns     uint64 `json:"connections"`
	Active    int64  `json:"active"`
	Refused   uint64 `json:"refused"`
	Errors    uint64 `json:"errors"`
	BytesUp   uint64 `json:"bytes_up"`
	BytesDown uint64 `json:"bytes_down"`
	Sessions  int    `json:"sessions,omitempty"`
}

func (c *Counters) snapshot(route string) RouteStats {
	return RouteStats{Route: route, Conns: c.conns.Load(), Active: c.active.Load(),
		Refused: c.refused.Load(), Errors: c.errors.Load(),
		BytesUp: c.bytesUp.Load(), BytesDown: c.bytesDown.Load()}
}

// ConnEvent describes one bridged connection once it has ended; the CLI
// logs it, a node writes it to its journal.
type ConnEvent struct {
	Route    string
	Client   string // the TCP client (tcp2pool) or the POOL peer (pool2tcp)
	Target   Target
	Up, Down uint64 // bytes client → target and back
	Duration time.Duration
	Status   Status // the far side's answer (StatusOK when it connected)
	Err      error  // nil for a clean close in both directions
}
