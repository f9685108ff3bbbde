package pmtu

import (
	"errors"
	"fmt"
	"time"

	"github.com/pool-go/pool/internal/wire"
)

// The parameters of PROTOCOL.md §7.10.
const (
	// Floor is the lower end of every search, assumed to work on any path
	// and never probed: 512 bytes as a POOL packet (wire.MinMTU), 532 as an
	// IPv4 datagram, below the 576 every IPv4 host must accept.
	Floor = wire.MinMTU
	// MaxProbe is the largest size a probe can name: its size field is 16
	// bits (wire.Discover.Size), so a search never goes above it even when
	// the transport carries more (65615 bytes over TCP).
	MaxProbe = 65535
	// MinInterval is P05's bound: at most one probe per second per peer,
	// retries included. A Config may ask for a slower rate, never a faster.
	MinInterval = time.Second
	// ProbeTimeout is how long a probe waits for its ack before it counts as
	// unanswered.
	ProbeTimeout = 2 * time.Second
	// Tries is the number of unanswered probes of one size (each with a new
	// id) after which the size is declared too big, so that a single lost
	// probe never shrinks the MTU.
	Tries = 3
	// Reprobe is the time after each convergence at which the path is
	// probed again, since it may have grown.
	Reprobe = 60 * time.Second
	// Resolution is the search's stop: it ends when the bounds meet, so
	// the MTU found is exactly the largest size the path carries. (An
	// 8-byte stop would save three probes, up to 18 s of timeouts, for
	// less than 0.6% of a 1280-byte packet; an operator comparing the MTU
	// with the path's would see a wrong number, so we pay them.)
	Resolution = 1
)

// ErrRefused is wrapped by every error OnAck returns: an ack that is not for
// the outstanding probe. PROTOCOL.md §7.10 makes it a counted, ignored event,
// not a protocol error, so the session must not close on it.
var ErrRefused = errors.New("pmtu: probe ack refused")

// Config sets up a Prober. Zero fields take the defaults of PROTOCOL.md §7.10.
type Config struct {
	// Limit is the link limit L: the largest POOL packet the local side
	// can send unfragmented, transport.Conn.MaxPacket() (over raw IPv4, the
	// interface MTU − 20). Required. The search is capped at MaxProbe.
	Limit int
	// Reliable is transport.Conn.Reliable(): over an ordered, lossless
	// stream (the TCP overlay) nothing is probed and MTU() is Limit.
	Reliable bool
	// Floor is where the search starts and what the MTU falls back to;
	// default and normal value the package's Floor (512). A larger floor is
	// an assumption about the path that nothing checks; a smaller one costs
	// throughput. It must be at least wire.ProbeMinSize.
	Floor int
	// ProbeTimeout, default 2 s.
	ProbeTimeout time.Duration
	// Reprobe, default 60 s.
	Reprobe time.Duration
	// MinInterval between two probes, default 1 s. Below 1 s New panics:
	// P05 is a MUST, not a tuning knob.
	MinInterval time.Duration
	// Gate, if set, is shared by every session with the same peer, so that
	// P05's "per peer" holds when a node has several sessions to one peer.
	// Nil: this Prober spaces its own probes, which is per peer when, as
	// usual, one session per peer exists.
	Gate *Gate
	// Now is the clock; default time.Now (fake inside a synctest bubble).
	Now func() time.Time
}

// Stats are a Prober's counters and state. They add up:
//
//	Probes   = Acks + Timeouts + (1 if a probe is outstanding)
//	Timeouts ≥ Tries × TooBig (each size declared too big took Tries timeouts)
type Stats struct {
	MTU       int  // MTU() now
	Converged bool // no search or re-validation running (always true when Reliable)
	Probes    uint64
	Acks      uint64 // accepted acks
	Timeouts  uint64 // probes unanswered within ProbeTimeout
	TooBig    uint64 // sizes declared too big
	Refused   uint64 // acks refused by OnAck (ErrRefused)
	Losses    uint64 // OnLoss calls
}

type phase uint8

const (
	converged  phase = iota // waiting for the re-probe time
	searching               // binary search over [lo, hi]
	validating              // probing the current MTU (after loss, or the 60 s confirm of L)
)

// Prober is the MTU discovery state of one session toward its peer. It is
// not safe for concurrent use: the session's owner goroutine drives it.
type Prober struct {
	floor, limit int // limit: L for the search, ≤ MaxProbe
	timeout      time.Duration
	reprobe      time.Duration
	interval     time.Duration
	gate         *Gate
	now          func() time.Time
	static       bool // nothing to discover: reliable transport, or L ≤ floor

	mtu    int
	phase  phase
	lo, hi int  // searching: the MTU is known ≥ lo (lo == mtu) and believed ≤ hi
	first  bool // searching: the next size is hi itself (step 1 of §7.10)
	tries  int  // unanswered probes of the size under test

	outstanding bool
	outID       uint32
	outSize     int
	outDeadline time.Time
	lossPending bool // OnLoss deferred: a probe was outstanding, or a resumed search had not probed yet

	// A search interrupted by a re-validation, to resume if the MTU holds.
	paused      bool
	pausedHi    int
	pausedFirst bool
	pausedTries int  // the unanswered probes of its size still count
	resumed     bool // the resumed search has not sent its next probe yet

	sentAny   bool
	lastSent  time.Time
	reprobeAt time.Time
	nextID    uint32 // 0 once every id has been used

	st Stats
}

// New returns a Prober whose MTU is the floor, about to probe the link limit
// (or, when Reliable, whose MTU is the link limit, never probing). It panics
// on a Config no session should run with: no Limit, a floor below the
// smallest probe, negative durations, or a MinInterval below P05's 1 s.
func New(cfg Config) *Prober {
	if cfg.Floor == 0 {
		cfg.Floor = Floor
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = ProbeTimeout
	}
	if cfg.Reprobe == 0 {
		cfg.Reprobe = Reprobe
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = MinInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Limit <= 0:
		panic(fmt.Sprintf("pmtu: link limit %d", cfg.Limit))
	case cfg.Floor < wire.ProbeMinSize || cfg.Floor > MaxProbe:
		panic(fmt.Sprintf("pmtu: floor %d outside %d..%d", cfg.Floor, wire.ProbeMinSize, MaxProbe))
	case cfg.ProbeTimeout < 0 || cfg.Reprobe < 0:
		panic("pmtu: negative duration")
	case cfg.MinInterval < MinInterval:
		panic(fmt.Sprintf("pmtu: probe interval %v; P05 allows at most one probe per second", cfg.MinInterval))
	}
	p := &Prober{
		floor: cfg.Floor, limit: min(cfg.Limit, MaxProbe),
		timeout: cfg.ProbeTimeout, reprobe: cfg.Reprobe, interval: cfg.MinInterval,
		gate: cfg.Gate, now: cfg.Now, nextID: 1,
	}
	switch {
	case cfg.Reliable:
		// §7.10: over the TCP overlay TCP discovers the path MTU beneath
		// POOL and any POOL packet goes through. The MTU is the transport's
		// whole limit (65615 over TCP, so DATA may carry the full 65519-byte
		// plaintext of §7.1), not the 16-bit cap of a probe; telemetry
		// saturates it at 65535, which is the value §7.10 says is reported.
		p.static, p.mtu = true, cfg.Limit
	case p.limit <= p.floor:
		// §7.10 is silent on a datagram link that cannot carry more than
		// the floor: there is nothing to search, and the link limit, not
		// the assumed floor, bounds what may be sent.
		p.static, p.mtu = true, p.limit
	default:
		p.mtu = p.floor
		p.startSearch(p.floor, p.limit, time.Time{})
	}
	return p
}

// MTU is the largest POOL packet (header, plaintext and tag) the session may
// send now: the floor until a probe above it is acknowledged (§7.10, "Until
// the search converges the node sends as if the MTU were lo").
func (p *Prober) MTU() int { return p.mtu }

// Stats returns the counters and the current state. It changes nothing: a
// probe whose timeout has passed is counted at the next NextProbe or OnAck.
func (p *Prober) Stats() Stats {
	s := p.st
	s.MTU = p.mtu
	s.Converged = p.static || p.phase == converged
	return s
}

// NextProbe says what to send now. If ok, the caller must send at once a
// PROBE of exactly size bytes with this id; it is recorded as sent now, and
// wait is its timeout. If not ok, wait is how long until something may be
// due (the outstanding probe's timeout, the P05 interval, the re-probe
// time); call again then, or earlier after OnAck or OnLoss. Not ok with a
// zero wait means nothing is scheduled: a reliable transport, a link at the
// floor, or (after 2^32 − 1 probes, 136 years at 1/s) no unused id left.
//
// NextProbe is also the Prober's clock tick: it notices expired probes.
func (p *Prober) NextProbe() (size int, id uint32, ok bool, wait time.Duration) {
	if p.static {
		return 0, 0, false, 0
	}
	now := p.now()
	p.expire(now)
	if p.outstanding {
		// §7.10: at most one probe outstanding.
		return 0, 0, false, p.outDeadline.Sub(now)
	}
	if p.phase == converged {
		if now.Before(p.reprobeAt) {
			return 0, 0, false, p.reprobeAt.Sub(now)
		}
		p.startReprobe(now)
	}
	if p.nextID == 0 {
		// §7.10: "an id is not reused in a session". Stopping is safe: the
		// MTU keeps a value that was acknowledged.
		return 0, 0, false, 0
	}
	// P05, retries included: counted from the previous probe handed out,
	// whatever became of it.
	if p.sentAny {
		if w := p.lastSent.Add(p.interval).Sub(now); w > 0 {
			return 0, 0, false, w
		}
	}
	if p.gate != nil {
		if w := p.gate.reserve(now, p.interval); w > 0 {
			return 0, 0, false, w
		}
	}
	size = p.target()
	id = p.nextID
	p.nextID++ // wraps to 0 after the last id: see above
	p.outstanding, p.outID, p.outSize, p.outDeadline = true, id, size, now.Add(p.timeout)
	p.sentAny, p.lastSent, p.resumed = true, now, false
	p.st.Probes++
	return size, id, true, p.timeout
}

// OnAck takes the id and size of an authenticated PROBE_ACK (the session has
// opened the packet, PROTOCOL.md §6.2, and parsed it with
// wire.ParseDiscover). It is accepted only if it names the outstanding probe
// and that probe's size, before its timeout (P05, §7.10); anything else — a
// late ack, a duplicate, an unknown or guessed id, another size — is refused
// with an error wrapping ErrRefused and counted, and changes nothing. The
// session ignores the error (it is not a protocol error) beyond its
// telemetry. An accepted ack may raise MTU(); call NextProbe afterwards.
//
// Authentication is what makes an ack evidence: an off-path attacker cannot
// produce one. Ids are sequential (§7.10), so the check against the
// outstanding id is not a secret: it stops stale acks, not a lying peer. An
// authenticated peer that acks a probe it never received can only black-hole
// its own session's traffic.
func (p *Prober) OnAck(id uint32, size int) error {
	now := p.now()
	p.expire(now) // an ack at or after the deadline finds no probe outstanding
	var err error
	switch {
	case !p.outstanding:
		err = fmt.Errorf("%w: id %d, no probe outstanding (late, duplicate or unsolicited)", ErrRefused, id)
	case id != p.outID:
		err = fmt.Errorf("%w: id %d, the outstanding probe is %d", ErrRefused, id, p.outID)
	case size != p.outSize:
		err = fmt.Errorf("%w: id %d acks %d bytes, the probe was %d", ErrRefused, id, size, p.outSize)
	}
	if err != nil {
		p.st.Refused++
		return err
	}
	p.outstanding = false
	p.st.Acks++
	p.tries = 0
	switch p.phase {
	case searching:
		p.lo, p.mtu, p.first = size, size, false // size > lo: the MTU only rises in a search
		p.stopIfNarrow(now)
	case validating:
		p.validated(now)
	}
	p.resolved(now)
	return nil
}

// OnLoss reports that the session saw loss of its own packets (outbound
// loss above zero in a telemetry interval, §7.9.3). The path may have
// shrunk: the current MTU is probed again (subject to P05's interval), and
// if that size is declared too big the MTU drops to the floor and the
// search runs over [floor, MTU − 1] (§7.10, "Re-probe after loss").
//
// Until then the MTU is kept, as §7.10 says: loss is usually not an MTU
// problem, and dropping to 512 on every lost packet would cost a whole
// search (a minute or more) of small packets. The price is that after a
// real shrink, packets at the old MTU are lost for up to Tries ×
// ProbeTimeout (6 s) before the MTU falls.
//
// §7.10 is silent on the cases below; the choices:
//   - At the floor, or over a reliable transport, loss is ignored: the floor
//     is assumed to work, so there is nothing to re-validate (a search
//     already running continues).
//   - During a re-validation it is ignored: one is enough.
//   - While a probe is outstanding the re-validation starts after it is
//     answered or times out, so that at most one probe is ever outstanding;
//     an ack in the meantime still counts.
//   - A search running above the floor (the 60 s re-probe upward, or the
//     initial search once it has confirmed something) pauses for the
//     re-validation, since its lower bound is the very size now in doubt.
//     If the MTU holds, the search resumes where it was; if not, it is
//     dropped for the search over [floor, MTU − 1]. Resuming matters on a
//     lossy link, which reports loss in most telemetry intervals: were the
//     search ended instead, each report would stop it for another 60 s. A
//     resumed search sends its next probe before another loss report can
//     pause it again, so however often loss is reported the search still
//     advances at least every other probe.
func (p *Prober) OnLoss() {
	p.st.Losses++
	if p.static || p.mtu <= p.floor || p.phase == validating {
		return
	}
	if p.outstanding || p.resumed {
		p.lossPending = true
		return
	}
	p.startValidate()
}

// target is the size of the next probe.
func (p *Prober) target() int {
	switch {
	case p.phase == validating:
		return p.mtu
	case p.first:
		return p.hi // step 1: "most paths carry the link limit"
	default:
		return p.lo + (p.hi-p.lo+1)/2 // step 2
	}
}

// expire handles the outstanding probe's timeout.
func (p *Prober) expire(now time.Time) {
	if !p.outstanding || now.Before(p.outDeadline) {
		return
	}
	p.outstanding = false
	p.st.Timeouts++
	p.tries++
	if p.tries >= Tries {
		p.tooBig(p.outSize, now)
	}
	p.resolved(now)
}

// tooBig applies "size is too big" (Tries unanswered probes of it).
func (p *Prober) tooBig(size int, now time.Time) {
	p.st.TooBig++
	p.tries = 0
	switch p.phase {
	case searching:
		p.hi, p.first = size-1, false
		p.stopIfNarrow(now)
	case validating:
		// §7.10: the current MTU no longer gets through: drop to the floor
		// and search [floor, MTU − 1]. Step 1 of that search probes MTU − 1,
		// as the search is written; it almost never passes right after MTU
		// failed (PROTOCOL.md could skip it there).
		old := p.mtu
		p.mtu, p.paused = p.floor, false
		p.startSearch(p.floor, old-1, now)
	}
}

// resolved runs after the outstanding probe was answered or timed out: a
// loss report that waited for it starts its re-validation now.
func (p *Prober) resolved(now time.Time) {
	if !p.lossPending {
		return
	}
	p.lossPending = false
	if p.mtu > p.floor && p.phase != validating {
		p.startValidate()
	}
}

func (p *Prober) startSearch(lo, hi int, now time.Time) {
	p.phase, p.lo, p.hi, p.first, p.tries = searching, lo, hi, true, 0
	if hi <= lo {
		p.converge(now)
	}
}

func (p *Prober) startValidate() {
	if p.phase == searching {
		p.paused, p.pausedHi, p.pausedFirst, p.pausedTries = true, p.hi, p.first, p.tries
	}
	p.phase, p.tries = validating, 0
}

// validated ends a successful re-validation: a paused search resumes (its
// lower bound, the MTU, is confirmed again), otherwise the MTU stands.
func (p *Prober) validated(now time.Time) {
	if !p.paused {
		p.converge(now)
		return
	}
	p.paused, p.resumed = false, true
	p.phase, p.lo, p.hi, p.first, p.tries = searching, p.mtu, p.pausedHi, p.pausedFirst, p.pausedTries
	p.stopIfNarrow(now)
}

// startReprobe is the 60 s re-probe (§7.10). Below L the search runs again
// over [MTU, L]; at L one probe of L confirms it. §7.10 is silent on a
// confirmation of L that fails: it is a re-validation like the one after
// loss (three unanswered probes of the size in use mean the path shrank),
// so the MTU drops to the floor and the search runs over [floor, L − 1].
func (p *Prober) startReprobe(now time.Time) {
	if p.mtu >= p.limit {
		p.startValidate()
		return
	}
	p.startSearch(p.mtu, p.limit, now)
}

// stopIfNarrow ends a search whose bounds are less than Resolution apart
// (step 3 of §7.10: MTU = lo).
func (p *Prober) stopIfNarrow(now time.Time) {
	if !p.first && p.hi-p.lo < Resolution {
		p.converge(now)
	}
}

// converge ends a search or a re-validation at the current MTU. §7.10 is
// silent on when the 60 s count starts: at each convergence, so a path is
// re-probed 60 s after it was last settled, whatever settled it.
func (p *Prober) converge(now time.Time) {
	p.phase, p.tries, p.resumed = converged, 0, false
	p.lo, p.hi = p.mtu, p.mtu
	p.reprobeAt = now.Add(p.reprobe)
}
