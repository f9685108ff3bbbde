package handshake

import (
	"crypto/ecdh"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
)

// Established is the outcome of a completed handshake, handed to the session
// layer, which takes ownership of the keys (and zeroes them when done).
//
// For the server the client is not yet confirmed: it becomes authenticated
// only when its first traffic packet opens under the c2s keys, which depend
// on se (handshake.md §3, event 2). Until then the session must deliver
// nothing and act on nothing.
type Established struct {
	Initiator   bool // this side sent INIT (the client)
	SID         [16]byte
	Version     uint8
	Peer        addr.PublicKey // the peer's static identity key
	Keys        seal.EpochKeys // epoch 0
	SendSeq     uint64         // next sequence number this side sends
	RecvSeq     uint64         // next sequence number expected from the peer
	SessionHash [32]byte       // h4, the channel binding (handshake.md §4.1)
	// Static is this side's identity key: a rekey mixes the static DHs
	// back in (handshake.md §5), so the session needs it after the
	// handshake.
	Static *ecdh.PrivateKey
}
