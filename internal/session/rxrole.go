package session

import (
	"errors"
	"os"
	"time"
)

// The read role: who reads the transport and runs the receive path.
//
// Normally the session's reader goroutine does, and a Read waiting for
// data is woken by it. For a request/response exchange that costs a
// goroutine hand-off per message, and on two cores each hand-off wakes a
// second OS thread: the exchange spreads over both threads, every hop
// between them a futex or epoll wake-up (docs/PERFORMANCE.md, "Where the
// latency goes"). So when the reader delivers DATA to a Read that is
// waiting, it lends the role to the channels and parks: the next Read
// that finds nothing buffered reads the transport itself, runs the same
// receive path (handle, §4.4 order) and returns with its data, as a TLS
// connection's Read does. The role stays lent while Reads keep using it;
// the reader takes it back when asked (a Write waiting for credit, a Read
// that will not read, an error) or when no Read has used it for a
// lendCheck period, so packets nobody waits for (ACK credit, CLOSE,
// REKEY, telemetry) wait at most two periods.
//
// rxMu is held by whoever is in ReadPacket and handle; the receive state
// (opener, recvNext, replay window, telemetry replica) is guarded by it.
// A Read holding the role blocked in the transport is interrupted (its
// channel closed or reset, a read deadline set) by a past transport read
// deadline, the kick; ReadPacket resumes its frame afterwards.

// defaultLendCheck is how often the parked reader looks whether the lent
// role is still in use (Session.lendCheck; tests lengthen it).
const defaultLendCheck = time.Millisecond

// lendAfterLocked is called (rxMu held) when handle delivered DATA to a
// Read that is waiting without a deadline: the role is lent after it.
func (s *Session) lendAfterLocked() {
	if s.reliable {
		s.lendNext = true
	}
}

// reclaimRole asks the parked reader to take the role back: someone waits
// for a packet that no Read will fetch.
func (s *Session) reclaimRole() {
	if s.lent.Load() && s.lent.CompareAndSwap(true, false) {
		signal(s.rxBack)
	}
}

// waitRoleBack parks the reader while the role is lent. It returns false
// when the session ended.
func (s *Session) waitRoleBack() bool {
	used := s.rxUsed.Load()
	s.rxTimer.Reset(time.Duration(s.lendCheck.Load()))
	defer s.rxTimer.Stop()
	for s.lent.Load() {
		select {
		case <-s.rxBack:
		case <-s.done:
			return false
		case <-s.rxTimer.C:
			if u := s.rxUsed.Load(); u != used {
				used = u
				s.rxTimer.Reset(time.Duration(s.lendCheck.Load()))
				continue
			}
			s.lent.Store(false)
		}
	}
	return true
}

// setReadDeadline sets the session's own transport read deadline (the
// confirmation timeout, the drain after CLOSE); a kick restores it.
func (s *Session) setReadDeadline(t time.Time) {
	s.rdMu.Lock()
	s.rdDeadline = t
	_ = s.conn.SetReadDeadline(t)
	s.rdMu.Unlock()
}

// kickReader interrupts a Read that holds the role blocked in the
// transport.
func (s *Session) kickReader() {
	s.rdMu.Lock()
	s.kick = true
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	s.rdMu.Unlock()
}

// kicked reports whether err is a kick, not a real deadline, and if so
// restores the session's deadline. Whoever reads next sees it, so a kick
// that arrives after its Read left is absorbed by the next reader.
func (s *Session) kicked(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	s.rdMu.Lock()
	defer s.rdMu.Unlock()
	if !s.kick {
		return false
	}
	s.kick = false
	_ = s.conn.SetReadDeadline(s.rdDeadline)
	return true
}

// readAsReader is a Read of c running the receive path itself while the
// role is lent. It returns once c has something for the Read (data, FIN,
// reset, close, a deadline set) or the role must go back; false if it
// could not take the role.
func (c *Channel) readAsReader() bool {
	s := c.s
	if !s.lent.Load() || !s.rxMu.TryLock() {
		return false
	}
	if !s.lent.Load() { // taken back (or the session ended) meanwhile
		s.rxMu.Unlock()
		return false
	}
	s.rxUsed.Add(1)
	c.mu.Lock()
	c.rxHolding = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.rxHolding = false
		c.mu.Unlock()
		s.rxMu.Unlock()
	}()
	for {
		p, err := s.conn.ReadPacket()
		if err != nil {
			if s.kicked(err) {
				return true
			}
			// The reader goroutine judges transport errors (readFailed).
			s.rxErr = err
			s.lent.Store(false)
			signal(s.rxBack)
			return true
		}
		s.lendNext = false
		switch err := s.handle(p); err {
		case nil:
		case errClosing, errDrained:
			// A CLOSE is queued: the reader goroutine drains.
			if err == errDrained {
				s.rxErr = err
			}
			s.lent.Store(false)
			signal(s.rxBack)
			return true
		default:
			s.fail(err)
			return true
		}
		c.mu.Lock()
		ready := c.buffered > 0 || c.remoteFIN || c.resetErr != nil || c.closed || !c.rdeadline.IsZero()
		c.mu.Unlock()
		if ready {
			return true
		}
		s.mu.Lock()
		closing := s.closing || s.err != nil
		s.mu.Unlock()
		if closing {
			s.lent.Store(false) // the reader goroutine drains
			signal(s.rxBack)
			return true
		}
	}
}
