package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// DISCOVER kinds (PROTOCOL.md §7.10). Kind 3 is set aside for the peer
// exchange of a later layer: a v1 receiver accepts and ignores it, so that
// layer can be deployed without breaking older nodes. Kind 0 and 4-255 are
// malformed.
const (
	DiscoverProbe        uint8 = 1
	DiscoverProbeAck     uint8 = 2
	DiscoverPeerExchange uint8 = 3 // reserved; not parsed by this package
)

// DISCOVER sizes. A probe's size counts the whole POOL packet (80-byte
// header, plaintext, 16-byte tag), not the IP or TCP headers beneath it.
const (
	DiscoverFixedLen = 8
	ProbeMinSize     = HeaderLen + DiscoverFixedLen + TagLen // 104: a probe without padding
	ProbeAckLen      = DiscoverFixedLen

	// MinMTU is the floor of the MTU search: every path must carry a POOL
	// packet of 512 bytes (532 bytes as an IPv4 datagram, below the 576
	// every IPv4 host must accept). It is also the unit of the fragment
	// limits (fragment.go).
	MinMTU = 512
)

// Discover is a DISCOVER plaintext of a known kind. For a PROBE, Size is
// the size of the whole probe packet and the plaintext is padded to make it
// so; for a PROBE_ACK, Size is the size of the probe packet as received.
// For the reserved PEER_EXCHANGE kind only Kind is set.
type Discover struct {
	Kind uint8
	Size uint16
	ID   uint32
}

// AppendDiscover appends a PROBE (8 bytes then Size − 104 zero bytes of
// padding, so the sealed packet is exactly Size bytes) or a PROBE_ACK (8
// bytes). It does not allocate when dst has room. A probe smaller than
// ProbeMinSize, or another kind, is a programming error.
func AppendDiscover(dst []byte, d *Discover) []byte {
	if d.Kind != DiscoverProbe && d.Kind != DiscoverProbeAck {
		panic(fmt.Sprintf("wire: AppendDiscover with kind %d", d.Kind))
	}
	if d.Kind == DiscoverProbe && d.Size < ProbeMinSize {
		panic(fmt.Sprintf("wire: probe of %d bytes, the smallest is %d", d.Size, ProbeMinSize))
	}
	var b [DiscoverFixedLen]byte
	b[0] = d.Kind
	binary.BigEndian.PutUint16(b[2:4], d.Size)
	binary.BigEndian.PutUint32(b[4:8], d.ID)
	dst = append(dst, b[:]...)
	if d.Kind == DiscoverProbe {
		n := ProbePlaintextLen(d.Size) - DiscoverFixedLen
		dst = slices.Grow(dst, n)
		dst = dst[:len(dst)+n]
		clear(dst[len(dst)-n:])
	}
	return dst
}

// ProbePlaintextLen is the plaintext length of a probe of size bytes on the
// wire: size − 80 − 16.
func ProbePlaintextLen(size uint16) int { return int(size) - HeaderLen - TagLen }

// ParseDiscover decodes a DISCOVER plaintext. A PROBE's plaintext must be
// exactly Size − 96 bytes and a PROBE_ACK's exactly 8; Size must be at
// least ProbeMinSize. Byte 1 and the probe padding are reserved: ignored
// here. A PEER_EXCHANGE (kind 3) of any length is returned with only Kind
// set, for the caller to ignore.
func ParseDiscover(p []byte) (Discover, error) {
	var d Discover
	if len(p) == 0 {
		return d, fmt.Errorf("%w: empty DISCOVER plaintext", ErrLength)
	}
	switch p[0] {
	case DiscoverPeerExchange:
		d.Kind = p[0]
		return d, nil
	case DiscoverProbe, DiscoverProbeAck:
	default:
		return d, fmt.Errorf("%w: DISCOVER kind %d", ErrMalformed, p[0])
	}
	if len(p) < DiscoverFixedLen {
		return d, fmt.Errorf("%w: DISCOVER plaintext is %d bytes, want at least %d", ErrLength, len(p), DiscoverFixedLen)
	}
	size := binary.BigEndian.Uint16(p[2:4])
	if size < ProbeMinSize {
		return d, fmt.Errorf("%w: DISCOVER size %d, the smallest probe is %d", ErrMalformed, size, ProbeMinSize)
	}
	switch {
	case p[0] == DiscoverProbe && len(p) != ProbePlaintextLen(size):
		return d, fmt.Errorf("%w: probe of size %d has a %d-byte plaintext, want %d", ErrLength, size, len(p), ProbePlaintextLen(size))
	case p[0] == DiscoverProbeAck && len(p) != ProbeAckLen:
		return d, fmt.Errorf("%w: probe ack is %d bytes, want %d", ErrLength, len(p), ProbeAckLen)
	}
	d.Kind = p[0]
	d.Size = size
	d.ID = binary.BigEndian.Uint32(p[4:8])
	return d, nil
}
