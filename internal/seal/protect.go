package seal

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// Packet geometry shared with internal/wire, repeated here so this package
// stays free of the codec.
const (
	hdrLen   = 80
	adLen    = 48 // header bytes 0..47: the AEAD associated data
	hmacOff  = 48
	TagLen   = chacha20poly1305.Overhead
	NonceLen = chacha20poly1305.NonceSize
)

// ErrAuth is the only error Open returns for a forged, corrupted or
// mis-keyed packet. AEAD and HMAC failures are deliberately not told apart:
// the distinction would be an oracle (handshake.md §4.3).
var ErrAuth = errors.New("seal: packet authentication failed")

var zeroMAC [32]byte

// Nonce builds the P01 nonce: hmac_key[0:4] || BE64(seq). Directional HMAC
// keys make the prefix differ per direction and per epoch.
func Nonce(hmacKey []byte, seq uint64) [NonceLen]byte {
	var n [NonceLen]byte
	copy(n[0:4], hmacKey[0:4])
	binary.BigEndian.PutUint64(n[4:12], seq)
	return n
}

// AEAD builds a ChaCha20-Poly1305 instance. Go keeps its own copy of the
// key inside; we cannot erase it (handshake.md §7.5 documents the limit).
func AEAD(key []byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		panic("seal: " + err.Error()) // only for a wrong key length
	}
	return a
}

// Protector seals or opens the packets of one direction of one epoch. It is
// not safe for concurrent use: each direction is owned by one goroutine,
// which also allocates sequence numbers in sealing order (handshake.md §4.2).
type Protector struct {
	aead   cipher.AEAD
	mac    hash.Hash
	prefix [4]byte
	sum    [32]byte
	nonce  [NonceLen]byte
}

// NewProtector keys a Protector for one direction. The caller may zero k
// afterwards.
func NewProtector(k *DirectionKeys) *Protector {
	p := &Protector{aead: AEAD(k.Enc[:]), mac: hmac.New(sha256.New, k.HMAC[:])}
	copy(p.prefix[:], k.HMAC[0:4])
	return p
}

func (p *Protector) setNonce(seq []byte) {
	copy(p.nonce[0:4], p.prefix[:])
	copy(p.nonce[4:12], seq)
}

// macOver writes HMAC(hdr[0:48] || 0^32 || plaintext) into p.sum (§5.3, P03).
func (p *Protector) macOver(hdr, pt []byte) {
	p.mac.Reset()
	p.mac.Write(hdr[:adLen])
	p.mac.Write(zeroMAC[:])
	p.mac.Write(pt)
	p.mac.Sum(p.sum[:0])
}

// Seal protects a traffic packet in place. pkt holds the 80-byte header
// (bytes 0..47 final: seq set, length = len(plaintext)+16, HMAC field
// ignored) followed by the plaintext; cap(pkt) must leave room for the tag.
// It returns pkt extended by the tag. The HMAC is over the plaintext, so it
// is computed before the in-place encryption (draft §5.3, DESIGN 2.5).
func (p *Protector) Seal(pkt []byte) []byte {
	pt := pkt[hdrLen:]
	p.macOver(pkt, pt)
	copy(pkt[hmacOff:hdrLen], p.sum[:])
	p.setNonce(pkt[4:12])
	ct := p.aead.Seal(pt[:0], p.nonce[:], pt, pkt[:adLen])
	return pkt[:hdrLen+len(ct)]
}

// Open verifies and decrypts a traffic packet in place, in the order of
// handshake.md §4.4: the AEAD tag first (Poly1305 is the cheap forgery
// filter), then the HMAC over header and plaintext, compared in constant
// time (P03). Plaintext is returned only when both pass; on an HMAC failure
// the decrypted bytes are wiped so unverified plaintext never escapes.
func (p *Protector) Open(pkt []byte) ([]byte, error) {
	if len(pkt) < hdrLen+TagLen {
		return nil, ErrAuth
	}
	p.setNonce(pkt[4:12])
	pt, err := p.aead.Open(pkt[hdrLen:hdrLen], p.nonce[:], pkt[hdrLen:], pkt[:adLen])
	if err != nil {
		return nil, ErrAuth
	}
	p.macOver(pkt, pt)
	if !hmac.Equal(p.sum[:], pkt[hmacOff:hdrLen]) {
		clear(pkt[hdrLen:])
		return nil, ErrAuth
	}
	return pt, nil
}

// Close drops the Protector's keys when its epoch ends (draft §5.4: old
// keys are discarded). The HMAC state and the nonce prefix are wiped; the
// AEAD's key copy lives inside x/crypto, which offers no way to erase it
// (the limit handshake.md §7.5 records), so it is only released to the
// garbage collector. A closed Protector must not be used.
func (p *Protector) Close() {
	p.mac.Reset()
	p.mac, p.aead = nil, nil
	clear(p.prefix[:])
	clear(p.sum[:])
	clear(p.nonce[:])
}
