package handshake

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
	"github.com/pool-go/pool/internal/wire"
)

// rekeyLabel starts the rekey transcript T (PROTOCOL.md §5.8).
const rekeyLabel = "pool1 rekey"

// Rekey role bytes in T: which handshake role initiated the rekey. Traffic
// key directions always follow handshake roles, never rekey roles
// (handshake.md §5).
const (
	RekeyByClient byte = 0x01
	RekeyByServer byte = 0x02
)

// RekeyEphemeral returns a fresh X25519 key pair for one REKEY (e').
func RekeyEphemeral() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// RekeyExchange is what both sides of one rekey know: the session, the
// ratchet secret R_n, the epoch being entered, who initiated, and both
// plaintexts as sent (handshake.md §8.10).
type RekeyExchange struct {
	SID     [16]byte
	Ratchet *[32]byte // R_n; zeroed by Derive
	Epoch   uint32    // n+1
	Role    byte      // RekeyByClient or RekeyByServer
	Init    *wire.Rekey
	Ack     *wire.Rekey
}

// transcript is T = H("pool1 rekey" || SID || BE32(n+1) || role ||
// REKEY_INIT.plaintext || REKEY_ACK.plaintext), 112 bytes hashed.
func (x *RekeyExchange) transcript() [32]byte {
	var epoch [4]byte
	binary.BigEndian.PutUint32(epoch[:], x.Epoch)
	return hashOf([]byte(rekeyLabel), x.SID[:], epoch[:], []byte{x.Role},
		wire.AppendRekey(nil, x.Init), wire.AppendRekey(nil, x.Ack))
}

// DeriveAsInitiator computes epoch n+1's keys on the side that sent
// REKEY_INIT: eI is its ephemeral, static its identity key, peerStatic the
// responder's identity.
func (x *RekeyExchange) DeriveAsInitiator(eI, static *ecdh.PrivateKey, peerStatic addr.PublicKey) (seal.EpochKeys, error) {
	ee, err := x25519(eI, x.Ack.E[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	eIsR, err := x25519(eI, peerStatic[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	sIeR, err := x25519(static, x.Ack.E[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	return x.derive(ee, eIsR, sIeR), nil
}

// DeriveAsResponder computes the same keys on the side that answered with
// REKEY_ACK: eR is its ephemeral, static its identity key, peerStatic the
// initiator's identity.
func (x *RekeyExchange) DeriveAsResponder(eR, static *ecdh.PrivateKey, peerStatic addr.PublicKey) (seal.EpochKeys, error) {
	ee, err := x25519(eR, x.Init.E[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	eIsR, err := x25519(static, x.Init.E[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	sIeR, err := x25519(eR, peerStatic[:])
	if err != nil {
		return seal.EpochKeys{}, err
	}
	return x.derive(ee, eIsR, sIeR), nil
}

// derive: S' = Extract(Extract(Extract(R_n, ee), DH(e_I', s_R)), DH(s_I, e_R')),
// M_{n+1} = Expand(S', "master", T), then the §5.6 keys and R_{n+1}. The
// static DHs make the new keys depend on both identity keys, so stealing
// only traffic keys or R_n does not let an attacker stay in the middle
// across a rekey (handshake.md §5). R_n, S' and M are wiped.
func (x *RekeyExchange) derive(ee, eIsR, sIeR []byte) seal.EpochKeys {
	t := x.transcript()
	s1 := seal.Extract(x.Ratchet[:], ee)
	s2 := seal.Extract(s1[:], eIsR)
	s3 := seal.Extract(s2[:], sIeR)
	m := seal.Expand(s3[:], "master", t[:])
	keys := seal.DeriveEpoch(&m)
	clear(x.Ratchet[:])
	clear(s1[:])
	clear(s2[:])
	clear(s3[:])
	clear(m[:])
	clear(ee)
	clear(eIsR)
	clear(sIeR)
	return keys
}
