package session

import (
	"errors"
	"os"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// outPkt is a packet waiting for its sequence number: its plaintext sits at
// buf[80:80+n], with room for the tag behind it.
type outPkt struct {
	buf  *[]byte
	n    int
	typ  wire.Type
	ch   uint8
	last bool // the session CLOSE: nothing follows it
	// telemetry marks a HEARTBEAT whose plaintext is written at sealing
	// (PROTOCOL.md §7.9 "Filled in at sealing").
	telemetry bool
	flags     uint16 // 0: ENCRYPTED; fragments carry FRAGMENT / LAST_FRAG
}

// sendQueue is the session's outgoing queue, guarded by Session.mu. DATA
// and channel CLOSEs share one ordered queue (a FIN must follow its
// channel's data); window grants are merged into one ACK sent ahead of it.
type sendQueue struct {
	items, spare []outPkt
	bytes        int
	credit       [NumChannels]uint32
	creditN      int
	forceAck     bool
	heartbeat    bool // a telemetry HEARTBEAT is due
	notices      []outPkt
	sig          chan struct{}
	space        chan struct{} // closed when queue space frees; nil if nobody waits
}

func (q *sendQueue) init() { q.sig = make(chan struct{}, 1) }

// wake nudges the writer; safe without the lock.
func (q *sendQueue) wake() {
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

func (q *sendQueue) push(p outPkt) {
	q.items = append(q.items, p)
	q.bytes += p.n
}

func (q *sendQueue) grant(ch uint8, n uint32) {
	if q.credit[ch] == 0 {
		q.creditN++
	}
	q.credit[ch] += n
	q.wake()
}

func (q *sendQueue) dropCredit(ch uint8) {
	if q.credit[ch] != 0 {
		q.credit[ch] = 0
		q.creditN--
	}
}

func (q *sendQueue) pushClose(ch uint8, c *wire.Close) {
	pt := wire.AppendClose(make([]byte, 0, wire.CloseFixedLen+wire.MaxReasonLen), c)
	buf := bufpool.Get(wire.HeaderLen + len(pt) + wire.TagLen)
	copy((*buf)[wire.HeaderLen:], pt)
	q.push(outPkt{buf: buf, n: len(pt), typ: wire.TypeClose, ch: ch, last: c.Scope == wire.ScopeSession})
}

// discard drops queued packets (an abort, or a dead session).
func (q *sendQueue) discard() {
	for i := range q.items {
		bufpool.Put(q.items[i].buf)
	}
	clear(q.items)
	q.items = q.items[:0]
	q.bytes = 0
	q.freed()
}

func (q *sendQueue) freed() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// enqueue queues one DATA or channel CLOSE, waiting while the session's
// queue is over its byte budget: a writer faster than the network blocks
// here instead of growing memory.
func (s *Session) enqueue(p outPkt, deadline time.Time) error {
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			bufpool.Put(p.buf)
			return s.err
		}
		if s.closing {
			err := s.closingErrLocked()
			s.mu.Unlock()
			bufpool.Put(p.buf)
			return err
		}
		if s.directOKLocked(&p) && s.sendMu.TryLock() {
			s.mu.Unlock()
			s.sendDirect(p)
			return nil
		}
		if s.out.bytes == 0 || s.out.bytes+p.n <= maxQueuedBytes {
			s.out.push(p)
			s.mu.Unlock()
			s.out.wake()
			return nil
		}
		if s.out.space == nil {
			s.out.space = make(chan struct{})
		}
		space := s.out.space
		s.mu.Unlock()
		if err := waitFor(space, deadline, s.done); err != nil {
			bufpool.Put(p.buf)
			return err
		}
	}
}

// waitFor blocks until sig fires, done closes, or the deadline passes.
func waitFor(sig <-chan struct{}, deadline time.Time, done <-chan struct{}) error {
	if deadline.IsZero() {
		select {
		case <-sig:
		case <-done:
		}
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return ErrTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sig:
	case <-done:
	case <-t.C:
		return ErrTimeout
	}
	return nil
}

// Batching limits: coalesce up to this many packets or bytes per write.
const (
	maxBatchPackets = 64
	maxBatchBytes   = 1 << 20
)

// writeLoop owns the send keys and the send sequence (shared only with a
// Write sending directly, under sendMu): it numbers, seals and writes
// packets in one order, so seq order is wire order (handshake.md §4.2).
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	// The writer holds sendMu while it has work and lets go of it while
	// it sleeps, so a Write may then send by itself (direct.go).
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	defer func() { s.sealer.Close() }() // the send keys die with the writer
	var (
		batch     = make([][]byte, 0, maxBatchPackets)
		held      = make([]*[]byte, 0, maxBatchPackets)
		batchSize int
		ackPT     = make([]byte, 0, wire.WindowUpdateLen*NumChannels)
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		err := s.conn.WritePackets(batch)
		s.lastSendAt.Store(int64(s.monotonic()))
		for _, b := range held {
			bufpool.Put(b)
		}
		clear(batch)
		clear(held)
		batch, held, batchSize = batch[:0], held[:0], 0
		return err
	}
	emit := func(p outPkt) error {
		if s.sendNext >= SeqLimit {
			return errors.New("pool: sequence space exhausted (P01); session closed")
		}
		pkt := s.sealPacket(p)
		batch = append(batch, pkt)
		held = append(held, p.buf)
		batchSize += len(pkt)
		if len(batch) == maxBatchPackets || batchSize >= maxBatchBytes {
			return flush()
		}
		return nil
	}
	for {
		s.mu.Lock()
		var ctl *rekeyCtl
		for {
			if s.err != nil {
				s.mu.Unlock()
				return
			}
			var err error
			if ctl, err = s.rekeyStepLocked(); err != nil {
				s.mu.Unlock()
				s.fail(err)
				return
			}
			// While our REKEY_INIT is unanswered nothing else may be
			// sealed: the peer expects it under keys we do not have yet.
			if ctl != nil || !s.rk.stalled && (s.itemsSendableLocked() || len(s.out.notices) > 0 ||
				s.out.creditN > 0 || s.out.forceAck || s.out.heartbeat) {
				break
			}
			s.mu.Unlock()
			s.sendMu.Unlock()
			<-s.out.sig
			s.sendMu.Lock()
			s.mu.Lock()
		}
		if ctl != nil {
			s.mu.Unlock()
			buf := bufpool.Get(wire.HeaderLen + wire.RekeyLen + wire.TagLen)
			wire.AppendRekey((*buf)[:wire.HeaderLen], &ctl.msg)
			err := emit(outPkt{buf: buf, n: wire.RekeyLen, typ: wire.TypeRekey})
			if err == nil {
				err = flush()
			}
			if err != nil {
				s.writeFailed(err)
				return
			}
			if ctl.after != nil {
				s.switchSend(ctl.after) // REKEY_ACK sent at y: new keys from y+1
			}
			continue
		}
		// While the peer asked for a pause (OVERLOAD, PROTOCOL.md §7.13)
		// DATA waits, and everything queued behind it, so order holds;
		// what precedes the first DATA (FINs, RSTs) still goes.
		items := s.out.items
		if s.pausedLocked() && !s.closing {
			k := 0
			for k < len(items) && items[k].typ != wire.TypeData {
				k++
			}
			held := items[k:]
			items = append(s.out.spare[:0], items[:k]...)
			s.out.items = held
			s.out.spare = nil
			s.out.bytes = 0
			for _, h := range held {
				s.out.bytes += h.n
			}
		} else {
			s.out.items, s.out.spare = s.out.spare[:0], nil
			s.out.bytes = 0
			s.out.freed()
		}
		notices := s.out.notices
		s.out.notices = nil
		ackPT = ackPT[:0]
		if s.out.creditN > 0 {
			for ch, n := range s.out.credit {
				if n > 0 {
					ackPT = wire.AppendWindowUpdate(ackPT, wire.WindowUpdate{Channel: uint8(ch), Gen: s.gen[ch], Credit: n})
					s.out.credit[ch] = 0
				}
			}
			s.out.creditN = 0
		}
		sendAck := len(ackPT) > 0 || s.out.forceAck
		s.out.forceAck = false
		heartbeat := s.out.heartbeat
		s.out.heartbeat = false
		s.mu.Unlock()

		var err error
		for _, n := range notices {
			if err == nil {
				err = emit(n)
			} else {
				bufpool.Put(n.buf)
			}
		}
		if sendAck && err == nil {
			// Window updates in as many ACKs as the MTU needs (at 512
			// bytes, 52 entries each); never a packet above the MTU.
			per := s.maxPlaintext() / wire.WindowUpdateLen * wire.WindowUpdateLen
			for rest := ackPT; err == nil; {
				part := rest[:min(len(rest), per)]
				rest = rest[len(part):]
				buf := bufpool.Get(wire.HeaderLen + len(part) + wire.TagLen)
				copy((*buf)[wire.HeaderLen:], part)
				err = emit(outPkt{buf: buf, n: len(part), typ: wire.TypeAck})
				if len(rest) == 0 {
					break
				}
			}
		}
		// After the ACK: the client's empty ACK is its confirming first
		// packet (PROTOCOL.md §4.11).
		if heartbeat && err == nil {
			err = emit(s.telemetryPacket())
		}
		last := false
		for i := range items {
			if err != nil {
				bufpool.Put(items[i].buf)
				continue
			}
			err = emit(items[i])
			last = last || items[i].last
		}
		if err == nil {
			err = flush()
		}
		clear(items)
		s.mu.Lock()
		s.out.spare = items[:0]
		s.mu.Unlock()
		if err != nil {
			s.writeFailed(err)
			return
		}
		if last {
			s.afterClose()
			return
		}
	}
}

// itemsSendableLocked: queued packets exist and the peer's OVERLOAD pause
// does not hold the first of them.
func (s *Session) itemsSendableLocked() bool {
	if len(s.out.items) == 0 {
		return false
	}
	return s.closing || s.out.items[0].typ != wire.TypeData || !s.pausedLocked()
}

// sealPacket writes the header of p and seals it in place.
func (s *Session) sealPacket(p outPkt) []byte {
	flags, ack, ts := wire.FlagEncrypted, s.lastRecv.Load(), s.monotonic()
	if p.flags != 0 {
		flags = p.flags
	}
	if p.telemetry {
		_, ack = s.fillTelemetry((*p.buf)[wire.HeaderLen:wire.HeaderLen], s.sendNext, ts)
		flags = wire.FlagsTelemetry | s.configFlags() // ROLLBACK_READY, CONFIG_LOCKED (§7.15)
	}
	b := (*p.buf)[:wire.HeaderLen+p.n]
	wire.PutHeader(b, &wire.Header{Version: wire.Version1, Type: p.typ, Flags: flags,
		Seq: s.sendNext, Ack: ack, SID: s.sid, Timestamp: ts,
		Length: uint16(p.n + wire.TagLen), Channel: p.ch})
	s.noteSent(&p)
	s.sendNext++
	s.sendOnKey.Add(1)
	s.stats.pktOut.Add(1)
	if p.typ == wire.TypeData {
		s.stats.bytesOut.Add(uint64(p.n))
	}
	return s.sealer.Seal(b)
}

func (s *Session) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.fail(ErrWriteStalled)
		return
	}
	s.mu.Lock()
	dead := s.err != nil
	s.mu.Unlock()
	if !dead {
		s.fail(err)
	}
}

// afterClose runs once the session CLOSE is on the wire: half-close the
// transport so the CLOSE is not lost to a reset, and let the reader drain
// until the peer closes too (or briefly, at most).
func (s *Session) afterClose() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := s.conn.(closeWriter); ok && cw.CloseWrite() == nil {
		s.setReadDeadline(time.Now().Add(DefaultDrainTimeout))
		return
	}
	s.fail(s.localCloseErr())
}
