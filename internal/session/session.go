// Package session runs an established POOL session: the receive path in the
// order of handshake.md §4.4, sealing and coalesced sending, 256 channels
// with per-channel credit flow control, and authenticated CLOSE.
package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// Protocol constants of the session layer (docs/PROTOCOL.md, "Channels").
const (
	// NumChannels is the number of channels per session (draft §2).
	NumChannels = 256
	// InitialWindow is the credit each side holds for a channel before the
	// peer grants any: a sender may send this many DATA plaintext bytes on a
	// channel it has not heard from.
	InitialWindow = 64 << 10
	// MaxDataPlaintext is the most application bytes one DATA can carry.
	MaxDataPlaintext = wire.MaxPayload - wire.TagLen
	// SeqLimit ends a session whose counter gets near 2^63 (P01). ISNs are
	// below 2^62 and sessions rekey long before (§5.4), so reaching it
	// means something is badly wrong; closing is the only safe answer.
	SeqLimit = 1<<63 - 1<<32
)

// Defaults of Config.
const (
	DefaultWindow         = 1 << 20
	DefaultConfirmTimeout = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultDrainTimeout   = 2 * time.Second
	DefaultIdleTimeout    = 30 * time.Second
	maxQueuedBytes        = 4 << 20
)

// Config tunes a session. Zero values take the defaults.
type Config struct {
	// Window is the receive buffer per channel: how many unread bytes the
	// peer may have in flight on one channel. It bounds memory: at most
	// 256 x Window bytes are buffered per session.
	Window int
	// ConfirmTimeout bounds how long a server waits for the client's first
	// traffic packet (handshake.md §3: unconfirmed sessions expire).
	ConfirmTimeout time.Duration
	// WriteTimeout declares a peer dead when a write makes no progress
	// for this long (the peer stopped reading, or the path is gone).
	WriteTimeout time.Duration
	// IdleTimeout declares the peer dead when no authenticated packet
	// arrived for this long. Each side sends an empty ACK when it has sent
	// nothing for a third of it, so a live but idle peer is never taken
	// for dead. (HEARTBEAT telemetry, a later layer, refines this.)
	IdleTimeout time.Duration
	// RekeyPackets and RekeyInterval start a rekey after this many packets
	// sent under one key or when the keys are this old (draft §5.4:
	// 2^28 packets, one hour). Lower them only to test.
	RekeyPackets  uint64
	RekeyInterval time.Duration
	// HeartbeatInterval is how often a telemetry HEARTBEAT is sent (5 s,
	// draft §8). HeartbeatMisses is how many intervals of silence make the
	// peer dead (6); it sets IdleTimeout when that is not given.
	HeartbeatInterval time.Duration
	HeartbeatMisses   int
	// JournalHead, if set, gives the first 8 bytes of the journal chain
	// head each HEARTBEAT carries (0 without a journal).
	JournalHead func() uint64
	// OverloadHighWater is the unread data over all channels at which the
	// session asks the peer to pause (64 MiB); OverloadPause is how long
	// (1 s). PROTOCOL.md §7.13.
	OverloadHighWater int
	OverloadPause     time.Duration
	// IntegrityInterval is how often the peer's crypto path is challenged
	// (60 s, PROTOCOL.md §7.12). OnIntegrityFailure, if set, is told when
	// a proof is wrong, so the node can fail closed (draft §17.3).
	IntegrityInterval  time.Duration
	OnIntegrityFailure func(error)
	// OnMessage, if set, receives each JOURNAL message, reassembled if it
	// came in fragments; the layer that defines it (later) consumes it.
	// Without it they are ignored (§7.7). CONFIG and ROLLBACK are the
	// session's own (peerconfig.go, §7.15).
	OnMessage func(typ wire.Type, msg []byte)
	// OnConfigChange, if set, is told of every peer configuration event
	// (applied, confirmed, confirmed by silence, rolled back, rejected) on
	// either side, for the node's journal (PROTOCOL.md §7.15). It runs on
	// the receive path (the session's reader, or a channel Read holding
	// the read role: rxrole.go) or a timer and must not block.
	OnConfigChange func(ConfigEvent)
	// OnRekey, if set, is told of every completed rekey (the new epoch and
	// whether this side initiated it), so the node can journal it. It runs
	// on the receive path: it must return quickly.
	OnRekey func(epoch uint32, initiated bool)
	// OnEvent, if set, is told of session state changes (path MTU,
	// OVERLOAD start and end, INTEGRITY outcome changes; events.go), in
	// order, on a goroutine of its own: it may block briefly (a journal
	// fsync) without holding the session up.
	OnEvent func(Event)
	// Rand draws INTEGRITY nonces; nil means crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
}

// Stats are a session's cumulative counters.
type Stats struct {
	PacketsSent, PacketsReceived uint64
	BytesSent, BytesReceived     uint64 // DATA plaintext bytes
	Epoch                        uint32 // the current key epoch (0 after the handshake)
	Rekeys                       uint64 // completed rekeys
	// Dropped counts packets a datagram transport delivered that failed
	// authentication or the replay window (over TCP they end the session).
	Dropped uint64
}

// Session is one established, authenticated session.
type Session struct {
	cfg   Config
	conn  transport.Conn
	log   *slog.Logger
	start time.Time

	sid       [16]byte
	initiator bool
	peer      addr.PublicKey
	hash      [32]byte

	// Receive state, guarded by rxMu: held by the reader goroutine while
	// it reads, or by a Read the role is lent to (rxrole.go).
	rxMu       sync.Mutex
	lent       atomic.Bool   // the role is lent to channel Reads; the reader goroutine is parked
	lendNext   bool          // the packet being handled woke a waiting Read: lend after it
	rxErr      error         // what a Read holding the role met, for the reader goroutine to judge
	rxUsed     atomic.Uint64 // times a Read took the lent role
	rxBack     chan struct{} // wakes the parked reader goroutine
	rxTimer    *time.Timer   // the parked reader's lendCheck
	lendCheck  atomic.Int64  // ns; defaultLendCheck
	rdMu       sync.Mutex    // guards the transport read deadline: rdDeadline and kick
	rdDeadline time.Time
	kick       bool
	opener     *seal.Protector
	reliable   bool          // the transport is ordered and lossless (TCP)
	window     seal.Window   // the replay window of a datagram transport
	dropped    atomic.Uint64 // datagram packets dropped unauthenticated or replayed
	mtuBytes   atomic.Int64  // the path MTU: no packet we send is larger
	recvNext   uint64
	recvOnKey  uint64        // packets opened under the current receive key
	lastRecv   atomic.Uint64 // the ack field: highest seq received

	// Send state, guarded by sendMu: held by the writer goroutine while it
	// works, or by a Write sending a lone small DATA itself (direct.go).
	// Lock order: sendMu before mu.
	sendMu    sync.Mutex
	sealer    *seal.Protector
	sendNext  uint64
	sendOnKey atomic.Uint64 // packets sealed under the current send key (the idle timer reads it)
	direct    [1][]byte     // sendDirect's one-packet batch (no allocation per write)

	mu    sync.Mutex
	chans [NumChannels]*Channel
	// gen counts the uses of each channel number; both ends free a number
	// at the same point of the exchange (after FIN/RST each way), so the
	// counts agree, and window updates carry it to be matched.
	gen       [NumChannels]uint16
	acceptQ   []*Channel
	acceptSig chan struct{}
	err       error // terminal error, set once
	closing   bool  // a session CLOSE is queued or sent
	closeErr  *CloseError
	peerClose *CloseError
	out       sendQueue
	rk        rekeyState
	tele      telemetry
	ov        overload
	integ     integrityState
	disc      discovery
	frags     fragments
	pcfg      peerConfig
	events    eventQueue
	drops     dropReports
	hbTimer   *time.Timer
	// firstSendSeq is our first traffic seq, for the peer's cross-checks.
	firstSendSeq, firstRecvSeq uint64

	lastRecvAt atomic.Int64 // monotonic ns of the last authenticated packet
	lastSendAt atomic.Int64 // monotonic ns of the last write
	idle       *time.Timer

	done       chan struct{}
	layer      chan struct{} // closed by the peer's first telemetry (§7.7)
	confirmed  chan struct{}
	writerDone chan struct{}
	stats      struct{ pktOut, pktIn, bytesOut, bytesIn atomic.Uint64 }
}

// New starts a session over conn with the handshake's result. It takes
// ownership of conn and of est's keys (which it zeroes). A server session
// is unconfirmed until the client's first packet authenticates; wait on
// Confirmed before handing it to an application.
func New(conn transport.Conn, est *handshake.Established, cfg Config) *Session {
	switch {
	case cfg.Window == 0:
		cfg.Window = DefaultWindow
	case cfg.Window < InitialWindow:
		cfg.Window = InitialWindow // the protocol's starting credit is the floor
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = DefaultConfirmTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.HeartbeatMisses <= 0 {
		cfg.HeartbeatMisses = DefaultHeartbeatMisses
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = cfg.HeartbeatInterval * time.Duration(cfg.HeartbeatMisses)
	}
	if cfg.RekeyPackets == 0 {
		cfg.RekeyPackets = DefaultRekeyPackets
	}
	if cfg.RekeyInterval <= 0 {
		cfg.RekeyInterval = DefaultRekeyInterval
	}
	if cfg.OverloadHighWater <= 0 {
		cfg.OverloadHighWater = DefaultOverloadHighWater
	}
	if cfg.OverloadPause <= 0 {
		cfg.OverloadPause = DefaultOverloadPause
	}
	if cfg.IntegrityInterval <= 0 {
		cfg.IntegrityInterval = DefaultIntegrityInterval
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		cfg: cfg, conn: conn, start: time.Now(),
		sid: est.SID, initiator: est.Initiator, peer: est.Peer, hash: est.SessionHash,
		recvNext: est.RecvSeq, sendNext: est.SendSeq,
		acceptSig: make(chan struct{}, 1), done: make(chan struct{}), layer: make(chan struct{}),
		confirmed: make(chan struct{}), writerDone: make(chan struct{}), rxBack: make(chan struct{}, 1),
	}
	s.rxTimer = time.NewTimer(time.Hour)
	s.rxTimer.Stop()
	s.lendCheck.Store(int64(defaultLendCheck))
	s.lendCheck.Store(int64(defaultLendCheck))
	s.log = cfg.Logger.With("session", fmt.Sprintf("%x", est.SID[:4]), "peer", est.Peer.String())
	s.lastRecv.Store(est.RecvSeq - 1)
	s.reliable = conn.Reliable()
	if s.reliable {
		s.mtuBytes.Store(int64(conn.MaxPacket())) // TCP finds the path MTU (PROTOCOL.md §7.10)
	} else {
		s.mtuBytes.Store(wire.MinMTU) // until DISCOVER finds more
	}
	send, recv := &est.Keys.C2S, &est.Keys.S2C
	if !est.Initiator {
		send, recv = recv, send
	}
	s.sealer, s.opener = seal.NewProtector(send), seal.NewProtector(recv)
	s.rk.static, s.rk.ratchet = est.Static, est.Keys.Rekey
	s.integ.key = est.Keys.Integrity
	est.Keys.Zero()
	s.firstSendSeq, s.firstRecvSeq = est.SendSeq, est.RecvSeq
	ourRole, peerRole := wire.RoleClient, wire.RoleServer
	if !est.Initiator {
		ourRole, peerRole = peerRole, ourRole
	}
	s.tele.tx = wire.DigestState{Role: ourRole, SID: est.SID, EpochFirstSeq: est.SendSeq}
	s.tele.rx = wire.DigestState{Role: peerRole, SID: est.SID, EpochFirstSeq: est.RecvSeq}
	s.out.init()
	s.startPeerConfig()
	if est.Initiator {
		// The client's first traffic packet confirms it to the server
		// (handshake.md §8.6): send an empty ACK at once.
		close(s.confirmed)
		s.out.forceAck = true
	} else {
		s.setReadDeadline(time.Now().Add(cfg.ConfirmTimeout))
	}
	startTimer(&s.idle, cfg.IdleTimeout/3, s.idleTick)
	// The first telemetry goes out at once (PROTOCOL.md §7.9 "When"); it
	// is also the layer signal of §7.7.
	s.out.heartbeat = true
	startTimer(&s.hbTimer, cfg.HeartbeatInterval, s.heartbeatTick)
	startTimer(&s.integ.timer, cfg.IntegrityInterval, s.integrityTick)
	s.startDiscovery()
	s.startFragments()
	go s.readLoop()
	go s.writeLoop()
	return s
}

// startTimer arms *t to run f after d. The periodic callbacks re-arm their
// own timer, so *t must be set before f can first run: the timer is
// created stopped, stored, then started.
func startTimer(t **time.Timer, d time.Duration, f func()) {
	*t = time.AfterFunc(time.Hour, f)
	(*t).Stop()
	(*t).Reset(d)
}

// idleTick keeps an idle session alive and notices a silent peer: one
// timer per session, no goroutine.
func (s *Session) idleTick() {
	select {
	case <-s.done:
		return
	default:
	}
	now := int64(s.monotonic())
	if s.isConfirmed() && time.Duration(now-s.lastRecvAt.Load()) > s.cfg.IdleTimeout {
		s.fail(fmt.Errorf("%w: nothing received for %v (%d heartbeat intervals)", ErrPeerVanished,
			s.cfg.IdleTimeout, int(s.cfg.IdleTimeout/s.cfg.HeartbeatInterval)))
		return
	}
	s.configRekeyCheck(time.Duration(now))
	if err := s.checkRekeyTimers(time.Duration(now)); err != nil {
		var ce *CloseError
		if !errors.As(err, &ce) {
			s.fail(err)
			return
		}
		s.closeWith(ce.Code, ce.Reason, true)
	}
	if time.Duration(now-s.lastSendAt.Load()) >= s.cfg.IdleTimeout/3 {
		s.mu.Lock()
		if s.err == nil && !s.closing {
			s.out.forceAck = true
		}
		s.mu.Unlock()
		s.out.wake()
	}
	s.idle.Reset(s.cfg.IdleTimeout / 3)
}

// ID returns the Session ID.
func (s *Session) ID() [16]byte { return s.sid }

// Peer returns the peer's authenticated static key.
func (s *Session) Peer() addr.PublicKey { return s.peer }

// LayerUp reports whether the peer's first telemetry HEARTBEAT, the layer
// signal of PROTOCOL.md §7.7, has arrived.
func (s *Session) LayerUp() bool {
	select {
	case <-s.layer:
		return true
	default:
		return false
	}
}

// SessionHash returns h4, the handshake transcript hash, for channel binding.
func (s *Session) SessionHash() [32]byte { return s.hash }

// Initiator reports whether this side dialed.
func (s *Session) Initiator() bool { return s.initiator }

// Path returns the transport endpoints.
func (s *Session) Path() handshake.Path { return s.conn.Path() }

// Confirmed is closed once the peer is authenticated and confirmed.
func (s *Session) Confirmed() <-chan struct{} { return s.confirmed }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	epoch, rekeys := s.rk.epoch, s.rk.rekeys
	s.mu.Unlock()
	return Stats{PacketsSent: s.stats.pktOut.Load(), PacketsReceived: s.stats.pktIn.Load(),
		BytesSent: s.stats.bytesOut.Load(), BytesReceived: s.stats.bytesIn.Load(),
		Epoch: epoch, Rekeys: rekeys, Dropped: s.dropped.Load()}
}

// monotonic is the header timestamp: sender-local monotonic nanoseconds
// since the session began, never wall clock (DESIGN 2.1).
func (s *Session) monotonic() uint64 { return uint64(time.Since(s.start)) }

// fail ends the session with err (the first error wins), closes the
// transport and wakes everything waiting on it.
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.done)
	if s.idle != nil {
		s.idle.Stop()
	}
	if s.hbTimer != nil {
		s.hbTimer.Stop()
	}
	if s.integ.timer != nil {
		s.integ.timer.Stop()
	}
	if s.disc.timer != nil {
		s.disc.timer.Stop()
	}
	if s.frags.timer != nil {
		s.frags.timer.Stop()
	}
	s.stopPeerConfig()
	s.settleLocked(err)
	s.reportDrops() // the last second's drops, not left to a timer
	s.out.discard()
	// What only this session could use is wiped now (the traffic keys go
	// with the reader and writer, which own them).
	clear(s.rk.ratchet[:])
	clear(s.integ.key[:])
	clear(s.integ.prevKey[:])
	s.mu.Unlock()
	s.out.wake()
	_ = s.conn.Close()
	var ce *CloseError
	if errors.As(err, &ce) && ce.Code == wire.CodeNoError {
		s.log.Debug("session closed", "err", err)
	} else {
		s.log.Info("session ended", "err", err)
	}
}

// errClosing tells the reader that a packet made us queue a CLOSE: it
// keeps draining the transport until the writer has sent it.
var errClosing = errors.New("session: closing")

// errDrained ends the drain: a packet after our CLOSE did not authenticate.
var errDrained = errors.New("session: drained")

// readLoop is the receive path. Every packet is checked in the order of
// handshake.md §4.4; state changes only after AEAD and HMAC pass.
func (s *Session) readLoop() {
	defer func() {
		// The receive keys die with the reader; no Read takes the role
		// after this.
		s.rxMu.Lock()
		s.lent.Store(false)
		s.opener.Close()
		s.rxMu.Unlock()
	}()
	for {
		if s.lent.Load() && !s.waitRoleBack() {
			return
		}
		s.rxMu.Lock()
		if err := s.rxErr; err != nil {
			s.rxMu.Unlock()
			s.readFailed(err) // met by a Read that held the role
			return
		}
		p, err := s.conn.ReadPacket()
		if err != nil {
			s.rxMu.Unlock()
			if s.kicked(err) {
				continue // meant for a Read that has left
			}
			s.readFailed(err)
			return
		}
		s.lendNext = false
		err = s.handle(p)
		if err == nil && s.lendNext {
			s.lent.Store(true)
		}
		s.lendNext = false
		s.rxMu.Unlock()
		if err == errDrained {
			s.readFailed(err)
			return
		} else if err != nil && err != errClosing {
			s.fail(err)
			return
		}
	}
}

func (s *Session) readFailed(err error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	switch {
	case closing:
		// Our CLOSE is queued or sent: let the writer finish it (bounded)
		// before the transport goes.
		select {
		case <-s.writerDone:
		case <-s.done:
		case <-time.After(s.cfg.WriteTimeout):
		}
		s.fail(s.localCloseErr())
	case errors.Is(err, os.ErrDeadlineExceeded) && !s.isConfirmed():
		s.fail(ErrUnconfirmed)
	case errors.Is(err, transport.ErrFrame):
		s.fail(fmt.Errorf("%w: %v", ErrAuthFailed, err))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.fail(ErrPeerVanished)
	default:
		s.fail(fmt.Errorf("%w: %v", ErrPeerVanished, err))
	}
}

func (s *Session) isConfirmed() bool {
	select {
	case <-s.confirmed:
		return true
	default:
		return false
	}
}

// sessionTypes are the packet types an established session receives.
// Anything else (a handshake type, 0xD-0xF) is refused before any
// cryptography (handshake.md §4.4 step 2).
const sessionTypes = 1<<wire.TypeData | 1<<wire.TypeAck | 1<<wire.TypeHeartbeat | 1<<wire.TypeRekey |
	1<<wire.TypeClose | 1<<wire.TypeConfig | 1<<wire.TypeRollback | 1<<wire.TypeDiscover |
	1<<wire.TypeJournal | 1<<wire.TypeIntegrity

// unsupportedFlags are defined by the draft but not implemented by this
// release: a packet carrying them cannot be interpreted correctly.
const unsupportedFlags = wire.FlagCompressed

// handle authenticates one packet and acts on it. It returns an error to
// end the session. The buffer is released here unless DATA hands it on.
func (s *Session) handle(p *[]byte) error {
	b := *p
	keep := false
	defer func() {
		if !keep {
			bufpool.Put(p)
		}
	}()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	pt, err := s.authenticate(b)
	if err == errDropped {
		return nil
	}
	if err != nil {
		if closing {
			return errDrained
		}
		return err
	}
	typ := wire.PacketType(b)
	s.noteReceived(b, pt)
	if closing {
		// Draining after our CLOSE: act on nothing, but notice the peer's
		// own CLOSE, which tells the application the peer finished too.
		if typ == wire.TypeClose {
			if c, err := wire.ParseClose(pt); err == nil && c.Scope == wire.ScopeSession {
				s.notePeerClose(&c)
			}
		}
		return nil
	}
	// Step 9: semantics. Failures here are authenticated protocol errors
	// and earn a CLOSE with a code. Protection is decided by state; the
	// flag must still say so.
	flags := binary.BigEndian.Uint16(b[2:4])
	if flags&wire.FlagEncrypted == 0 {
		return s.protocolError("ENCRYPTED flag missing on a sealed packet")
	}
	if flags&unsupportedFlags != 0 {
		return s.protocolError(fmt.Sprintf("flags %#04x not supported (compression)", flags&unsupportedFlags))
	}
	if s.recvOnKey > s.cfg.RekeyPackets+peerRekeySlackPackets {
		return s.rekeyFail(fmt.Sprintf("the peer sent over %d packets under one key without rekeying", s.cfg.RekeyPackets+peerRekeySlackPackets))
	}
	ch := b[46]
	fragmented := flags&(wire.FlagFragment|wire.FlagLastFrag) != 0
	if fragmented {
		if !wire.Fragmentable(typ) {
			return s.protocolError(fmt.Sprintf("a fragmented %v (§7.11)", typ))
		}
		hdr, chunk, err := wire.ParseFragment(flags, pt)
		if err != nil {
			return s.protocolError(err.Error())
		}
		msg, err := s.reassemble(typ, hdr, flags&wire.FlagLastFrag != 0, chunk)
		if err != nil || msg == nil {
			return err
		}
		pt = msg // processed as the plaintext of one packet of its type
	}
	switch typ {
	case wire.TypeData:
		if len(pt) == 0 {
			return nil
		}
		keep = true
		return s.onData(ch, pt, p)
	case wire.TypeAck:
		if ch != 0 {
			return s.protocolError("ACK on a channel other than 0")
		}
		return s.onAck(pt)
	case wire.TypeClose:
		return s.onClose(ch, pt)
	case wire.TypeRekey:
		return s.onRekey(ch, pt)
	case wire.TypeHeartbeat:
		return s.onHeartbeat(b, pt, binary.BigEndian.Uint64(b[4:12]))
	case wire.TypeIntegrity:
		return s.onIntegrity(ch, pt)
	case wire.TypeDiscover:
		if fragmented && len(pt) > 0 && pt[0] != wire.DiscoverPeerExchange {
			return s.protocolError("a reassembled DISCOVER probe or ack (§7.11)")
		}
		return s.onDiscover(pt)
	case wire.TypeConfig, wire.TypeRollback:
		return s.onConfigMessage(typ, pt) // PROTOCOL.md §7.15
	case wire.TypeJournal:
		if s.cfg.OnMessage != nil {
			s.cfg.OnMessage(typ, pt)
		}
		return nil
	default:
		// HEARTBEAT, CONFIG, ROLLBACK, DISCOVER, JOURNAL, INTEGRITY:
		// defined by the draft, carried by later layers; authenticated,
		// so ignoring them is safe.
		return nil
	}
}

// authenticate runs §4.4 steps 2-8 on one packet: cheap header checks (the
// framer checked the version), the exact next seq over TCP, the AEAD, the
// HMAC, and only then the commit of the receive state.
func (s *Session) authenticate(b []byte) ([]byte, error) {
	typ := wire.PacketType(b)
	if sessionTypes&(1<<typ) == 0 || [16]byte(b[20:36]) != s.sid {
		if !s.reliable {
			// A datagram anyone could forge (SIDs are public): drop and
			// count it, never let it end the session (DESIGN 2.8).
			s.drop(DropUnexpected)
			return nil, errDropped
		}
		if sessionTypes&(1<<typ) == 0 {
			return nil, fmt.Errorf("%w: unexpected %v packet", ErrAuthFailed, typ)
		}
		return nil, fmt.Errorf("%w: wrong Session ID", ErrAuthFailed)
	}
	seq := binary.BigEndian.Uint64(b[4:12])
	if !s.reliable {
		// Datagrams (DESIGN 2.7, 2.8): a replayed, stale or forged packet
		// is dropped and counted; it can neither end nor move anything.
		if seq >= SeqLimit || seq < s.firstRecvSeq || !s.window.Check(seq) {
			s.drop(DropReplay)
			return nil, errDropped
		}
		pt, err := s.opener.Open(b)
		if err != nil {
			s.drop(DropAuth)
			return nil, errDropped
		}
		s.window.Commit(seq)
		s.recvNext = max(s.recvNext, seq+1)
		s.recvOnKey++
		s.lastRecv.Store(s.window.Highest())
		return s.authenticated(b, pt)
	}
	if seq != s.recvNext || seq >= SeqLimit {
		return nil, fmt.Errorf("%w: sequence %d, expected %d", ErrAuthFailed, seq, s.recvNext)
	}
	pt, err := s.opener.Open(b)
	if err != nil {
		return nil, ErrAuthFailed
	}
	s.recvNext++
	s.recvOnKey++
	s.lastRecv.Store(seq)
	return s.authenticated(b, pt)
}

// errDropped: a datagram failed its checks and was dropped (not fatal).
var errDropped = errors.New("session: datagram dropped")

// authenticated is step 8's bookkeeping for a packet that passed.
func (s *Session) authenticated(b, pt []byte) ([]byte, error) {
	s.noteAuthenticated(s.lastRecv.Load(), len(b))
	s.lastRecvAt.Store(int64(s.monotonic()))
	s.stats.pktIn.Add(1)
	if !s.isConfirmed() {
		close(s.confirmed) // event 2: the client is authenticated
		s.setReadDeadline(time.Time{})
		s.log.Debug("client confirmed")
	}
	return pt, nil
}

func (s *Session) notePeerClose(c *wire.Close) {
	s.mu.Lock()
	if s.peerClose == nil {
		s.peerClose = &CloseError{Remote: true, Code: c.Code, Reason: c.Reason}
	}
	s.mu.Unlock()
}

// PeerClosed returns the CLOSE the peer sent, if one arrived, also when
// this side closed first. A peer's CLOSE(NO_ERROR) after our FIN means it
// consumed everything we sent.
func (s *Session) PeerClosed() *CloseError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerClose
}

// protocolError queues an authenticated CLOSE(PROTOCOL_ERROR) ahead of
// anything else and tells the reader to drain until it is sent.
func (s *Session) protocolError(reason string) error {
	s.closeWith(wire.CodeProtocolError, reason, true)
	return errClosing
}

func (s *Session) onAck(pt []byte) error {
	err := wire.ParseAck(pt, func(w wire.WindowUpdate) {
		s.mu.Lock()
		c := s.chans[w.Channel]
		stale := s.gen[w.Channel] != w.Gen
		s.mu.Unlock()
		// A grant for an earlier use of the channel number is stale: the
		// number was freed and reopened while it was in flight.
		if c != nil && !stale {
			c.addCredit(int64(w.Credit))
		}
	})
	if err != nil {
		return s.protocolError(err.Error())
	}
	return nil
}

func (s *Session) onClose(ch uint8, pt []byte) error {
	c, err := wire.ParseClose(pt)
	if err != nil {
		return s.protocolError(err.Error())
	}
	switch c.Scope {
	case wire.ScopeSession:
		if ch != 0 {
			return s.protocolError("session CLOSE on a channel other than 0")
		}
		s.notePeerClose(&c)
		// Answer with our own CLOSE, as TLS answers close_notify: it tells
		// the peer that everything it sent before its CLOSE reached us.
		// Whatever we still had queued is dropped; the peer reads no more.
		s.closeAs(&CloseError{Remote: true, Code: c.Code, Reason: c.Reason}, wire.CodeNoError, "")
		return errClosing
	}
	// Channel FIN and RST carry the generation of the channel they end:
	// one for an earlier use of the number (an RST that crossed the
	// peer's FIN, say) is stale and ignored, never answered, so two ends
	// cannot bounce RSTs at each other.
	s.mu.Lock()
	if c.Detail != s.gen[ch] {
		s.mu.Unlock()
		s.log.Debug("stale channel CLOSE ignored", "channel", ch, "gen", c.Detail)
		return nil
	}
	var chn *Channel
	if c.Scope == wire.ScopeChannelFIN {
		chn = s.channelLocked(ch, true) // a FIN may be all a new channel carries
	} else {
		chn = s.chans[ch] // an RST for a number we do not hold ends nothing
	}
	s.mu.Unlock()
	switch {
	case chn == nil:
		return nil
	case c.Scope == wire.ScopeChannelFIN:
		return chn.remoteFin()
	default:
		return chn.remoteReset(&CloseError{Remote: true, Channel: true, Code: c.Code, Reason: c.Reason})
	}
}

func (s *Session) onData(ch uint8, pt []byte, p *[]byte) error {
	s.mu.Lock()
	c := s.channelLocked(ch, true)
	s.mu.Unlock()
	if c == nil {
		bufpool.Put(p)
		return nil
	}
	s.stats.bytesIn.Add(uint64(len(pt)))
	return c.deliver(pt, p)
}

// channelLocked returns channel ch, creating it when the peer opens it.
// A peer-opened channel is queued for AcceptChannel and granted the rest
// of its window at once. Returns nil once the session is closing.
func (s *Session) channelLocked(ch uint8, remote bool) *Channel {
	if c := s.chans[ch]; c != nil {
		return c
	}
	if s.err != nil {
		return nil
	}
	c := newChannel(s, ch)
	s.chans[ch] = c
	if remote {
		s.acceptQ = append(s.acceptQ, c)
		select {
		case s.acceptSig <- struct{}{}:
		default:
		}
	}
	// The rest of the window is granted once the peer knows the channel:
	// at once for a channel it opened, at its first packet for one we
	// opened (a grant for a channel the peer has not seen would be lost).
	if extra := s.cfg.Window - InitialWindow; extra > 0 {
		if remote {
			c.granted += int64(extra)
			s.out.grant(ch, uint32(extra))
		} else {
			c.pendingGrant = extra
		}
	}
	return c
}

// release frees channel slot ch if it still holds c: both directions are
// finished (FIN or RST each way). Grants not yet sent for it are dropped.
func (s *Session) release(c *Channel) { s.free(c, true) }

// free empties c's slot. A use of the number the peer never saw does not
// count: the peer's generation did not move, so ours must not either.
func (s *Session) free(c *Channel, counted bool) {
	s.mu.Lock()
	if s.chans[c.id] == c {
		s.chans[c.id] = nil
		if counted {
			s.gen[c.id]++
		}
		s.out.dropCredit(c.id)
	}
	s.mu.Unlock()
}

func (s *Session) localCloseErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr == nil {
		return ErrClosed
	}
	return s.closeErr
}

// closingErrLocked is what new work gets while our CLOSE is queued: the
// peer's CloseError when we are answering theirs (the caller must learn
// why the session ends), ErrClosed when we closed it ourselves.
func (s *Session) closingErrLocked() error {
	if s.closeErr != nil && s.closeErr.Remote {
		return s.closeErr
	}
	return ErrClosed
}

// OpenChannel opens channel id (0-255), or with id < 0 the lowest free one
// of this side's parity (the initiator opens even channels, the responder
// odd ones, so the two never pick the same number at once).
func (s *Session) OpenChannel(id int) (*Channel, error) {
	if id > 255 {
		return nil, fmt.Errorf("pool: channel %d out of range 0-255", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.closing {
		return nil, s.closingErrLocked()
	}
	if id < 0 {
		start := 1
		if s.initiator {
			start = 0
		}
		for i := start; i < NumChannels; i += 2 {
			if s.chans[i] == nil {
				id = i
				break
			}
		}
		if id < 0 {
			return nil, ErrNoChannel
		}
	}
	if s.chans[id] != nil {
		return nil, fmt.Errorf("%w: %d", ErrChannelInUse, id)
	}
	return s.channelLocked(uint8(id), false), nil
}

// AcceptChannel waits for a channel the peer opened.
func (s *Session) AcceptChannel(ctx context.Context) (*Channel, error) {
	for {
		s.mu.Lock()
		if len(s.acceptQ) > 0 {
			c := s.acceptQ[0]
			s.acceptQ[0] = nil
			s.acceptQ = s.acceptQ[1:]
			if len(s.acceptQ) > 0 {
				select {
				case s.acceptSig <- struct{}{}:
				default:
				}
			}
			s.mu.Unlock()
			return c, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		s.reclaimRole() // a new channel arrives in a packet no Read fetches
		select {
		case <-s.acceptSig:
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the session gracefully: everything already written is sent,
// then an authenticated CLOSE(NO_ERROR). It waits (bounded by the write
// timeout) until the CLOSE is on the wire.
func (s *Session) Close() error { return s.CloseWithError(wire.CodeNoError, "") }

// CloseWithError ends the session with a code and reason the peer will see.
// A non-zero code aborts: queued data is dropped and the CLOSE goes first.
// It waits for the CLOSE to be written, at most WriteTimeout; a peer that
// does not read then loses the session without it (ErrWriteStalled).
func (s *Session) CloseWithError(code wire.Code, reason string) error {
	return s.CloseContext(context.Background(), code, reason)
}

// CloseContext is CloseWithError bounded by ctx as well: when ctx ends
// first, the session is torn down at once without waiting for the CLOSE
// to reach the wire, and ctx's error is returned.
func (s *Session) CloseContext(ctx context.Context, code wire.Code, reason string) error {
	if !s.closeWith(code, reason, code != wire.CodeNoError) {
		return nil
	}
	t := time.NewTimer(s.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-s.writerDone:
	case <-t.C:
		s.fail(ErrWriteStalled)
	case <-ctx.Done():
		s.fail(fmt.Errorf("session: closed before its CLOSE was written: %w", ctx.Err()))
		return ctx.Err()
	}
	return nil
}

// closeWith queues the session CLOSE; false if one is already queued or
// the session is over.
func (s *Session) closeWith(code wire.Code, reason string, abort bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked(&CloseError{Code: code, Reason: reason}, code, reason, abort)
}

// closeAs queues a CLOSE in reply to the peer's; the session's error
// stays the peer's CLOSE.
func (s *Session) closeAs(final *CloseError, code wire.Code, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(final, code, reason, true)
}

func (s *Session) closeLocked(final *CloseError, code wire.Code, reason string, abort bool) bool {
	if s.err != nil || s.closing {
		return false
	}
	s.closing = true
	s.closeErr = final
	if abort {
		s.out.discard()
	}
	s.out.pushClose(0, &wire.Close{Code: code, Scope: wire.ScopeSession, Reason: reason})
	s.out.wake()
	return true
}
