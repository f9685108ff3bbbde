package session

import (
	"errors"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/pmtu"
	"github.com/pool-go/pool/internal/wire"
)

// Path MTU discovery (PROTOCOL.md §7.10). Over the TCP overlay nothing is
// probed: TCP finds the path MTU beneath POOL. Over a datagram transport
// the session starts at 512 bytes and raises its MTU only on an
// acknowledged probe, so no DATA is ever sent above what the path carried.
// Both kinds of transport answer probes. All of it is guarded by s.mu.
type discovery struct {
	prober *pmtu.Prober // nil over TCP
	resp   *pmtu.Responder
	timer  *time.Timer
}

func (s *Session) startDiscovery() {
	s.disc.resp = pmtu.NewResponder(time.Now)
	if s.reliable {
		return
	}
	s.disc.prober = pmtu.New(pmtu.Config{Limit: s.conn.MaxPacket(), Reliable: false})
	startTimer(&s.disc.timer, time.Second, s.probeTick)
}

// probeTick sends the probe the search wants now, once the peer has shown
// it speaks the layer (§7.7), and re-arms for the prober's next moment.
func (s *Session) probeTick() {
	if !s.peerSpeaksLayer() {
		s.rearmProbe(time.Second)
		return
	}
	s.mu.Lock()
	if s.err != nil || s.closing {
		s.mu.Unlock()
		return
	}
	size, id, ok, wait := s.disc.prober.NextProbe()
	s.setMTULocked(s.disc.prober.MTU()) // a timed-out size may lower it
	if ok {
		buf := bufpool.Get(size)
		wire.AppendDiscover((*buf)[:wire.HeaderLen], &wire.Discover{Kind: wire.DiscoverProbe, Size: uint16(size), ID: id})
		s.out.notices = append(s.out.notices, outPkt{buf: buf, n: wire.ProbePlaintextLen(uint16(size)), typ: wire.TypeDiscover})
		s.out.wake()
	}
	s.mu.Unlock()
	if wait <= 0 {
		wait = time.Second
	}
	s.rearmProbe(wait)
}

func (s *Session) rearmProbe(d time.Duration) {
	select {
	case <-s.done:
	default:
		s.disc.timer.Reset(d)
	}
}

// onDiscover answers a probe or hands an ack to the search. Acks that do
// not match the outstanding probe are counted by the prober, never fatal.
func (s *Session) onDiscover(pt []byte) error {
	d, err := wire.ParseDiscover(pt)
	if err != nil {
		return s.protocolError(err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch d.Kind {
	case wire.DiscoverProbe:
		if ack, ok := s.disc.resp.Answer(d); ok && !s.closing {
			buf := bufpool.Get(wire.HeaderLen + wire.ProbeAckLen + wire.TagLen)
			wire.AppendDiscover((*buf)[:wire.HeaderLen], &ack)
			s.out.notices = append(s.out.notices, outPkt{buf: buf, n: wire.ProbeAckLen, typ: wire.TypeDiscover})
			s.out.wake()
		}
	case wire.DiscoverProbeAck:
		if s.disc.prober == nil {
			return nil // we never probe over TCP: nothing to match
		}
		if err := s.disc.prober.OnAck(d.ID, int(d.Size)); err != nil && !errors.Is(err, pmtu.ErrRefused) {
			return s.protocolError(err.Error())
		}
		s.setMTULocked(s.disc.prober.MTU())
	}
	return nil // PEER_EXCHANGE: reserved for a later layer
}

// onOutboundLoss tells the search that our packets are being lost: the
// path may have shrunk (§7.10 "Re-probe after loss"). Probes are meant to
// be lost when too big, so loss they explain (probes never acked) does not
// count, or every search would restart itself.
func (s *Session) onOutboundLoss(lostTotal uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc.prober == nil {
		return
	}
	st := s.disc.prober.Stats()
	if lostTotal > st.Probes-st.Acks {
		s.disc.prober.OnLoss()
	}
}

// MTUStats describes path MTU discovery.
type MTUStats = pmtu.Stats

// PathMTU returns the session's MTU and, over a datagram transport, the
// state of its search.
func (s *Session) PathMTU() (int, MTUStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disc.prober == nil {
		return s.mtu(), MTUStats{MTU: s.mtu(), Converged: true}
	}
	return s.mtu(), s.disc.prober.Stats()
}

// ProbeAnswers counts the peer's probes this side answered and those it
// dropped for arriving faster than one per second (§7.10, P05).
func (s *Session) ProbeAnswers() (answered, dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disc.resp.Counts()
}
