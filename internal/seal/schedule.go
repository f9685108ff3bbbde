// Package seal holds POOL's key schedule and packet protection: HKDF labels
// (handshake.md §8.1, §8.8), the ChaCha20-Poly1305 + HMAC-SHA256 seal of
// every keyed packet with the P01 nonce (§8.9), and the anti-replay window
// (N02, handshake.md §7.4).
package seal

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// KeyLen is the size of every secret, key and chaining value in v1.
const KeyLen = 32

// LabelPrefix is prepended to every Expand label (handshake.md §8.1) so no
// POOL label can collide with another protocol's use of the same secret.
const LabelPrefix = "pool1 "

// Extract is HKDF-Extract-SHA256 with the chaining value as salt and the DH
// output as input keying material (vectors note 23, PROTOCOL.md §12.2).
func Extract(salt, ikm []byte) [KeyLen]byte {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		panic("seal: HKDF-Extract: " + err.Error()) // cannot fail for SHA-256
	}
	var out [KeyLen]byte
	copy(out[:], prk)
	clear(prk)
	return out
}

// Info builds the HKDF-Expand info: u8(len(L)) || L || u8(len(ctx)) || ctx
// with L = "pool1 " || label. The length prefixes keep any label from being
// a prefix of another (TLS 1.3 HkdfLabel style, handshake.md §4.1).
func Info(label string, ctx []byte) []byte {
	l := LabelPrefix + label
	if len(l) > 255 || len(ctx) > 255 {
		panic("seal: label or context too long")
	}
	info := make([]byte, 0, 2+len(l)+len(ctx))
	info = append(info, byte(len(l)))
	info = append(info, l...)
	info = append(info, byte(len(ctx)))
	return append(info, ctx...)
}

// Expand is HKDF-Expand-SHA256(prk, Info(label, ctx), 32).
func Expand(prk []byte, label string, ctx []byte) [KeyLen]byte {
	k, err := hkdf.Expand(sha256.New, prk, string(Info(label, ctx)), KeyLen)
	if err != nil {
		panic("seal: HKDF-Expand: " + err.Error()) // cannot fail for 32 bytes
	}
	var out [KeyLen]byte
	copy(out[:], k)
	clear(k)
	return out
}

// DirectionKeys are the keys of one direction of one epoch. Seq is derived
// (draft §5.1's "sequence key") but reserved: it is never used as an ISN
// source (handshake.md §4.5).
type DirectionKeys struct {
	Enc, HMAC, Seq [KeyLen]byte
}

// Zero wipes the keys.
func (d *DirectionKeys) Zero() { clear(d.Enc[:]); clear(d.HMAC[:]); clear(d.Seq[:]) }

// EpochKeys are everything one epoch's master secret yields. Directions are
// named by handshake role (c2s = from the handshake initiator), never by
// rekey role (handshake.md §5).
type EpochKeys struct {
	C2S, S2C DirectionKeys
	Rekey    [KeyLen]byte // R_n, the ratchet secret for the next rekey
	// Integrity is K_int(n), the key of INTEGRITY proofs (PROTOCOL.md
	// §7.12): drawn from the live schedule, never a traffic key reused.
	Integrity [KeyLen]byte
}

// Zero wipes all keys.
func (e *EpochKeys) Zero() { e.C2S.Zero(); e.S2C.Zero(); clear(e.Rekey[:]); clear(e.Integrity[:]) }

// DeriveEpoch expands a master secret (M0 from the handshake, M_n from a
// rekey) into directional traffic keys and the next ratchet secret
// (handshake.md §8.8, §8.10).
func DeriveEpoch(master *[KeyLen]byte) EpochKeys {
	m := master[:]
	return EpochKeys{
		C2S:       DirectionKeys{Enc: Expand(m, "c2s key", nil), HMAC: Expand(m, "c2s hmac", nil), Seq: Expand(m, "c2s seq", nil)},
		S2C:       DirectionKeys{Enc: Expand(m, "s2c key", nil), HMAC: Expand(m, "s2c hmac", nil), Seq: Expand(m, "s2c seq", nil)},
		Rekey:     Expand(m, "rekey", nil),
		Integrity: Expand(m, "integrity", nil),
	}
}
