// Package bridge carries ordinary TCP connections over POOL channels: the
// edge bridge of draft §13.1 (tcp2pool on the client's side, pool2tcp on
// the server's), and the routing that maps a TCP destination to the POOL
// peer that serves it.
package bridge

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// The bridge preamble (docs/PROTOCOL.md §14): the first bytes the opener of
// a bridge channel sends name the destination; the far side answers with
// one status before any payload, so a refused or failing destination is
// reported at once instead of as a silent close.
const (
	// PreambleVersion is the only version of the preamble.
	PreambleVersion = 1

	kindDefault = 0 // the far side's default target; port 0, no address
	kindIPv4    = 1 // 4 address bytes
	kindIPv6    = 2 // 16 address bytes, never IPv4-mapped
	kindHost    = 3 // one length byte (1-253), then the name

	requestFixed = 4
	// MaxHostLen is the longest host name a request may carry (DNS's 253).
	MaxHostLen = 253
	// MaxRequestLen is the longest request: 4 fixed bytes, the length
	// byte and a 253-byte name.
	MaxRequestLen = requestFixed + 1 + MaxHostLen
	// ReplyLen is the length of the far side's answer.
	ReplyLen = 2
)

// Status is the far side's answer to a request.
type Status uint8

// Status codes (docs/PROTOCOL.md §14.3). Only StatusOK is followed by the
// target's bytes; after any other the far side closes the channel.
const (
	StatusOK          Status = 0x00 // connected; the channel now carries the TCP stream
	StatusNotAllowed  Status = 0x01 // the far side's policy does not allow this destination
	StatusRefused     Status = 0x02 // the destination refused the TCP connection
	StatusUnreachable Status = 0x03 // no route to the destination's host or network
	StatusTimeout     Status = 0x04 // the TCP connect timed out
	StatusNoHost      Status = 0x05 // the host name did not resolve
	StatusMalformed   Status = 0x06 // the request was not a valid preamble
	StatusVersion     Status = 0x07 // unknown preamble version
	StatusBusy        Status = 0x08 // the far side is at its connection limit
	StatusFailed      Status = 0x09 // any other failure to connect
)

var statusText = map[Status]string{
	StatusOK:          "connected",
	StatusNotAllowed:  "destination not allowed by the far side's policy",
	StatusRefused:     "the destination refused the connection",
	StatusUnreachable: "the destination is unreachable from the far side",
	StatusTimeout:     "connecting to the destination timed out",
	StatusNoHost:      "the destination's host name did not resolve at the far side",
	StatusMalformed:   "the far side could not parse the bridge request",
	StatusVersion:     "the far side does not speak this bridge preamble version",
	StatusBusy:        "the far side is at its connection limit",
	StatusFailed:      "the far side failed to connect to the destination",
}

func (s Status) String() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return fmt.Sprintf("unknown status 0x%02x", uint8(s))
}

// StatusError is a far side's refusal, as the opener sees it.
type StatusError struct {
	Status Status
	Target Target
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("bridge: %s: %s", e.Target, e.Status)
}

// Unwrap gives the errno a local connect would have failed with, so that
// callers that speak errno (the shim's daemon: a program sees the same
// ECONNREFUSED as without POOL) need not know the bridge's codes.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case StatusRefused, StatusNotAllowed:
		return syscall.ECONNREFUSED
	case StatusUnreachable, StatusNoHost:
		return syscall.EHOSTUNREACH
	case StatusTimeout:
		return syscall.ETIMEDOUT
	}
	return nil
}

// Target names the destination a bridge channel asks for. The zero value
// asks for the far side's default target (pool2tcp --target).
type Target struct {
	Addr netip.Addr // kinds 1 and 2
	Host string     // kind 3 (a host name, never an IP literal)
	Port uint16     // 0 only for the default target
}

// IsDefault reports whether t asks for the far side's default target.
func (t Target) IsDefault() bool { return !t.Addr.IsValid() && t.Host == "" && t.Port == 0 }

func (t Target) String() string {
	switch {
	case t.IsDefault():
		return "the default target"
	case t.Host != "":
		return t.Host + ":" + strconv.Itoa(int(t.Port))
	}
	return netip.AddrPortFrom(t.Addr, t.Port).String()
}

// TargetFromAddrPort is the request for an IP destination (IPv4-mapped
// IPv6 addresses become IPv4, the canonical form).
func TargetFromAddrPort(ap netip.AddrPort) Target {
	return Target{Addr: ap.Addr().Unmap(), Port: ap.Port()}
}

// ParseTarget reads "HOST:PORT" (an IP literal or a host name; IPv6 in
// brackets) as a Target.
func ParseTarget(s string) (Target, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return Target{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Target{}, fmt.Errorf("%q: a zoned address cannot be bridged", s)
		}
		return Target{Addr: a.Unmap(), Port: port}, nil
	}
	if err := checkHost(host); err != nil {
		return Target{}, fmt.Errorf("%q: %w", s, err)
	}
	return Target{Host: strings.ToLower(host), Port: port}, nil
}

func splitHostPort(s string) (string, uint16, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q: want HOST:PORT", s)
	}
	host, ps := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", 0, fmt.Errorf("%q: put an IPv6 address in brackets: [ADDR]:PORT", s)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("%q: the port must be 1-65535", s)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: the host is missing", s)
	}
	return host, uint16(p), nil
}

// checkHost accepts a DNS name: 1-253 bytes of letters, digits, '-' and
// '.', no empty label, no label starting or ending with '-'. IP literals
// are refused: they travel as kinds 1 and 2, so a policy sees one form.
func checkHost(h string) error {
	if len(h) == 0 || len(h) > MaxHostLen {
		return fmt.Errorf("host name length %d not in 1-%d", len(h), MaxHostLen)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return errors.New("an IP address is not a host name")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad host name %q", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("bad host name %q", h)
			}
		}
	}
	return nil
}

// Errors of ParseRequest.
var (
	// ErrShortRequest: more bytes are needed.
	ErrShortRequest = errors.New("bridge: request incomplete")
	// ErrBadVersion: the first byte is not PreambleVersion.
	ErrBadVersion = errors.New("bridge: unknown preamble version")
	// ErrMalformed: the request breaks a rule of §14.2.
	ErrMalformed = errors.New("bridge: malformed request")
)

// AppendRequest appends t's request to b.
func AppendRequest(b []byte, t Target) ([]byte, error) {
	switch {
	case t.IsDefault():
		return append(b, PreambleVersion, kindDefault, 0, 0), nil
	case t.Port == 0:
		return nil, fmt.Errorf("%w: port 0", ErrMalformed)
	case t.Host != "":
		if t.Addr.IsValid() {
			return nil, fmt.Errorf("%w: both an address and a host name", ErrMalformed)
		}
		if err := checkHost(t.Host); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		b = append(b, PreambleVersion, kindHost, byte(t.Port>>8), byte(t.Port), byte(len(t.Host)))
		return append(b, t.Host...), nil
	case t.Addr.Is4() || t.Addr.Is4In6():
		a := t.Addr.Unmap().As4()
		b = append(b, PreambleVersion, kindIPv4, byte(t.Port>>8), byte(t.Port))
		return append(b, a[:]...), nil
	case t.Addr.Is6():
		if t.Addr.Zone() != "" {
			return nil, fmt.Errorf("%w: zoned address", ErrMalformed)
		}
		a := t.Addr.As16()
		b = append(b, PreambleVersion, kindIPv6, byte(t.Port>>8), byte(t.Port))
		return append(b, a[:]...), nil
	}
	return nil, fmt.Errorf("%w: no destination", ErrMalformed)
}

// ParseRequest decodes the request at the start of b and returns it with
// its length. It returns ErrShortRequest while b is a proper prefix of a
// valid request, and ErrBadVersion or ErrMalformed as soon as b cannot
// begin one; it never looks past MaxRequestLen bytes. Only the canonical
// encoding is accepted, so AppendRequest re-encodes it byte for byte.
func ParseRequest(b []byte) (Target, int, error) {
	if len(b) == 0 {
		return Target{}, 0, ErrShortRequest
	}
	if b[0] != PreambleVersion {
		return Target{}, 0, ErrBadVersion
	}
	if len(b) < 2 {
		return Target{}, 0, ErrShortRequest
	}
	kind := b[1]
	if kind > kindHost {
		return Target{}, 0, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	if len(b) < requestFixed {
		return Target{}, 0, ErrShortRequest
	}
	port := uint16(b[2])<<8 | uint16(b[3])
	if (kind == kindDefault) != (port == 0) {
		return Target{}, 0, fmt.Errorf("%w: port %d with kind %d", ErrMalformed, port, kind)
	}
	rest := b[requestFixed:]
	switch kind {
	case kindDefault:
		return Target{}, requestFixed, nil
	case kindIPv4:
		if len(rest) < 4 {
			return Target{}, 0, ErrShortRequest
		}
		return Target{Addr: netip.AddrFrom4([4]byte(rest[:4])), Port: port}, requestFixed + 4, nil
	case kindIPv6:
		if len(rest) < 16 {
			return Target{}, 0, ErrShortRequest
		}
		a := netip.AddrFrom16([16]byte(rest[:16]))
		if a.Is4In6() {
			return Target{}, 0, fmt.Errorf("%w: IPv4-mapped address (send kind 1)", ErrMalformed)
		}
		return Target{Addr: a, Port: port}, requestFixed + 16, nil
	}
	if len(rest) < 1 {
		return Target{}, 0, ErrShortRequest
	}
	n := int(rest[0])
	if n == 0 || n > MaxHostLen {
		return Target{}, 0, fmt.Errorf("%w: host name length %d", ErrMalformed, n)
	}
	if len(rest) < 1+n {
		// Refuse early what can never become valid.
		if err := checkHostPrefix(rest[1:]); err != nil {
			return Target{}, 0, err
		}
		return Target{}, 0, ErrShortRequest
	}
	h := string(rest[1 : 1+n])
	if err := checkHost(h); err != nil {
		return Target{}, 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h != strings.ToLower(h) {
		return Target{}, 0, fmt.Errorf("%w: host names travel in lower case", ErrMalformed)
	}
	return Target{Host: h, Port: port}, requestFixed + 1 + n, nil
}

func checkHostPrefix(p []byte) error {
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%w: byte 0x%02x in a host name", ErrMalformed, c)
		}
	}
	return nil
}

// ReadRequest reads one request from r, byte-exact: nothing after it is
// consumed, so the payload that follows stays in r.
func ReadRequest(r io.Reader) (Target, error) {
	var buf [MaxRequestLen]byte
	n := 0
	need := 2
	for {
		if _, err := io.ReadFull(r, buf[n:need]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return Target{}, fmt.Errorf("%w: the channel ended after %d bytes", ErrMalformed, n)
			}
			return Target{}, err
		}
		n = need
		t, _, err := ParseRequest(buf[:n])
		if err != ErrShortRequest {
			return t, err
		}
		// How much is still missing, at least: kinds 1-3 grow step by
		// step, never past the request's own length.
		switch {
		case n < requestFixed:
			need = requestFixed
		case buf[1] == kindIPv4:
			need = requestFixed + 4
		case buf[1] == kindIPv6:
			need = requestFixed + 16
		case n == requestFixed:
			need = requestFixed + 1
		default:
			need = requestFixed + 1 + int(buf[requestFixed])
		}
	}
}

// AppendReply appends the far side's answer.
func AppendReply(b []byte, s Status) []byte { return append(b, PreambleVersion, byte(s)) }

// ParseReply decodes the far side's 2-byte answer.
func ParseReply(b []byte) (Status, error) {
	if len(b) != ReplyLen {
		return 0, fmt.Errorf("%w: reply of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != PreambleVersion {
		return 0, ErrBadVersion
	}
	return Status(b[1]), nil
}
