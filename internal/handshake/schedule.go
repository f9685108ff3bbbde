// Package handshake implements POOL v1's "IK after cookie" handshake
// (handshake.md §8): the stateless cookie and puzzle, secret rotation, the
// INIT / CHALLENGE / RESPONSE / ACCEPT exchange for both roles, and its key
// schedule. It is transport-agnostic: callers hand it packets and the
// transport path and get back packets to send and, at the end, the keys of
// an established session.
package handshake

import (
	"crypto/ecdh"
	"crypto/sha256"
	"errors"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/seal"
)

// Proto names the protocol, its pattern and its primitives; its hash is the
// first chaining key, so a change of any of them changes every key.
const Proto = "POOL/1 IK-cookie X25519 ChaCha20-Poly1305 HMAC-SHA256"

// ck0 = H(PROTO) (handshake.md §8.8).
var ck0 = sha256.Sum256([]byte(Proto))

// ErrNonCanonicalKey rejects public keys with bit 255 set or u >= 2^255-19:
// they alias another key's identity (handshake.md §3).
var ErrNonCanonicalKey = errors.New("handshake: non-canonical public key")

// dhFunc computes X25519. Tests replace it to count DH operations, proving
// that rejected RESPONSEs cost no DH (handshake.md §8.13).
type dhFunc func(priv *ecdh.PrivateKey, pub []byte) ([]byte, error)

func x25519(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	if !addr.PublicKey(pub).Canonical() {
		return nil, ErrNonCanonicalKey
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	// crypto/ecdh refuses an all-zero result (a low-order point).
	return priv.ECDH(p)
}

func hashOf(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// stage is one handshake AEAD stage: its encryption key and HMAC key.
type stage struct{ enc, mac [32]byte }

func deriveStage(ck *[32]byte, label string, h *[32]byte) stage {
	return stage{
		enc: seal.Expand(ck[:], label+" key", h[:]),
		mac: seal.Expand(ck[:], label+" hmac", h[:]),
	}
}

func (s *stage) zero() { clear(s.enc[:]); clear(s.mac[:]) }

// sealStage encrypts a handshake blob with the P01 nonce of the stage's HMAC
// key and the transcript hash as associated data (vectors note 8, PROTOCOL.md §12.2).
func (s *stage) seal(dst []byte, seq uint64, pt []byte, ad *[32]byte) []byte {
	n := seal.Nonce(s.mac[:], seq)
	return seal.AEAD(s.enc[:]).Seal(dst, n[:], pt, ad[:])
}

func (s *stage) open(seq uint64, ct []byte, ad *[32]byte) ([]byte, error) {
	n := seal.Nonce(s.mac[:], seq)
	return seal.AEAD(s.enc[:]).Open(nil, n[:], ct, ad[:])
}

// mac computes a handshake header HMAC: HMAC(key, hdr[0:48] || 0^32 || parts...).
func (s *stage) hmac(hdr []byte, parts ...[]byte) [32]byte {
	return hmacParts(s.mac[:], append([][]byte{hdr[:48], make([]byte, 32)}, parts...)...)
}

// schedule carries the running transcript hash and chaining key through the
// handshake; both roles run the same steps.
type schedule struct {
	h0, h1, h2, h2b, h3, h4 [32]byte
	ck1, ck2, ck3           [32]byte
	s1, s2, s3              stage
}

func (k *schedule) zero() {
	clear(k.ck1[:])
	clear(k.ck2[:])
	clear(k.ck3[:])
	k.s1.zero()
	k.s2.zero()
	k.s3.zero()
}

// start: h0 = H(ck0 || INIT* || CHALLENGE*); h1 = H(h0 || RESPONSE.hdr[0:48] || payload[0:84]).
func (k *schedule) start(initPkt, challengePkt, respHdr48, respEcho []byte) {
	k.h0 = hashOf(ck0[:], initPkt, challengePkt)
	k.h1 = hashOf(k.h0[:], respHdr48, respEcho)
}

// afterES: ck1 = Extract(ck0, es); stage 1 keys under h1.
func (k *schedule) afterES(es []byte) {
	k.ck1 = seal.Extract(ck0[:], es)
	k.s1 = deriveStage(&k.ck1, "c hs1", &k.h1)
}

// afterSS: h2 = H(h1 || c_static); ck2 = Extract(ck1, ss); stage 2 under h2.
func (k *schedule) afterSS(cStatic, ss []byte) {
	k.h2 = hashOf(k.h1[:], cStatic)
	k.ck2 = seal.Extract(k.ck1[:], ss)
	k.s2 = deriveStage(&k.ck2, "c hs2", &k.h2)
}

// afterEESE: h2b = H(h2 || c_pC); h3 = H(h2b || ACCEPT.hdr[0:48] || e_S);
// ck3 = Extract(Extract(ck2, ee), se); stage 3 under h3.
func (k *schedule) afterEESE(cParamsC, acceptHdr48, eS, ee, se []byte) {
	k.h2b = hashOf(k.h2[:], cParamsC)
	k.h3 = hashOf(k.h2b[:], acceptHdr48, eS)
	t := seal.Extract(k.ck2[:], ee)
	k.ck3 = seal.Extract(t[:], se)
	clear(t[:])
	k.s3 = deriveStage(&k.ck3, "s hs", &k.h3)
}

// finish: h4 = H(h3 || c_pS); M0 = Expand(ck3, "master", h4); epoch-0 keys.
func (k *schedule) finish(cParamsS []byte) seal.EpochKeys {
	k.h4 = hashOf(k.h3[:], cParamsS)
	m0 := seal.Expand(k.ck3[:], "master", k.h4[:])
	keys := seal.DeriveEpoch(&m0)
	clear(m0[:])
	return keys
}
