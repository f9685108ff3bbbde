package shimd

// The local shim protocol (docs/PROTOCOL.md, "Appendix B — the local shim
// protocol"): the shim sends one fixed 24-byte request naming the
// destination the application asked connect() for; shimd answers one
// response (8 bytes and a short reason); after a "connected" response the
// stream carries the application's bytes both ways. Fixed sizes keep the C
// side trivial and the decoder's memory bounded.

import (
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// Sizes and constants of the protocol.
const (
	RequestLen  = 24
	ResponseLen = 8 // without the reason
	MaxReason   = 255
	Version     = 1
)

// Magic begins every request and response ("PSHM"): a shim pointed at the
// wrong socket, or a client that is not a shim, fails at once and clearly.
var Magic = [4]byte{'P', 'S', 'H', 'M'}

// Status is shimd's answer to a request.
type Status uint8

// Statuses, and the errno the C shim makes of each (shim/poolshim.c).
const (
	StatusConnected   Status = 0 // the stream now reaches the destination
	StatusNoRoute     Status = 1 // no POOL peer serves it: POOL_SHIM_FALLBACK decides
	StatusRefused     Status = 2 // ECONNREFUSED: the far side refused
	StatusUnreachable Status = 3 // EHOSTUNREACH: the POOL peer could not be reached
	StatusTimeout     Status = 4 // ETIMEDOUT: no answer within shimd's dial timeout
	StatusFailed      Status = 5 // ECONNREFUSED: anything else (bad request, busy); see the reason
)

var statusNames = [...]string{"connected", "no-route", "refused", "unreachable", "timeout", "failed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Address families of the request (byte 5).
const (
	family4 = 4
	family6 = 6
)

// EncodeRequest returns the request for dst. An IPv4-mapped IPv6 address is
// sent as IPv4, as the decoder would read it anyway.
func EncodeRequest(dst netip.AddrPort) ([RequestLen]byte, error) {
	var b [RequestLen]byte
	a := dst.Addr().Unmap()
	if !a.IsValid() || dst.Port() == 0 {
		return b, fmt.Errorf("shim request: invalid destination %v", dst)
	}
	copy(b[0:4], Magic[:])
	b[4] = Version
	b[6], b[7] = byte(dst.Port()>>8), byte(dst.Port())
	if a.Is4() {
		b[5] = family4
		a4 := a.As4()
		copy(b[8:12], a4[:])
	} else {
		b[5] = family6
		a16 := a.As16()
		copy(b[8:24], a16[:])
	}
	return b, nil
}

// DecodeRequest parses a request. It is strict (the format has no room
// for extensions in version 1): wrong magic, version, family, port 0 or
// non-zero padding after an IPv4 address are errors. An IPv4-mapped IPv6
// address is returned as IPv4, so routes keyed by IPv4 destinations match
// applications that use AF_INET6 sockets; an IPv6 scope (zone) is not
// carried.
func DecodeRequest(b []byte) (netip.AddrPort, error) {
	if len(b) != RequestLen {
		return netip.AddrPort{}, fmt.Errorf("shim request: %d bytes, want %d", len(b), RequestLen)
	}
	if [4]byte(b[0:4]) != Magic {
		return netip.AddrPort{}, fmt.Errorf("shim request: bad magic %q (is this a libpoolshim client?)", b[0:4])
	}
	if b[4] != Version {
		return netip.AddrPort{}, fmt.Errorf("shim request: version %d, this shimd speaks %d", b[4], Version)
	}
	port := uint16(b[6])<<8 | uint16(b[7])
	if port == 0 {
		return netip.AddrPort{}, errors.New("shim request: port 0")
	}
	var a netip.Addr
	switch b[5] {
	case family4:
		for _, c := range b[12:24] {
			if c != 0 {
				return netip.AddrPort{}, errors.New("shim request: non-zero bytes after the IPv4 address")
			}
		}
		a = netip.AddrFrom4([4]byte(b[8:12]))
	case family6:
		a = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	default:
		return netip.AddrPort{}, fmt.Errorf("shim request: address family %d, want 4 or 6", b[5])
	}
	return netip.AddrPortFrom(a, port), nil
}

// EncodeResponse returns the response; a reason longer than MaxReason is
// cut (at a rune boundary) and invalid UTF-8 replaced, so that the reason
// is always printable by the shim.
func EncodeResponse(st Status, reason string) []byte {
	reason = truncateUTF8(reason, MaxReason)
	b := make([]byte, ResponseLen, ResponseLen+len(reason))
	copy(b[0:4], Magic[:])
	b[4] = Version
	b[5] = byte(st)
	b[7] = byte(len(reason))
	return append(b, reason...)
}

func truncateUTF8(s string, max int) string {
	s = string([]rune(s)) // invalid bytes become U+FFFD
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// DecodeResponseHeader parses the fixed 8 bytes of a response and returns
// the status and the length of the reason that follows.
func DecodeResponseHeader(b []byte) (Status, int, error) {
	if len(b) != ResponseLen {
		return 0, 0, fmt.Errorf("shim response: %d bytes, want %d", len(b), ResponseLen)
	}
	if [4]byte(b[0:4]) != Magic {
		return 0, 0, fmt.Errorf("shim response: bad magic %q (is a shimd listening there?)", b[0:4])
	}
	if b[4] != Version {
		return 0, 0, fmt.Errorf("shim response: version %d, want %d", b[4], Version)
	}
	if b[6] != 0 {
		return 0, 0, errors.New("shim response: non-zero reserved byte")
	}
	st := Status(b[5])
	if st > StatusFailed {
		return 0, 0, fmt.Errorf("shim response: unknown status %d", b[5])
	}
	return st, int(b[7]), nil
}
