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
