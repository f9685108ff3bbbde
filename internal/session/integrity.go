package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// INTEGRITY policy (PROTOCOL.md §7.12).
const (
	DefaultIntegrityInterval = 60 * time.Second
	IntegrityTimeout         = 10 * time.Second
	// A responder answers a burst of integrityBurst challenges, then one
	// per second: a peer cannot make it compute proofs as fast as it
	// sends (§7.12 allows ignoring challenges faster than 1/s).
	integrityBurst = 4
)

// ErrIntegrity reports a peer whose INTEGRITY proof was wrong: its crypto
// path does not behave (draft §17.3). The session is ended.
var ErrIntegrity = errors.New("pool: INTEGRITY proof mismatch: the peer's crypto path is not behaving")

// ErrIntegrityTimeout reports a challenge the peer did not answer in 10 s.
var ErrIntegrityTimeout = errors.New("pool: INTEGRITY challenge not answered within 10 s")

// integrityState is guarded by Session.mu.
type integrityState struct {
	// K_int of the current epoch and the one before (§7.12).
	key, prevKey     [32]byte
	epoch, prevEpoch uint32
	hasPrev          bool

	outstanding bool
	nonce       [wire.IntegrityNonceLen]byte
	deadline    *time.Timer
	waiters     []chan error
	lastAnswer  time.Duration
	tokens      float64
	timer       *time.Timer

	ok, failed, timeouts, unmatched, answered uint64
	verified                                  bool // EventIntegrityVerified reported since the last timeout
}

// IntegrityStats counts INTEGRITY exchanges.
type IntegrityStats struct {
	Verified, Failed, Timeouts, Unmatched, Answered uint64
}

// Integrity returns the session's INTEGRITY counters.
func (s *Session) Integrity() IntegrityStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := &s.integ
	return IntegrityStats{Verified: i.ok, Failed: i.failed, Timeouts: i.timeouts, Unmatched: i.unmatched, Answered: i.answered}
}

// newIntegrityKey installs K_int of a new epoch, keeping the previous one
// so an answer sealed just before a rekey still verifies.
func (s *Session) newIntegrityKeyLocked(epoch uint32, k *[32]byte) {
	i := &s.integ
	i.prevKey, i.prevEpoch, i.hasPrev = i.key, i.epoch, true
	i.key, i.epoch = *k, epoch
	clear(k[:])
}

// VerifyIntegrity challenges the peer now and waits for its proof (draft
// §17.3: "on demand"). A wrong proof ends the session and returns
// ErrIntegrity; no answer in 10 s returns ErrIntegrityTimeout.
func (s *Session) VerifyIntegrity(ctx context.Context) error {
	if err := s.awaitLayer(ctx); err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	s.integ.waiters = append(s.integ.waiters, ch)
	if !s.integ.outstanding {
		s.challengeLocked()
	}
	s.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-s.done:
		// A wrong proof settles the waiters and then ends the session:
		// when both are ready, the verdict is the answer, not the close.
		select {
		case err := <-ch:
			return err
		default:
		}
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// integrityTick sends the periodic challenge, once the peer has shown it
// speaks the living-session layer (its first telemetry, §7.7).
func (s *Session) integrityTick() {
	s.mu.Lock()
	if s.err == nil && !s.closing && !s.integ.outstanding && s.peerSpeaksLayer() {
		s.challengeLocked()
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	default:
		s.integ.timer.Reset(s.cfg.IntegrityInterval)
	}
}

func (s *Session) peerSpeaksLayer() bool {
	select {
	case <-s.layer:
		return true
	default:
		return false
	}
}

// awaitLayer waits for the layer signal (§7.7): the peer's first telemetry
// HEARTBEAT, which it sends as soon as the session starts.
func (s *Session) awaitLayer(ctx context.Context) error {
	select {
	case <-s.layer:
		return nil
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) challengeLocked() {
	i := &s.integ
	if s.closing {
		return
	}
	if _, err := io.ReadFull(s.cfg.Rand, i.nonce[:]); err != nil {
		// A failing generator (a health test tripped, §17.3): no
		// challenge without a fresh nonce; the node's monitor reacts.
		s.log.Error("INTEGRITY challenge skipped: random source failed", "err", err)
		s.settleLocked(fmt.Errorf("pool: INTEGRITY challenge: %w", err))
		return
	}
	i.outstanding = true
	nonce := i.nonce
	i.deadline = time.AfterFunc(IntegrityTimeout, func() { s.integrityExpired(nonce) })
	s.queueControlLocked(&wire.Integrity{Kind: wire.IntegrityChallenge, Nonce: nonce})
}

func (s *Session) integrityExpired(nonce [wire.IntegrityNonceLen]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := &s.integ
	if !i.outstanding || i.nonce != nonce {
		return
	}
	i.outstanding = false
	i.timeouts++
	i.verified = false
	s.log.Warn("INTEGRITY challenge not answered", "timeout", IntegrityTimeout)
	s.emit(Event{Kind: EventIntegrityTimeout})
	s.settleLocked(ErrIntegrityTimeout)
}

func (s *Session) settleLocked(err error) {
	for _, w := range s.integ.waiters {
		w <- err
	}
	s.integ.waiters = nil
}

// queueControlLocked queues an INTEGRITY packet ahead of queued DATA.
func (s *Session) queueControlLocked(m *wire.Integrity) {
	n := wire.IntegrityChallengeLen
	if m.Kind == wire.IntegrityResponse {
		n = wire.IntegrityResponseLen
	}
	buf := bufpool.Get(wire.HeaderLen + n + wire.TagLen)
	wire.AppendIntegrity((*buf)[:wire.HeaderLen], m)
	s.out.notices = append(s.out.notices, outPkt{buf: buf, n: n, typ: wire.TypeIntegrity})
	s.out.wake()
}

func (s *Session) roles() (ours, peers wire.Role) {
	if s.initiator {
		return wire.RoleClient, wire.RoleServer
	}
	return wire.RoleServer, wire.RoleClient
}

// onIntegrity answers a CHALLENGE or checks a RESPONSE (§7.12).
func (s *Session) onIntegrity(ch uint8, pt []byte) error {
	m, err := wire.ParseIntegrity(pt)
	if err != nil {
		return s.protocolError(err.Error())
	}
	ours, peers := s.roles()
	now := time.Duration(s.monotonic())
	s.mu.Lock()
	defer s.mu.Unlock()
	i := &s.integ
	if m.Kind == wire.IntegrityChallenge {
		if i.answered == 0 {
			i.tokens = integrityBurst
		} else {
			i.tokens = min(integrityBurst, i.tokens+(now-i.lastAnswer).Seconds())
		}
		i.lastAnswer = now
		if i.tokens < 1 {
			return nil // faster than one per second: ignored (§7.12)
		}
		i.tokens--
		i.answered++
		proof := wire.IntegrityProof(&i.key, &s.sid, &m.Nonce, ours)
		s.queueControlLocked(&wire.Integrity{Kind: wire.IntegrityResponse, Epoch: i.epoch, Nonce: m.Nonce, Proof: proof})
		return nil
	}
	if !i.outstanding || m.Nonce != i.nonce {
		i.unmatched++ // late or unknown: ignored and counted
		return nil
	}
	i.outstanding = false
	i.deadline.Stop()
	var key *[32]byte
	switch {
	case m.Epoch == i.epoch:
		key = &i.key
	case i.hasPrev && m.Epoch == i.prevEpoch:
		key = &i.prevKey
	}
	if key == nil || !wire.VerifyIntegrityProof(key, &s.sid, &m.Nonce, peers, &m.Proof) {
		i.failed++
		s.log.Error("INTEGRITY proof mismatch: the peer's crypto path is not behaving (draft §17.3)", "epoch", m.Epoch)
		s.settleLocked(ErrIntegrity)
		if s.cfg.OnIntegrityFailure != nil {
			go s.cfg.OnIntegrityFailure(ErrIntegrity)
		}
		s.closeLocked(&CloseError{Code: wire.CodeProtocolError, Reason: "INTEGRITY proof mismatch"},
			wire.CodeProtocolError, "INTEGRITY proof mismatch", true)
		return errClosing
	}
	i.ok++
	if !i.verified {
		i.verified = true
		s.emit(Event{Kind: EventIntegrityVerified})
	}
	s.settleLocked(nil)
	return nil
}
