package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Role is a side's handshake role. Its byte values are the rekey role bytes
// of PROTOCOL.md §5.8, and it enters the state digest input and the
// INTEGRITY proof.
type Role uint8

// Handshake roles.
const (
	RoleClient Role = 0x01 // the handshake initiator
	RoleServer Role = 0x02 // the handshake responder
)

// INTEGRITY kinds (PROTOCOL.md §7.12).
const (
	IntegrityChallenge uint8 = 1
	IntegrityResponse  uint8 = 2
)

// INTEGRITY sizes.
const (
	IntegrityNonceLen     = 32
	IntegrityProofLen     = sha256.Size                               // 32
	IntegrityChallengeLen = 4 + IntegrityNonceLen                     // 36
	IntegrityResponseLen  = 8 + IntegrityNonceLen + IntegrityProofLen // 72
)

// IntegrityLabel is the Expand label of the per-epoch integrity key,
// K_int(n) = Expand(M_n, "integrity", "") (PROTOCOL.md §5.2 info encoding;
// info = 0f "pool1 integrity" 00), derived beside the traffic keys of every
// epoch. IntegrityContext is the same text used raw (no length prefix) at
// the start of the proof input, as "pool1 rekey" is in the rekey transcript.
const (
	IntegrityLabel   = "integrity"
	IntegrityContext = "pool1 integrity"
)

// IntegrityMACInputLen is the size of the proof input:
// "pool1 integrity" (15) ‖ SID (16) ‖ u8(role) ‖ nonce (32).
const IntegrityMACInputLen = len(IntegrityContext) + 16 + 1 + IntegrityNonceLen // 64

// Integrity is an INTEGRITY plaintext. A CHALLENGE carries only Nonce; a
// RESPONSE echoes the Nonce and carries the responder's Epoch and Proof.
type Integrity struct {
	Kind  uint8
	Epoch uint32 // RESPONSE: the epoch whose K_int computed Proof
	Nonce [IntegrityNonceLen]byte
	Proof [IntegrityProofLen]byte // RESPONSE only
}

// AppendIntegrity appends a CHALLENGE (kind, 3 reserved bytes, nonce: 36
// bytes) or a RESPONSE (kind, 3 reserved bytes, BE32 epoch, nonce, proof:
// 72 bytes). Fields a kind does not carry are not written. It does not
// allocate when dst has room. An unknown kind is a programming error.
func AppendIntegrity(dst []byte, m *Integrity) []byte {
	switch m.Kind {
	case IntegrityChallenge:
		var b [IntegrityChallengeLen]byte
		b[0] = m.Kind
		copy(b[4:], m.Nonce[:])
		return append(dst, b[:]...)
	case IntegrityResponse:
		var b [IntegrityResponseLen]byte
		b[0] = m.Kind
		binary.BigEndian.PutUint32(b[4:8], m.Epoch)
		copy(b[8:40], m.Nonce[:])
		copy(b[40:72], m.Proof[:])
		return append(dst, b[:]...)
	}
	panic(fmt.Sprintf("wire: AppendIntegrity with kind %d", m.Kind))
}

// ParseIntegrity decodes an INTEGRITY plaintext: the length must be exactly
// the kind's; the reserved bytes 1-3 are ignored; any other kind is
// malformed.
func ParseIntegrity(p []byte) (Integrity, error) {
	var m Integrity
	if len(p) == 0 {
		return m, fmt.Errorf("%w: empty INTEGRITY plaintext", ErrLength)
	}
	switch p[0] {
	case IntegrityChallenge:
		if len(p) != IntegrityChallengeLen {
			return m, fmt.Errorf("%w: INTEGRITY challenge is %d bytes, want %d", ErrLength, len(p), IntegrityChallengeLen)
		}
		copy(m.Nonce[:], p[4:])
	case IntegrityResponse:
		if len(p) != IntegrityResponseLen {
			return m, fmt.Errorf("%w: INTEGRITY response is %d bytes, want %d", ErrLength, len(p), IntegrityResponseLen)
		}
		m.Epoch = binary.BigEndian.Uint32(p[4:8])
		copy(m.Nonce[:], p[8:40])
		copy(m.Proof[:], p[40:72])
	default:
		return m, fmt.Errorf("%w: INTEGRITY kind %d", ErrMalformed, p[0])
	}
	m.Kind = p[0]
	return m, nil
}

// AppendIntegrityMACInput appends the 64-byte proof input
// "pool1 integrity" ‖ SID ‖ u8(role) ‖ nonce, where role is the handshake
// role of the side that answers the challenge.
func AppendIntegrityMACInput(dst []byte, sid *[16]byte, nonce *[IntegrityNonceLen]byte, role Role) []byte {
	dst = append(dst, IntegrityContext...)
	dst = append(dst, sid[:]...)
	dst = append(dst, byte(role))
	return append(dst, nonce[:]...)
}

// IntegrityProof computes a RESPONSE's proof: HMAC-SHA256(K_int(n),
// "pool1 integrity" ‖ SID ‖ u8(role) ‖ nonce), with key the responder's
// K_int of its current send epoch and role the responder's handshake role.
// The role keeps a side from answering a challenge by reflecting it to the
// challenger (PROTOCOL.md §7.12).
func IntegrityProof(key *[32]byte, sid *[16]byte, nonce *[IntegrityNonceLen]byte, role Role) [IntegrityProofLen]byte {
	var in [IntegrityMACInputLen]byte
	AppendIntegrityMACInput(in[:0], sid, nonce, role)
	mac := hmac.New(sha256.New, key[:])
	mac.Write(in[:])
	var out [IntegrityProofLen]byte
	mac.Sum(out[:0])
	return out
}

// VerifyIntegrityProof recomputes the proof expected from a responder of
// the given role and compares it with proof in constant time (P03).
func VerifyIntegrityProof(key *[32]byte, sid *[16]byte, nonce *[IntegrityNonceLen]byte, role Role, proof *[IntegrityProofLen]byte) bool {
	want := IntegrityProof(key, sid, nonce, role)
	return ProofEqual(&want, proof)
}

// ProofEqual compares two proofs in constant time (draft P03: never a
// variable-time comparison of an authentication tag).
func ProofEqual(a, b *[IntegrityProofLen]byte) bool { return hmac.Equal(a[:], b[:]) }
