package session

import (
	"fmt"
	"sync"
	"time"
)

// Session state events for the node's change journal (draft §10-§11:
// every state transition is recorded): the path MTU changing, OVERLOAD
// starting and ending in either direction, and the INTEGRITY check's
// outcome changing. They happen under the session's lock, often on the
// receive path, while journaling fsyncs; so they are queued and delivered
// in order by one goroutine, never blocking the session.

// EventKind says what changed.
type EventKind uint8

// Session events.
const (
	// EventMTU: the path MTU changed (MTU, PrevMTU).
	EventMTU EventKind = iota + 1
	// EventOverloadStart: this side asked the peer to pause (Local), or
	// the peer asked this side to (Pause is what it asked for).
	EventOverloadStart
	// EventOverloadEnd: the pause this side asked for is lifted (Local),
	// or the peer lifted its own.
	EventOverloadEnd
	// EventIntegrityVerified: the peer answered an INTEGRITY challenge
	// correctly for the first time, or again after a timeout. Later
	// correct answers are counted (IntegrityStats), not reported.
	EventIntegrityVerified
	// EventIntegrityTimeout: a challenge went unanswered (§7.12). A wrong
	// proof ends the session instead (Config.OnIntegrityFailure).
	EventIntegrityTimeout
	// EventDropped: over a datagram transport, Count packets were dropped
	// for Reason since the last report (draft §11: "POOL never silently
	// drops packets"). Reported at most once a second per reason; over
	// TCP a packet that fails is the end of the session instead.
	EventDropped
)

var eventNames = [...]string{"", "mtu", "overload-start", "overload-end", "integrity-verified", "integrity-timeout", "dropped"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is one session state change.
type Event struct {
	Kind    EventKind
	Local   bool          // overload: this side is the overloaded one
	MTU     int           // EventMTU: the new MTU
	PrevMTU int           // EventMTU: the MTU before
	Pause   time.Duration // EventOverloadStart: the pause asked for
	Reason  DropReason    // EventDropped
	Count   uint64        // EventDropped
}

// DropReason says why a datagram was dropped.
type DropReason uint8

// Drop reasons (PROTOCOL.md §6.2).
const (
	// DropUnexpected: a type the session does not take, or another
	// session's ID: anyone can send those.
	DropUnexpected DropReason = iota
	// DropReplay: a sequence number already seen, too old for the replay
	// window, or before the session's first.
	DropReplay
	// DropAuth: the AEAD tag or the HMAC did not verify.
	DropAuth
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"unexpected", "replay", "auth"}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropReasonNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", r)
}

// dropReports batches drop reports: the first drop after a quiet second
// arms a one-second timer, and the counts go out when it fires (or when
// the session ends), so a flood costs one event per reason per second.
type dropReports struct {
	mu     sync.Mutex
	counts [numDropReasons]uint64
	timer  *time.Timer
}

// drop counts a dropped datagram and schedules its report.
func (s *Session) drop(r DropReason) {
	s.dropped.Add(1)
	if s.cfg.OnEvent == nil {
		return
	}
	d := &s.drops
	d.mu.Lock()
	d.counts[r]++
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Second, s.reportDrops)
	}
	d.mu.Unlock()
}

// reportDrops emits the counts gathered since the last report.
func (s *Session) reportDrops() {
	d := &s.drops
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	for r, n := range d.counts {
		if n > 0 {
			s.emit(Event{Kind: EventDropped, Reason: DropReason(r), Count: n})
		}
	}
	d.counts = [numDropReasons]uint64{}
}

// maxPendingEvents bounds the queue if the consumer stalls (a journal on a
// hung disk): further events are counted in Dropped, not kept.
const maxPendingEvents = 1024

type eventQueue struct {
	mu       sync.Mutex
	pending  []Event
	draining bool
	dropped  uint64
}

// emit queues ev for Config.OnEvent. Safe under s.mu.
func (s *Session) emit(ev Event) {
	f := s.cfg.OnEvent
	if f == nil {
		return
	}
	q := &s.events
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= maxPendingEvents {
		q.dropped++
		return
	}
	q.pending = append(q.pending, ev)
	if !q.draining {
		q.draining = true
		go s.drainEvents(f)
	}
}

func (s *Session) drainEvents(f func(Event)) {
	q := &s.events
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.draining = false
			q.mu.Unlock()
			return
		}
		ev := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		f(ev)
	}
}

// EventsDropped counts events not delivered because OnEvent fell more
// than maxPendingEvents behind.
func (s *Session) EventsDropped() uint64 {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	return s.events.dropped
}

// setMTULocked records a new path MTU, reporting a change.
func (s *Session) setMTULocked(mtu int) {
	if prev := int(s.mtuBytes.Swap(int64(mtu))); prev != mtu {
		s.emit(Event{Kind: EventMTU, MTU: mtu, PrevMTU: prev})
	}
}
