package session

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"time"

	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/wire"
)

// Rekey limits (draft §5.4; handshake.md §5 "Liveness").
const (
	// DefaultRekeyPackets: a side starts a rekey after sending this many
	// packets under one key.
	DefaultRekeyPackets = 1 << 28
	// DefaultRekeyInterval: a side starts a rekey when its keys are this old.
	DefaultRekeyInterval = time.Hour
	// RekeyAckTimeout: no REKEY_ACK within this ends the session.
	RekeyAckTimeout = 30 * time.Second
	// A peer gets this much past our own limits before we give up on it:
	// its clock and counters run apart from ours.
	peerRekeySlackPackets = 1 << 24
	peerRekeySlackTime    = 120 * time.Second
)

// ErrRekeyTimeout reports a rekey whose REKEY_ACK never came.
var ErrRekeyTimeout = errors.New("pool: the peer did not answer a rekey within 30 s (REKEY_FAIL)")

// rekeyState is the session's side of the rekey protocol of PROTOCOL.md
// §5.8, guarded by Session.mu. Keys switch at sequence numbers, never by
// trial: an initiator sends REKEY_INIT at x and then nothing until the ACK,
// so its new keys start at x+1; a responder sends REKEY_ACK at y and its
// new keys start at y+1. Over an in-order transport each side therefore
// switches its receive keys right after processing the peer's REKEY.
type rekeyState struct {
	static  *ecdh.PrivateKey // our identity key, for the static DHs
	ratchet [32]byte         // R_n
	epoch   uint32           // n, the epoch both directions are in or entering
	rekeys  uint64
	// collisions counts simultaneous rekeys this side saw (tests check
	// that they exercise the tie-break).
	collisions uint64

	// Our REKEY_INIT, from the moment the writer decides to send it until
	// the ACK is processed. While stalled the writer sends nothing at all.
	pending bool
	stalled bool
	force   bool
	eI      *ecdh.PrivateKey
	init    wire.Rekey
	ackWait *time.Timer // fires RekeyAckTimeout after the INIT

	// responding is set while the reader derives the keys for a peer's
	// REKEY_INIT, so the writer does not start a rekey of its own.
	responding bool
	// ack is the REKEY_ACK the writer must send next; after it, it seals
	// with ackKeys.
	ack     *wire.Rekey
	ackKeys seal.DirectionKeys
	// nextSend holds the initiator's new send keys once the ACK arrived.
	nextSend *seal.DirectionKeys

	keysSince time.Duration // monotonic, when the current epoch began
}

// rekeyCtl is a REKEY the writer sends ahead of everything else.
type rekeyCtl struct {
	msg   wire.Rekey
	after *seal.DirectionKeys // switch the sealer to these once it is sealed
}

// Rekey starts a rekey now, unless one is already under way. The
// automatic triggers (Config.RekeyPackets, Config.RekeyInterval) make
// calling it unnecessary; it is there for operators and tests.
func (s *Session) Rekey() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.closing {
		return s.closingErrLocked()
	}
	s.rk.force = true
	s.out.wake()
	return nil
}

// rekeyStepLocked runs in the writer with s.mu held, before it takes any
// packet: it installs the new send keys of a completed initiation, and
// returns the REKEY to send now, if any. A REKEY_ACK goes out even while
// stalled: the server that loses a simultaneous rekey abandons its own
// REKEY_INIT and answers the client's (P06 as DESIGN 2.9 reads it).
func (s *Session) rekeyStepLocked() (*rekeyCtl, error) {
	rk := &s.rk
	if rk.nextSend != nil {
		s.switchSend(rk.nextSend)
		rk.nextSend = nil
	}
	if rk.ack != nil {
		keys := rk.ackKeys
		rk.ackKeys = seal.DirectionKeys{}
		c := &rekeyCtl{msg: *rk.ack, after: &keys}
		rk.ack, rk.stalled = nil, false
		return c, nil
	}
	if rk.stalled || rk.pending || rk.responding || s.closing || !s.rekeyDueLocked() {
		return nil, nil
	}
	e, err := handshake.RekeyEphemeral()
	if err != nil {
		return nil, fmt.Errorf("pool: rekey: %w", err)
	}
	rk.force = false
	rk.pending, rk.stalled, rk.eI = true, true, e
	rk.init = wire.Rekey{Kind: wire.RekeyInit, Epoch: rk.epoch + 1, E: [32]byte(e.PublicKey().Bytes())}
	epoch := rk.init.Epoch
	rk.ackWait = time.AfterFunc(RekeyAckTimeout, func() { s.rekeyAckExpired(epoch) })
	return &rekeyCtl{msg: rk.init}, nil
}

// rekeyDueLocked: our send key has carried enough packets or lived long
// enough (draft §5.4), or someone asked.
func (s *Session) rekeyDueLocked() bool {
	return s.rk.force || s.sendOnKey.Load() >= s.cfg.RekeyPackets ||
		time.Duration(s.monotonic())-s.rk.keysSince >= s.cfg.RekeyInterval
}

// switchSend is the writer's key switch: the old send keys are dropped
// (zeroed as far as Go allows) and the packet count starts over.
func (s *Session) switchSend(k *seal.DirectionKeys) {
	s.sealer.Close()
	s.sealer = seal.NewProtector(k)
	k.Zero()
	s.sendOnKey.Store(0)
	s.tele.tx.Epoch++
	s.tele.tx.EpochFirstSeq = s.sendNext
}

// switchRecv is the reader's key switch, right after the REKEY that marks
// the peer's switch point (over an in-order transport the old receive keys
// are never needed again).
func (s *Session) switchRecv(k *seal.DirectionKeys) {
	s.opener.Close()
	s.opener = seal.NewProtector(k)
	k.Zero()
	s.recvOnKey = 0
	s.tele.rx.Epoch++
	s.tele.rx.EpochFirstSeq = s.recvNext
}

// directions splits epoch keys into ours and the peer's: directions follow
// handshake roles, never rekey roles.
func (s *Session) directions(k *seal.EpochKeys) (send, recv *seal.DirectionKeys) {
	if s.initiator {
		return &k.C2S, &k.S2C
	}
	return &k.S2C, &k.C2S
}

// onRekey handles an authenticated REKEY (PROTOCOL.md §5.8). Its errors
// end the session with REKEY_FAIL.
func (s *Session) onRekey(ch uint8, pt []byte) error {
	m, err := wire.ParseRekey(pt)
	if err != nil || ch != 0 {
		return s.rekeyFail(fmt.Sprintf("malformed REKEY (%v, channel %d)", err, ch))
	}
	if m.Kind == wire.RekeyAck {
		return s.onRekeyAck(&m)
	}
	s.mu.Lock()
	rk := &s.rk
	switch {
	case m.Epoch != rk.epoch+1:
		s.mu.Unlock()
		return s.rekeyFail(fmt.Sprintf("REKEY_INIT for epoch %d, but the session is in epoch %d", m.Epoch, rk.epoch))
	case rk.responding || rk.ack != nil:
		s.mu.Unlock()
		return s.rekeyFail("a second REKEY_INIT before our REKEY_ACK")
	case rk.pending && s.initiator:
		// Both sides started: the handshake initiator wins, so the
		// server will answer our REKEY_INIT; its own is void.
		rk.collisions++
		s.mu.Unlock()
		s.log.Debug("simultaneous rekey: ours stands (handshake initiator)", "epoch", m.Epoch)
		return nil
	case rk.pending:
		// We lost: abandon our REKEY_INIT and its ephemeral; we stay
		// stalled until the writer sends our ACK.
		rk.pending, rk.eI = false, nil
		rk.ackWait.Stop()
		rk.collisions++
		s.log.Debug("simultaneous rekey: answering the client's", "epoch", m.Epoch)
	}
	rk.responding = true
	ratchet := rk.ratchet
	s.mu.Unlock()

	eR, err := handshake.RekeyEphemeral()
	if err != nil {
		return s.rekeyFail("generating an ephemeral key failed")
	}
	ack := wire.Rekey{Kind: wire.RekeyAck, Epoch: m.Epoch, E: [32]byte(eR.PublicKey().Bytes())}
	x := handshake.RekeyExchange{SID: s.sid, Ratchet: &ratchet, Epoch: m.Epoch, Role: s.rekeyRole(false), Init: &m, Ack: &ack}
	keys, err := x.DeriveAsResponder(eR, s.rk.static, s.peer)
	if err != nil {
		return s.rekeyFail("the peer's rekey key was refused: " + err.Error())
	}
	send, recv := s.directions(&keys)
	s.switchRecv(recv) // the initiator's packets after its REKEY_INIT use the new keys
	s.mu.Lock()
	rk.ack, rk.ackKeys, rk.responding = &ack, *send, false
	s.enterEpochLocked(m.Epoch, &keys)
	s.mu.Unlock()
	s.rekeyed(m.Epoch, false)
	return nil
}

func (s *Session) onRekeyAck(m *wire.Rekey) error {
	s.mu.Lock()
	rk := &s.rk
	if !rk.pending || m.Epoch != rk.init.Epoch {
		s.mu.Unlock()
		return s.rekeyFail(fmt.Sprintf("unexpected REKEY_ACK for epoch %d", m.Epoch))
	}
	ratchet, eI, init := rk.ratchet, rk.eI, rk.init
	rk.ackWait.Stop()
	s.mu.Unlock()
	x := handshake.RekeyExchange{SID: s.sid, Ratchet: &ratchet, Epoch: m.Epoch, Role: s.rekeyRole(true), Init: &init, Ack: m}
	keys, err := x.DeriveAsInitiator(eI, s.rk.static, s.peer)
	if err != nil {
		return s.rekeyFail("the peer's rekey key was refused: " + err.Error())
	}
	send, recv := s.directions(&keys)
	s.switchRecv(recv) // the responder's packets after its REKEY_ACK use the new keys
	next := *send
	s.mu.Lock()
	rk.pending, rk.eI, rk.stalled, rk.nextSend = false, nil, false, &next
	s.enterEpochLocked(m.Epoch, &keys)
	s.mu.Unlock()
	s.rekeyed(m.Epoch, true)
	return nil
}

// rekeyRole is T's role byte for a rekey we (byUs) or the peer initiated:
// it names the initiator's handshake role (handshake.md §8.10).
func (s *Session) rekeyRole(byUs bool) byte {
	if byUs == s.initiator {
		return handshake.RekeyByClient
	}
	return handshake.RekeyByServer
}

// enterEpochLocked records the new epoch on either side of a rekey: the
// next ratchet secret, the integrity key, the clock of the key's age; the
// epoch's keys are wiped (the directions were handed on already).
func (s *Session) enterEpochLocked(epoch uint32, keys *seal.EpochKeys) {
	rk := &s.rk
	rk.ratchet, rk.epoch, rk.rekeys = keys.Rekey, epoch, rk.rekeys+1
	s.newIntegrityKeyLocked(epoch, &keys.Integrity)
	rk.keysSince = time.Duration(s.monotonic())
	keys.Zero()
}

// rekeyed runs after a completed rekey, without s.mu.
func (s *Session) rekeyed(epoch uint32, initiated bool) {
	s.out.wake()
	s.log.Debug("rekeyed", "epoch", epoch, "initiated", initiated)
	if s.cfg.OnRekey != nil {
		s.cfg.OnRekey(epoch, initiated)
	}
}

// rekeyFail ends the session with REKEY_FAIL. While our own REKEY_INIT is
// unanswered nothing can be sent (the peer expects our next packet under
// keys we do not have), so the session then ends without a CLOSE.
func (s *Session) rekeyFail(reason string) error {
	s.mu.Lock()
	stalled := s.rk.stalled
	s.mu.Unlock()
	if stalled {
		return &CloseError{Code: wire.CodeRekeyFail, Reason: reason}
	}
	s.closeWith(wire.CodeRekeyFail, reason, true)
	return errClosing
}

// rekeyAckExpired ends a session whose REKEY_INIT for epoch went
// unanswered (handshake.md §5 "Liveness"; over TCP a retry could not help).
func (s *Session) rekeyAckExpired(epoch uint32) {
	s.mu.Lock()
	expired := s.rk.pending && s.rk.init.Epoch == epoch
	s.mu.Unlock()
	if expired {
		s.fail(ErrRekeyTimeout)
	}
}

// checkRekeyTimers runs from the idle timer: a peer that keeps one key far
// past the limits, and a due rekey on a quiet session (the writer only
// looks when it has something to send).
func (s *Session) checkRekeyTimers(now time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rk := &s.rk
	switch {
	case !rk.pending && !rk.stalled && rk.ack == nil && now-rk.keysSince > s.cfg.RekeyInterval+peerRekeySlackTime:
		return &CloseError{Code: wire.CodeRekeyFail,
			Reason: fmt.Sprintf("no rekey in %v (limit %v)", (now - rk.keysSince).Round(time.Second), s.cfg.RekeyInterval+peerRekeySlackTime)}
	}
	if s.rekeyDueLocked() {
		s.out.wake()
	}
	return nil
}
