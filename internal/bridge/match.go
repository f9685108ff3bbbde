package bridge

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortSet is a set of TCP ports, written "80", "80,443", "8000-8100" or
// "*" (every port).
type PortSet struct {
	ranges [][2]uint16 // inclusive; empty means every port
}

// ParsePortSet reads a port list.
func ParsePortSet(s string) (PortSet, error) {
	if s == "*" {
		return PortSet{}, nil
	}
	var ps PortSet
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return PortSet{}, fmt.Errorf("ports %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return PortSet{}, fmt.Errorf("ports %q: %w", s, err)
			}
			if b < a {
				return PortSet{}, fmt.Errorf("ports %q: range %d-%d runs backwards", s, a, b)
			}
		}
		ps.ranges = append(ps.ranges, [2]uint16{a, b})
	}
	return ps, nil
}

func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(p), nil
}

// Contains reports whether p is in the set.
func (ps PortSet) Contains(p uint16) bool {
	if len(ps.ranges) == 0 {
		return p != 0
	}
	for _, r := range ps.ranges {
		if p >= r[0] && p <= r[1] {
			return true
		}
	}
	return false
}

func (ps PortSet) String() string {
	if len(ps.ranges) == 0 {
		return "*"
	}
	var b strings.Builder
	for i, r := range ps.ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(r[0])))
		if r[1] != r[0] {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(r[1])))
		}
	}
	return b.String()
}

// Pattern matches destinations: an IP prefix or a host name, and ports.
// Written "10.0.0.0/8:80,443", "192.0.2.7:5432", "[2001:db8::/32]:*",
// "db.internal:5432".
type Pattern struct {
	Prefix netip.Prefix // valid for address patterns
	Host   string       // lower case, for host-name patterns
	Ports  PortSet
}

// ParsePattern reads "DEST:PORTS", DEST an IP, a CIDR prefix or a host
// name (IPv6 in brackets).
func ParsePattern(s string) (Pattern, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Pattern{}, fmt.Errorf("%q: want DEST:PORTS, like 10.0.0.0/8:80,443 or db.internal:5432", s)
	}
	dest, ports := s[:i], s[i+1:]
	if strings.HasPrefix(dest, "[") && strings.HasSuffix(dest, "]") {
		dest = dest[1 : len(dest)-1]
	} else if strings.Contains(dest, ":") {
		return Pattern{}, fmt.Errorf("%q: put an IPv6 destination in brackets: [2001:db8::/32]:443", s)
	}
	ps, err := ParsePortSet(ports)
	if err != nil {
		return Pattern{}, fmt.Errorf("%q: %w", s, err)
	}
	p := Pattern{Ports: ps}
	switch {
	case strings.Contains(dest, "/"):
		if p.Prefix, err = netip.ParsePrefix(dest); err != nil {
			return Pattern{}, fmt.Errorf("%q: %w", s, err)
		}
		if p.Prefix.Addr().Is4In6() {
			return Pattern{}, fmt.Errorf("%q: write IPv4 prefixes as IPv4", s)
		}
		p.Prefix = p.Prefix.Masked()
	default:
		if a, err := netip.ParseAddr(dest); err == nil {
			a = a.Unmap()
			p.Prefix = netip.PrefixFrom(a, a.BitLen())
		} else if err := checkHost(dest); err != nil {
			return Pattern{}, fmt.Errorf("%q: %w", s, err)
		} else {
			p.Host = strings.ToLower(dest)
		}
	}
	return p, nil
}

// Match reports whether t is one of the pattern's destinations. A
// host-name pattern matches only the same name (a name is not resolved to
// compare it with an address, and an address never matches a name).
func (p Pattern) Match(t Target) bool {
	if !p.Ports.Contains(t.Port) {
		return false
	}
	if p.Host != "" {
		return t.Host == p.Host
	}
	return t.Addr.IsValid() && p.Prefix.Contains(t.Addr.Unmap())
}

func (p Pattern) String() string {
	if p.Host != "" {
		return p.Host + ":" + p.Ports.String()
	}
	d := p.Prefix.String()
	if p.Prefix.IsSingleIP() {
		d = p.Prefix.Addr().String()
	}
	if p.Prefix.Addr().Is6() {
		d = "[" + d + "]"
	}
	return d + ":" + p.Ports.String()
}
