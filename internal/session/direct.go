package session

import (
	"errors"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// maxDirect is the largest DATA a Write seals and sends on its own
// goroutine. Above it the writer goroutine keeps the work, so a bulk
// writer copies its next chunk while the last one is sealed.
const maxDirect = 4 << 10

// directOKLocked: p may skip the queue and be sent by the caller at once,
// because the writer has nothing that must go before it. A lone small
// message then costs no hand-off to the writer goroutine (one goroutine
// switch less per message at each end). Only DATA qualifies, and only
// when nothing is queued (order), no control packet is pending (window
// grants, notices, telemetry), no rekey step is due (keys and the REKEY
// switch point belong to the writer, §5.4) and the peer has not asked
// for a pause (PROTOCOL.md §7.13).
func (s *Session) directOKLocked(p *outPkt) bool {
	rk := &s.rk
	return p.typ == wire.TypeData && p.flags == 0 && p.n <= maxDirect &&
		len(s.out.items) == 0 && len(s.out.notices) == 0 && s.out.creditN == 0 &&
		!s.out.forceAck && !s.out.heartbeat && !s.closing &&
		rk.nextSend == nil && rk.ack == nil && !rk.stalled &&
		(rk.pending || rk.responding || !s.rekeyDueLocked()) &&
		!s.pausedLocked()
}

// sendDirect seals and writes p with sendMu held (taken by enqueue) and
// releases it. A failed write ends the session as the writer's would.
func (s *Session) sendDirect(p outPkt) {
	if s.sendNext >= SeqLimit {
		s.sendMu.Unlock()
		bufpool.Put(p.buf)
		s.fail(errors.New("pool: sequence space exhausted (P01); session closed"))
		return
	}
	pkt := s.sealPacket(p)
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	s.direct[0] = pkt
	err := s.conn.WritePackets(s.direct[:])
	s.direct[0] = nil
	s.lastSendAt.Store(int64(s.monotonic()))
	bufpool.Put(p.buf)
	s.sendMu.Unlock()
	if err != nil {
		s.writeFailed(err)
		return
	}
	if s.sendOnKey.Load() >= s.cfg.RekeyPackets {
		// This packet used up the key (§5.4): the writer starts the
		// rekey now, before anything else is sealed, as it would have
		// after sending the packet itself.
		s.out.wake()
	}
}
