package wire

import (
	"encoding/binary"
	"fmt"
)

// RekeyLen is the REKEY plaintext: kind, 3 reserved bytes, the new epoch
// and a fresh X25519 public key (handshake.md §8.10, PROTOCOL.md §5.8).
const RekeyLen = 40

// REKEY kinds.
const (
	RekeyInit uint8 = 1
	RekeyAck  uint8 = 2
)

// Rekey is the plaintext of a REKEY packet. Its bytes are bound into the
// rekey transcript T, so the codec is canonical: reserved bytes must be
// zero on receipt too, or the two sides would hash different inputs.
type Rekey struct {
	Kind  uint8
	Epoch uint32 // the epoch being entered, n+1
	E     [32]byte
}

// AppendRekey appends the 40-byte plaintext.
func AppendRekey(dst []byte, r *Rekey) []byte {
	var b [RekeyLen]byte
	b[0] = r.Kind
	binary.BigEndian.PutUint32(b[4:8], r.Epoch)
	copy(b[8:], r.E[:])
	return append(dst, b[:]...)
}

// ParseRekey decodes a REKEY plaintext.
func ParseRekey(p []byte) (Rekey, error) {
	var r Rekey
	if len(p) != RekeyLen {
		return r, fmt.Errorf("%w: REKEY plaintext of %d bytes, want %d", ErrLength, len(p), RekeyLen)
	}
	if p[0] != RekeyInit && p[0] != RekeyAck {
		return r, fmt.Errorf("%w: REKEY kind %d", ErrMalformed, p[0])
	}
	if p[1]|p[2]|p[3] != 0 {
		return r, fmt.Errorf("%w: REKEY bytes 1-3", ErrReserved)
	}
	r.Kind = p[0]
	r.Epoch = binary.BigEndian.Uint32(p[4:8])
	copy(r.E[:], p[8:])
	return r, nil
}
