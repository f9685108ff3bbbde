package session

import (
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// Backpressure beyond the credit windows (DESIGN 2.12, PROTOCOL.md §7.13):
// a node whose unread data passes a high-water mark tells the peer to
// pause with an OVERLOAD notice, before it would shed anything; the peer
// holds its DATA (writes block, nothing accepted by Write is dropped) and
// keeps everything else flowing.
const (
	// DefaultOverloadPause is the pause an OVERLOAD asks for.
	DefaultOverloadPause = time.Second
	// DefaultOverloadHighWater is the unread data, over all channels of a
	// session, at which it sends OVERLOAD; below half of it, it resumes.
	DefaultOverloadHighWater = 64 << 20
)

// overload is both sides of the notice, guarded by Session.mu.
type overload struct {
	// We are overloaded: unread bytes and whether we told the peer.
	unread   int64
	signaled bool
	// waiting counts Reads blocked on an empty channel. While one waits,
	// holding the sender could deadlock (the data it waits for may be
	// what is held), so no OVERLOAD is sent then, and one in force is
	// lifted.
	waiting int
	repeat  *time.Timer
	sent    uint64 // OVERLOAD notices sent

	// The peer is overloaded: hold DATA until then (monotonic ns).
	pausedUntil time.Duration
	wakeTimer   *time.Timer
	peerPaused  bool   // EventOverloadStart reported for the peer, no end yet
	received    uint64 // OVERLOAD notices received
}

// noteUnread tracks unread bytes as channels buffer and consume data; past
// the high-water mark it queues an OVERLOAD, below half of it a resume.
func (s *Session) noteUnread(delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s.ov
	o.unread += int64(delta)
	high := int64(s.cfg.OverloadHighWater)
	switch {
	case !o.signaled && o.unread > high && o.waiting == 0:
		if s.queueNoticeLocked(wire.OverloadPause(s.cfg.OverloadPause)) {
			o.signaled = true
			s.emit(Event{Kind: EventOverloadStart, Local: true, Pause: s.cfg.OverloadPause})
			// Repeat every P/2 while still over (§7.13).
			o.repeat = time.AfterFunc(s.cfg.OverloadPause/2, s.overloadRepeat)
		}
	case o.signaled && o.unread < high/2:
		s.resumeLocked()
	}
}

// resumeLocked lifts an OVERLOAD in force.
func (s *Session) resumeLocked() {
	o := &s.ov
	o.signaled = false
	if o.repeat != nil {
		o.repeat.Stop()
	}
	s.queueNoticeLocked(0)
	s.emit(Event{Kind: EventOverloadEnd, Local: true})
}

// readWaiting is called by a Read that found its channel empty (+1) and
// when it stops waiting (-1).
func (s *Session) readWaiting(delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ov.waiting += delta
	if s.ov.waiting > 0 && s.ov.signaled {
		s.resumeLocked()
	}
}

func (s *Session) overloadRepeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || !s.ov.signaled {
		return
	}
	if s.ov.waiting > 0 {
		s.resumeLocked()
		return
	}
	s.queueNoticeLocked(wire.OverloadPause(s.cfg.OverloadPause))
	s.ov.repeat.Reset(s.cfg.OverloadPause / 2)
}

// queueNoticeLocked queues an OVERLOAD notice ahead of queued DATA; false
// if none can be sent (yet).
func (s *Session) queueNoticeLocked(pause uint16) bool {
	if s.err != nil || s.closing || !s.peerSpeaksLayer() {
		return false // a peer without the layer would not act on it (§7.7)
	}
	buf := bufpool.Get(wire.HeaderLen + wire.NoticeLen + wire.TagLen)
	wire.AppendNotice((*buf)[:wire.HeaderLen], &wire.Notice{Code: wire.CodeOverload, Pause: pause})
	s.out.notices = append(s.out.notices, outPkt{buf: buf, n: wire.NoticeLen, typ: wire.TypeHeartbeat})
	s.ov.sent++
	s.out.wake()
	return true
}

// onNotice acts on a peer's notice: OVERLOAD pauses our DATA.
func (s *Session) onNotice(n wire.Notice) {
	if n.Code != wire.CodeOverload {
		return // FRAG_TIMEOUT and later codes: informational
	}
	now := time.Duration(s.monotonic())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ov.received++
	if n.Pause == 0 {
		s.ov.pausedUntil = 0
		s.peerOverloadEndLocked()
		s.out.wake()
		return
	}
	d := time.Duration(n.Pause) * time.Millisecond
	s.ov.pausedUntil = now + d
	if !s.ov.peerPaused {
		s.ov.peerPaused = true
		s.emit(Event{Kind: EventOverloadStart, Pause: d})
	}
	if s.ov.wakeTimer == nil {
		s.ov.wakeTimer = time.AfterFunc(d, s.peerPauseExpired)
	} else {
		s.ov.wakeTimer.Reset(d)
	}
	s.log.Debug("peer overloaded: holding DATA", "pause", d)
}

// peerPauseExpired: the peer's pause ran out without a repeat (it stops
// repeating once under its mark, or it went silent): DATA flows again.
func (s *Session) peerPauseExpired() {
	s.mu.Lock()
	if !s.pausedLocked() {
		s.peerOverloadEndLocked()
	}
	s.mu.Unlock()
	s.out.wake()
}

func (s *Session) peerOverloadEndLocked() {
	if s.ov.peerPaused {
		s.ov.peerPaused = false
		s.emit(Event{Kind: EventOverloadEnd})
	}
}

// pausedLocked reports whether the peer asked us to hold DATA.
func (s *Session) pausedLocked() bool {
	return s.ov.pausedUntil != 0 && time.Duration(s.monotonic()) < s.ov.pausedUntil
}

// OverloadStats counts the notices of each side.
type OverloadStats struct {
	Sent, Received uint64
	Paused         bool  // we are holding DATA for the peer now
	Unread         int64 // bytes received and not yet read, all channels
}

// Overload returns the session's backpressure state.
func (s *Session) Overload() OverloadStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return OverloadStats{Sent: s.ov.sent, Received: s.ov.received, Paused: s.pausedLocked(), Unread: s.ov.unread}
}
