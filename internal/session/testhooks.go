package session

// CorruptIntegrityForTest is for tests only: it makes s answer the peer's
// INTEGRITY challenges with wrong proofs, as a side whose crypto path
// misbehaves would (draft §17.3, PROTOCOL.md §7.12), by flipping a bit of
// its K_int of the current and the previous epoch. The peer's verifier
// then sees a proof mismatch and fails closed. A rekey installs a sound
// K_int again. Nothing but tests (internal/node's, of the node's
// fail-closed response to a misbehaving peer) may call it: no public API
// can make an honest session send a wrong proof.
func CorruptIntegrityForTest(s *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.integ.key[0] ^= 1
	s.integ.prevKey[0] ^= 1
}

// LoseConfirmRequestsForTest is for tests only: from now on s's
// confirmation requests for its proposals (PROTOCOL.md §7.15) are lost on
// the way, as on a lossy path. Over TCP a transport cannot drop a packet
// without breaking the exact sequence the receiver demands (§4.4), so the
// request is dropped before it takes a sequence number: the peer sees
// exactly what it would see had the path lost it. internal/node's tests
// use it to show P07 end to end between two nodes; the session's own test
// drops the sealed packets on a datagram pipe.
func LoseConfirmRequestsForTest(s *Session) { s.pcfg.lose.Store(true) }
