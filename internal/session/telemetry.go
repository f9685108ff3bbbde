package session

import (
	"fmt"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// Heartbeat defaults (draft §8, PROTOCOL.md §7.9).
const (
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultHeartbeatMisses: a peer silent for this many heartbeat
	// intervals is dead (the 30 s idle timeout of §7.8).
	DefaultHeartbeatMisses = 6
	// echoRing is how many of our own telemetry HEARTBEATs we remember to
	// match the peer's echoes (PROTOCOL.md §7.9.3).
	echoRing = 8
)

// Measurements are one side's figures for a session (PROTOCOL.md §7.9.3).
type Measurements struct {
	RTT, Jitter    time.Duration
	LossPPM        uint32 // loss of packets travelling toward the side measuring
	ThroughputBps  uint64 // bits/s received, whole packets
	OutLossPPM     uint32 // derived: loss of our packets, from the peer's counters
	OutThroughput  uint64 // derived: bits/s the peer received from us
	MTU            int
	RTTSamples     uint64
	HeartbeatsSent uint64
	HeartbeatsRecv uint64
}

// PeerReport is the last telemetry the peer sent about itself, as sent.
type PeerReport struct {
	At            time.Duration // our session clock when it arrived; 0 = none yet
	RTT, Jitter   time.Duration
	LossPPM       uint32
	ThroughputBps uint32
	MTU           uint16
	QueueDepth    uint16
	Uptime        time.Duration
	RekeyCount    uint32
	ConfigVersion uint32
	JournalHead   uint64
	RxPackets     uint64
	RxBytes       uint64
}

// Telemetry is a session's two views, side by side and never mixed: what
// this side measured itself and what the peer reported (draft §8: "each
// side a view it can cross-check against the other's reported values").
type Telemetry struct {
	Local         Measurements
	Peer          PeerReport
	DigestChecks  uint64 // peer state digests verified
	Anomalies     uint64 // cross-check disagreements (counted, not fatal)
	LastAnomaly   string
	ChannelsOpen  int
	ChannelsStats []ChannelStats // per open channel
}

// ChannelStats are one channel's counters.
type ChannelStats struct {
	ID                       uint8
	BytesSent, BytesReceived uint64
	Buffered                 int // received, not yet read
}

// telemetry is the session's heartbeat state. The transmit digest fields
// belong to the writer, the replica to the reader; what both touch is
// under mu.
type telemetry struct {
	// Writer-owned: our transmit state (PROTOCOL.md §7.9.2).
	tx          wire.DigestState
	txDataBytes uint64
	// Reader-owned: the replica of the peer's transmit state.
	rx          wire.DigestState
	rxDataBytes uint64

	mu sync.Mutex
	// Ours, sealed: to match the peer's echoes.
	sent     [echoRing]struct{ seq, ts uint64 }
	sentN    int
	lastEcho uint64 // the last echoed seq we took a sample from
	// The peer's last telemetry HEARTBEAT: what we echo.
	peerSeq, peerTS uint64
	peerAt          time.Duration
	// Inbound counters, updated with hi (the ack field) as one.
	hi, rxPackets, rxBytes uint64
	lastRTT                time.Duration
	// Our previous telemetry, for interval loss and throughput.
	prevHi, prevRx, prevRxBytes uint64
	prevAt                      time.Duration
	// Measurements and the peer's report.
	local   Measurements
	peer    PeerReport
	peerAck uint64 // header ack of the peer's previous telemetry
	// outLostTotal sums our packets lost by the peer's counters.
	outLostTotal uint64
	digests      uint64
	anomalies    uint64
	lastAnomly   string
}

// heartbeatTick queues a telemetry HEARTBEAT; the writer fills it in when
// it seals it (PROTOCOL.md §7.9 "Filled in at sealing").
func (s *Session) heartbeatTick() {
	s.mu.Lock()
	if s.err == nil && !s.closing && s.isConfirmed() {
		s.out.heartbeat = true
	}
	s.mu.Unlock()
	s.out.wake()
	select {
	case <-s.done:
	default:
		s.hbTimer.Reset(s.heartbeatInterval())
	}
}

// fillTelemetry builds the plaintext of the telemetry HEARTBEAT that will
// be sealed at seq, in the writer, after every packet sealed before it. It
// returns the ack the header must carry: rx_packets counts up to it.
func (s *Session) fillTelemetry(dst []byte, seq, ts uint64) ([]byte, uint64) {
	now := time.Duration(ts) // the header's timestamp: the peer echoes it
	t := &s.tele
	t.tx.Seq = seq
	t.tx.DataBytesSent = t.txDataBytes
	s.mu.Lock()
	queued := len(s.out.items)
	rekeys := s.rk.rekeys
	s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	hi := t.hi
	m := &t.local
	var loss uint32
	if expected := hi - t.prevHi; t.prevHi != 0 && expected > 0 {
		got := t.rxPackets - t.prevRx
		if got < expected {
			loss = uint32((expected - got) * 1e6 / expected)
		}
	}
	var bps uint64
	if t.prevAt != 0 && now > t.prevAt {
		bps = (t.rxBytes - t.prevRxBytes) * 8 * uint64(time.Second) / uint64(now-t.prevAt)
	}
	m.LossPPM, m.ThroughputBps = loss, bps
	t.prevHi, t.prevRx, t.prevRxBytes, t.prevAt = hi, t.rxPackets, t.rxBytes, now
	m.HeartbeatsSent++
	m.MTU = s.mtu()
	var echoDelay uint64
	if t.peerSeq != 0 {
		echoDelay = uint64(now - t.peerAt)
	}
	t.sent[t.sentN%echoRing] = struct{ seq, ts uint64 }{seq, uint64(now)}
	t.sentN++
	return wire.AppendTelemetry(dst, &wire.Telemetry{
		RTTNs: uint64(m.RTT), JitterNs: uint64(m.Jitter), LossPPM: loss, ThroughputBps: uint32(min(bps, 1<<32-1)),
		MTU: uint16(min(m.MTU, 65535)), QueueDepth: uint16(min(queued, 65535)), UptimeNs: uint64(now),
		RekeyCount: uint32(rekeys), ConfigVersion: s.configVersion(), StateDigest: wire.StateDigest(&t.tx), JournalHead: s.journalHead(),
		EchoSeq: t.peerSeq, EchoTimestamp: t.peerTS, EchoDelayNs: echoDelay,
		RxPackets: t.rxPackets, RxBytes: t.rxBytes,
	}), hi
}

// mtu is the session's path MTU: over the TCP overlay the largest packet
// the peer accepts (PROTOCOL.md §7.10), reported as at most 65535.
func (s *Session) mtu() int {
	if c := s.mtuCap(); c > 0 {
		return min(int(s.mtuBytes.Load()), c) // a peer-set mtu_max (§7.15)
	}
	return int(s.mtuBytes.Load())
}

// maxPlaintext is the most plaintext one packet may carry at the current
// MTU: DATA is segmented to it and never fragmented (PROTOCOL.md §7.11).
func (s *Session) maxPlaintext() int {
	return min(s.mtu()-wire.HeaderLen-wire.TagLen, MaxDataPlaintext)
}

func (s *Session) journalHead() uint64 {
	if s.cfg.JournalHead == nil {
		return 0
	}
	return s.cfg.JournalHead()
}

// noteSent updates our transmit state after a packet is sealed: the
// digest covers DATA bytes and which channels carry data (§7.9.2).
func (s *Session) noteSent(p *outPkt) {
	t := &s.tele
	switch {
	case p.typ == wire.TypeData && p.n > 0:
		t.txDataBytes += uint64(p.n)
		t.tx.SetActive(p.ch, true)
	case p.typ == wire.TypeClose && !p.last:
		t.tx.SetActive(p.ch, false) // a channel FIN or RST
	}
}

// noteReceived folds one authenticated packet into the replica of the
// peer's transmit state and the inbound counters.
func (s *Session) noteReceived(b, pt []byte) {
	t := &s.tele
	ch := b[46]
	switch wire.PacketType(b) {
	case wire.TypeData:
		if len(pt) > 0 {
			t.rxDataBytes += uint64(len(pt))
			t.rx.SetActive(ch, true)
		}
	case wire.TypeClose:
		if c, err := wire.ParseClose(pt); err == nil && c.Scope != wire.ScopeSession {
			t.rx.SetActive(ch, false)
		}
	}
}

// noteAuthenticated counts one authenticated packet; the ack field and
// rx_packets move together so a telemetry's figures are consistent.
func (s *Session) noteAuthenticated(seq uint64, size int) {
	t := &s.tele
	t.mu.Lock()
	t.hi = seq
	t.rxPackets++
	t.rxBytes += uint64(size)
	t.mu.Unlock()
}

// onHeartbeat handles an authenticated HEARTBEAT: a notice (not acted on
// yet) or telemetry, whose state digest must match our replica.
func (s *Session) onHeartbeat(b, pt []byte, seq uint64) error {
	if len(pt) == wire.NoticeLen {
		n, err := wire.ParseNotice(pt)
		if err != nil {
			return s.protocolError(err.Error())
		}
		s.onNotice(n)
		return nil
	}
	tm, err := wire.ParseTelemetry(pt)
	if err != nil {
		return s.protocolError(err.Error())
	}
	now := time.Duration(s.monotonic())
	t := &s.tele
	t.rx.Seq = seq
	t.rx.DataBytesSent = t.rxDataBytes
	if want := wire.StateDigest(&t.rx); want != tm.StateDigest {
		if !s.reliable {
			// A lost packet can make the replica lag; over datagrams a
			// mismatch is counted (PROTOCOL.md §7.9.2).
			t.mu.Lock()
			t.anomaly(fmt.Sprintf("state digest %08x, replica %08x", tm.StateDigest, want))
			t.mu.Unlock()
		} else {
			t.mu.Lock()
			t.anomaly(fmt.Sprintf("state digest %08x, replica %08x: session ended", tm.StateDigest, want))
			t.mu.Unlock()
			s.log.Warn("peer state digest mismatch", "got", fmt.Sprintf("%08x", tm.StateDigest), "want", fmt.Sprintf("%08x", want))
			return s.protocolError("state digest mismatch")
		}
	}
	ack := beUint64(b[12:20])
	s.mu.Lock() // s.mu is never taken inside t.mu: read what we need first
	ours := s.rk.rekeys
	s.mu.Unlock()
	lostBefore := s.outLost()
	defer func() {
		if lost := s.outLost(); lost > lostBefore {
			s.onOutboundLoss(lost) // §7.10: re-validate the MTU after loss
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.digests++
	m := &t.local
	if m.HeartbeatsRecv == 0 {
		close(s.layer) // the layer signal (§7.7)
	}
	m.HeartbeatsRecv++
	t.peerSeq, t.peerTS, t.peerAt = seq, beUint64(b[36:44]), now
	// RTT: only for an echo of one of ours, once per echoed seq.
	if tm.EchoSeq != 0 && tm.EchoSeq != t.lastEcho {
		found := false
		for _, e := range t.sent {
			if e.seq == tm.EchoSeq && e.ts == tm.EchoTimestamp {
				found = true
				if r, ok := tm.RTTSample(uint64(now)); ok {
					t.lastEcho = tm.EchoSeq
					rtt := time.Duration(r)
					if m.RTTSamples == 0 {
						m.RTT = rtt
					} else {
						prev := t.lastRTT
						m.RTT += (rtt - m.RTT) / 8
						d := rtt - prev
						if d < 0 {
							d = -d
						}
						m.Jitter += (d - m.Jitter) / 16
					}
					t.lastRTT = rtt
					m.RTTSamples++
				}
				break
			}
		}
		if !found {
			t.anomaly(fmt.Sprintf("echo of seq %d names none of our recent heartbeats", tm.EchoSeq))
		}
	}
	// Derived outbound figures from two successive peer telemetries.
	if p := &t.peer; p.At != 0 {
		if expected := ack - t.peerAck; expected > 0 {
			got := tm.RxPackets - p.RxPackets
			m.OutLossPPM = 0
			if got < expected {
				m.OutLossPPM = uint32((expected - got) * 1e6 / expected)
				t.outLostTotal += expected - got
			}
		}
		if up := tm.UptimeNs - uint64(p.Uptime); up > 0 && tm.UptimeNs > uint64(p.Uptime) {
			m.OutThroughput = (tm.RxBytes - p.RxBytes) * 8 * uint64(time.Second) / up
		}
	}
	t.peerAck = ack
	t.peer = PeerReport{At: now, RTT: time.Duration(tm.RTTNs), Jitter: time.Duration(tm.JitterNs),
		LossPPM: tm.LossPPM, ThroughputBps: tm.ThroughputBps, MTU: tm.MTU, QueueDepth: tm.QueueDepth,
		Uptime: time.Duration(tm.UptimeNs), RekeyCount: tm.RekeyCount, ConfigVersion: tm.ConfigVersion,
		JournalHead: tm.JournalHead, RxPackets: tm.RxPackets, RxBytes: tm.RxBytes}
	// Cross-checks (PROTOCOL.md §7.9.3): counted, not fatal.
	sentUpToAck := ack - s.firstSendSeq + 1
	if tm.RxPackets > sentUpToAck {
		t.anomaly(fmt.Sprintf("peer reports %d packets received, but we had sent %d up to its ack", tm.RxPackets, sentUpToAck))
	}
	if d := int64(tm.RekeyCount) - int64(ours); d > 1 || d < -1 {
		t.anomaly(fmt.Sprintf("peer reports %d rekeys, we completed %d", tm.RekeyCount, ours))
	}
	return nil
}

// outLost is how many of our packets the peer's reports show lost.
func (s *Session) outLost() uint64 {
	s.tele.mu.Lock()
	defer s.tele.mu.Unlock()
	return s.tele.outLostTotal
}

func (t *telemetry) anomaly(what string) {
	t.anomalies++
	t.lastAnomly = what
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// Telemetry returns the session's measurements, the peer's last report
// and per-channel counters.
func (s *Session) Telemetry() Telemetry {
	t := &s.tele
	t.mu.Lock()
	out := Telemetry{Local: t.local, Peer: t.peer, DigestChecks: t.digests, Anomalies: t.anomalies, LastAnomaly: t.lastAnomly}
	t.mu.Unlock()
	out.Local.MTU = s.mtu()
	s.mu.Lock()
	chans := make([]*Channel, 0, 8)
	for _, c := range s.chans {
		if c != nil {
			chans = append(chans, c)
		}
	}
	s.mu.Unlock()
	out.ChannelsOpen = len(chans)
	for _, c := range chans {
		out.ChannelsStats = append(out.ChannelsStats, c.stats())
	}
	return out
}

// telemetryPacket is the writer's hook: a queued telemetry HEARTBEAT gets
// its plaintext at sealing time.
func (s *Session) telemetryPacket() outPkt {
	buf := bufpool.Get(wire.HeaderLen + wire.TelemetryLen + wire.TagLen)
	return outPkt{buf: buf, n: wire.TelemetryLen, typ: wire.TypeHeartbeat, telemetry: true}
}
