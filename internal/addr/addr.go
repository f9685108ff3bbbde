package addr

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf8"
)

// Address is a 256-bit POOL node address (draft §6, DESIGN 2.10), all fields
// big-endian:
//
//	bytes  0-1   address type     (TypeNode)
//	bytes  2-3   format version   (Version1)
//	bytes  4-11  organization/network ID
//	bytes 12-19  subnet/segment ID
//	bytes 20-27  node ID = SHA-256(identity public key)[0:8]
//	bytes 28-31  CRC-32/IEEE (zlib, hash/crc32.ChecksumIEEE) of bytes 0-27
//
// The draft fixes only the field widths; the rest is our choice
// (reference-notes §8), recorded in testdata/address-v1.json.
//
// An address is a weak identifier: see Matches.
type Address [32]byte

const (
	// TypeNode is the only address type defined so far: a node address for
	// an X25519 identity whose node ID is SHA-256(key)[0:8].
	TypeNode uint16 = 0x0001
	// Version1 is the only address format version defined so far.
	Version1 uint16 = 0x0001
)

var (
	// ErrChecksum is wrapped by errors for an address whose CRC-32 does
	// not match: almost always a typo.
	ErrChecksum = errors.New("checksum mismatch: address mistyped?")
	// ErrUnknownType is wrapped by errors for an address type this
	// implementation does not know.
	ErrUnknownType = errors.New("unknown address type")
	// ErrUnknownVersion is wrapped by errors for an address format version
	// this implementation does not know.
	ErrUnknownVersion = errors.New("unknown address format version")
)

// New returns the version-1 node address of pub in the given organization
// and subnet, with its checksum filled in.
func New(pub PublicKey, org, subnet uint64) Address {
	var a Address
	binary.BigEndian.PutUint16(a[0:2], TypeNode)
	binary.BigEndian.PutUint16(a[2:4], Version1)
	binary.BigEndian.PutUint64(a[4:12], org)
	binary.BigEndian.PutUint64(a[12:20], subnet)
	id := pub.NodeID()
	copy(a[20:28], id[:])
	binary.BigEndian.PutUint32(a[28:32], a.computeChecksum())
	return a
}

// Type returns the address type field (bytes 0-1).
func (a Address) Type() uint16 { return binary.BigEndian.Uint16(a[0:2]) }

// Version returns the address format version field (bytes 2-3).
func (a Address) Version() uint16 { return binary.BigEndian.Uint16(a[2:4]) }

// Org returns the organization/network ID (bytes 4-11).
func (a Address) Org() uint64 { return binary.BigEndian.Uint64(a[4:12]) }

// Subnet returns the subnet/segment ID (bytes 12-19).
func (a Address) Subnet() uint64 { return binary.BigEndian.Uint64(a[12:20]) }

// NodeID returns the node ID (bytes 20-27).
func (a Address) NodeID() [8]byte { return [8]byte(a[20:28]) }

// Checksum returns the stored checksum field (bytes 28-31).
func (a Address) Checksum() uint32 { return binary.BigEndian.Uint32(a[28:32]) }

func (a Address) computeChecksum() uint32 { return crc32.ChecksumIEEE(a[:28]) }

// Valid reports whether a is a well-formed address this implementation
// understands: known type, known version and a matching checksum.
//
// The type and version are checked first because they say how the rest is to
// be read (draft §15.11 already foresees another checksum for later
// versions). If they are unknown and the CRC-32 fails as well, the error
// wraps ErrChecksum too, since a typo in the type digits is far likelier than
// an address from the future.
func (a Address) Valid() error {
	crcOK := a.Checksum() == a.computeChecksum()
	var err error
	switch {
	case a.Type() != TypeNode:
		err = fmt.Errorf("%w 0x%04x (known: 0x%04x)", ErrUnknownType, a.Type(), TypeNode)
	case a.Version() != Version1:
		err = fmt.Errorf("%w 0x%04x (known: 0x%04x)", ErrUnknownVersion, a.Version(), Version1)
	case !crcOK:
		return ErrChecksum
	default:
		return nil
	}
	if !crcOK {
		return fmt.Errorf("%w; %w", err, ErrChecksum)
	}
	return err
}

// Matches reports whether pub's node ID equals a's node ID.
//
// This is a weak check (handshake.md §3, DESIGN 2.10): forging a key with a
// given 64-bit node ID costs about 2^64 work, and only 2^64/N to hit any one
// of N nodes; org and subnet are self-asserted and not bound to the key at
// all. Use it only for explicit trust-on-first-use dialing by address; pin
// and authorize by the full PublicKey wherever possible.
func (a Address) Matches(pub PublicKey) bool {
	return a.NodeID() == pub.NodeID()
}

// Text form. The groups follow the binary fields so that a person can read
// the org, subnet and node ID off a pasted address, and the trailing CRC-32
// catches typos (every single-digit substitution and every adjacent
// transposition, since both are bursts of at most 8 bits, DESIGN 2.10).
const addressPrefix = "pool:"

// addressGroups describes the '-'-separated groups of the text form, in order.
var addressGroups = [...]struct {
	name     string
	from, to int // byte range in Address
}{
	{"type+version", 0, 4},
	{"org", 4, 12},
	{"subnet", 12, 20},
	{"node ID", 20, 28},
	{"checksum", 28, 32},
}

// String returns the text form
//
//	pool:TTTTVVVV-OOOOOOOOOOOOOOOO-SSSSSSSSSSSSSSSS-NNNNNNNNNNNNNNNN-CCCCCCCC
//
// in lowercase hex. It prints whatever the bytes hold, valid or not.
func (a Address) String() string {
	var b strings.Builder
	b.Grow(len(addressPrefix) + 2*len(a) + len(addressGroups) - 1)
	b.WriteString(addressPrefix)
	for i, g := range addressGroups {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(hex.EncodeToString(a[g.from:g.to]))
	}
	return b.String()
}

// ParseAddress parses the text form that String produces. Hex digits may be
// upper or lower case, the "pool:" prefix is matched without regard to case
// (so an address upper-cased whole by some tool still parses), and
// surrounding whitespace is ignored; nothing else is lenient. The result is
// checked with Valid, so a typo yields an error wrapping ErrChecksum.
func ParseAddress(s string) (Address, error) {
	t := strings.TrimSpace(s)
	fail := func(format string, args ...any) (Address, error) {
		return Address{}, fmt.Errorf("invalid POOL address %s: %s", quoteInput(t), fmt.Sprintf(format, args...))
	}
	if len(t) < len(addressPrefix) || !strings.EqualFold(t[:len(addressPrefix)], addressPrefix) {
		return fail("must start with %q", addressPrefix)
	}
	// SplitN bounds the work on hostile input with many '-'.
	groups := strings.SplitN(t[len(addressPrefix):], "-", len(addressGroups)+1)
	if len(groups) != len(addressGroups) {
		what := fmt.Sprintf("%d", len(groups))
		if len(groups) > len(addressGroups) {
			what = "more than 5"
		}
		return fail("has %s '-'-separated groups, want %d (8-16-16-16-8 hex digits)", what, len(addressGroups))
	}
	var a Address
	for i, g := range addressGroups {
		text := groups[i]
		want := 2 * (g.to - g.from)
		if len(text) != want {
			return fail("group %d (%s) has %d characters, want %d hex digits", i+1, g.name, len(text), want)
		}
		for j := 0; j < len(text); j++ {
			if !isHexDigit(text[j]) {
				r, _ := utf8.DecodeRuneInString(text[j:])
				return fail("group %d (%s) has bad hex digit %q at position %d", i+1, g.name, r, j+1)
			}
		}
		if _, err := hex.Decode(a[g.from:g.to], []byte(text)); err != nil {
			return fail("group %d (%s): %v", i+1, g.name, err) // unreachable after the digit check
		}
	}
	if err := a.Valid(); err != nil {
		return Address{}, fmt.Errorf("invalid POOL address %s: %w", quoteInput(t), err)
	}
	return a, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
