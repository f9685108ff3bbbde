package pmtu

import (
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// Answering probes (PROTOCOL.md §7.10, "Answer"): one PROBE_ACK per probe,
// with the same id and the size as received; probes arriving faster than
// one per second on average, after a burst of four, MAY be dropped.
const (
	AnswerInterval = time.Second
	AnswerBurst    = 4
)

// Responder answers the peer's probes for one session. Like the Prober it
// sees only authenticated packets: the session opens a DISCOVER before
// parsing it. An ack is 104 bytes whatever the probe's size, so answering
// amplifies nothing; the rate limit only keeps a misbehaving but
// authenticated peer from making this node send an ack per packet. Not
// safe for concurrent use.
type Responder struct {
	now      func() time.Time
	tat      time.Time // theoretical arrival time of the next conforming probe (GCRA)
	answered uint64
	dropped  uint64
}

// NewResponder returns a Responder reading the clock now (default time.Now).
func NewResponder(now func() time.Time) *Responder {
	if now == nil {
		now = time.Now
	}
	return &Responder{now: now}
}

// Answer returns the PROBE_ACK for a parsed PROBE, or false if the probe
// came too soon after the previous ones and is dropped (counted, not an
// error). wire.ParseDiscover has already checked that the probe's size
// field equals the packet's size (80 + its length field), so echoing the
// field is echoing the size as received. Anything but a PROBE gets false.
func (r *Responder) Answer(probe wire.Discover) (wire.Discover, bool) {
	if probe.Kind != wire.DiscoverProbe {
		return wire.Discover{}, false
	}
	now := r.now()
	t := r.tat
	if t.Before(now) {
		t = now
	}
	if t.Sub(now) > (AnswerBurst-1)*AnswerInterval {
		r.dropped++
		return wire.Discover{}, false
	}
	r.tat = t.Add(AnswerInterval)
	r.answered++
	return wire.Discover{Kind: wire.DiscoverProbeAck, Size: probe.Size, ID: probe.ID}, true
}

// Counts returns how many probes were answered and dropped.
func (r *Responder) Counts() (answered, dropped uint64) { return r.answered, r.dropped }
