package addr

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// PublicKey is an X25519 public key exactly as it travels on the wire: the
// 32-byte little-endian u-coordinate of RFC 7748 §5.
type PublicKey [32]byte

const (
	publicKeyBase64Len = 44 // base64.StdEncoding.EncodedLen(32), padded, as WireGuard prints keys
	publicKeyHexLen    = 64
)

// ErrNonCanonical is wrapped by every error that rejects a public key because
// its encoding is not canonical (see PublicKey.Canonical).
var ErrNonCanonical = errors.New("non-canonical public key")

// fieldPrime is p = 2^255 - 19 in the little-endian byte order of RFC 7748 §5.
var fieldPrime = PublicKey{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// String returns the key in standard, padded base64 (44 characters), the
// form WireGuard users already know from their keys.
func (k PublicKey) String() string {
	return base64.StdEncoding.EncodeToString(k[:])
}

// Canonical reports whether k is the unique encoding of its u-coordinate:
// bit 255 (the top bit of byte 31: RFC 7748 §5 reads the bytes
// little-endian, handshake.md §8.1's "all integers are big-endian"
// notwithstanding) is clear and u < 2^255 - 19.
//
// X25519 masks bit 255 and reduces u mod p, so without this check one
// private key answers to several byte strings, hence several node IDs and
// several "identities" that evade deny-lists, per-peer limits and the P13
// record (handshake.md §3). Go's crypto/ecdh accepts any 32 bytes as a
// public key, so the check is ours.
//
// The all-zero key and the other low-order points are canonical encodings and
// pass here; they are caught at DH time, where crypto/ecdh refuses the
// all-zero shared secret they produce (handshake.md §3, §8.1).
//
// Public keys are public, so the comparison need not be constant time.
func (k PublicKey) Canonical() bool {
	return k.canonicalError() == nil
}

// canonicalError says why k is not canonical, or returns nil.
func (k PublicKey) canonicalError() error {
	if k[31]&0x80 != 0 {
		return fmt.Errorf("%w: bit 255 is set (X25519 ignores it, so the same key has another encoding)", ErrNonCanonical)
	}
	// Compare as little-endian integers, most significant byte first.
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] != fieldPrime[i] {
			if k[i] < fieldPrime[i] {
				return nil
			}
			break
		}
	}
	return fmt.Errorf("%w: u-coordinate is not below 2^255-19 (not reduced mod p, so the same key has another encoding)", ErrNonCanonical)
}

// NodeID returns the 64-bit node ID that an address carries for this key:
// the first 8 bytes of SHA-256 over the 32 wire bytes (DESIGN 2.10).
func (k PublicKey) NodeID() [8]byte {
	sum := sha256.Sum256(k[:])
	return [8]byte(sum[:8])
}

// ParsePublicKey parses a public key written as 44 characters of standard
// padded base64 (what String prints) or as 64 hex digits of either case.
// Surrounding whitespace is ignored. Non-canonical keys are rejected with an
// error wrapping ErrNonCanonical, so a key accepted here can be used as a map
// key for allow-lists and pins.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	t := strings.TrimSpace(s)
	var raw []byte
	var err error
	switch len(t) {
	case publicKeyBase64Len:
		// Strict: the 2 unused low bits of the last character must be zero,
		// so each key has exactly one base64 spelling.
		raw, err = base64.StdEncoding.Strict().DecodeString(t)
		if err != nil {
			return k, fmt.Errorf("not a public key: %s is not valid base64 (%v)", quoteInput(t), err)
		}
	case publicKeyHexLen:
		raw, err = hex.DecodeString(t)
		if err != nil {
			return k, fmt.Errorf("not a public key: %s is not valid hex (%v)", quoteInput(t), err)
		}
	default:
		if len(t) > len(addressPrefix) && strings.EqualFold(t[:len(addressPrefix)], addressPrefix) {
			// Addresses carry only a 64-bit hash of the key, too little to
			// authenticate a peer (DESIGN 2.10); say so instead of counting.
			return k, fmt.Errorf("not a public key: %s is a POOL address, which names a node but cannot authenticate it; use its public key (the \"public key:\" line of \"pool keygen\" or \"pool addr FILE\")", quoteInput(t))
		}
		return k, fmt.Errorf("not a public key: %s has %d characters; want 44 base64 characters or 64 hex digits", quoteInput(t), len(t))
	}
	if len(raw) != len(k) {
		// 44 base64 characters without '=' decode to 33 bytes.
		return k, fmt.Errorf("not a public key: %s decodes to %d bytes, want 32", quoteInput(t), len(raw))
	}
	copy(k[:], raw)
	if err := k.canonicalError(); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// quoteInput quotes user input for an error message, shortened so that a
// pasted file or a fuzzer's megabyte does not end up in a log line.
func quoteInput(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
