package handshake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"time"
)

// Transport kinds bound into the cookie, so a cookie earned over TCP cannot
// be redeemed over raw IP (handshake.md §1.2).
const (
	TransportTCP   uint8 = 1
	TransportRawIP uint8 = 2
)

// Path is what the transport knows about where a packet came from and went
// to. Over TCP the ports bind a cookie to its own connection; over raw IP
// they are zero.
type Path struct {
	Transport uint8
	Client    netip.AddrPort
	Server    netip.AddrPort
}

// ip16 normalizes an address the same way at INIT and RESPONSE: IPv4 and
// IPv4-mapped IPv6 both become the 16-byte mapped form. Go reports a
// dual-stack TCP peer and a raw IPv4 peer differently; a mismatch here
// would silently break every cookie (handshake.md §1.3).
func ip16(a netip.Addr) [16]byte { return a.Unmap().As16() }

const (
	// DefaultRotation is how often the cookie secret changes. With the two
	// previous secrets still accepted (P02's 2x grace) a cookie lives at
	// most 30 s (handshake.md §8.2).
	DefaultRotation = 10 * time.Second
	// MaxRotation is P02's bound.
	MaxRotation = 300 * time.Second
	// CookieLifetime bounds now - t_iss on the server's own clock.
	CookieLifetime = 30 * time.Second
	slots          = 4
)

const cookieLabel = "pool1 cookie"

// secretRing holds the four cookie secrets. Slot j serves epoch e when
// j = e mod 4, e = floor(t / T); the current epoch and the two before it are
// live (vectors note 22, PROTOCOL.md §12.2). A secret is created lazily when its epoch first
// issues a cookie and wiped when the slot is reused. Not safe for concurrent
// use; the Server locks it.
type secretRing struct {
	period time.Duration
	rand   io.Reader
	epoch  [slots]int64 // epoch each slot's secret belongs to; -1 = empty
	key    [slots][32]byte
	mac    [slots]hash.Hash
}

func newSecretRing(period time.Duration, r io.Reader) *secretRing {
	s := &secretRing{period: period, rand: r}
	for i := range s.epoch {
		s.epoch[i] = -1
	}
	return s
}

// epochAt numbers the rotation periods since the Unix epoch. A clock set
// before 1970 is clamped to epoch 0 rather than indexing the ring with a
// negative slot.
func (s *secretRing) epochAt(now time.Time) int64 { return max(now.UnixNano(), 0) / int64(s.period) }

// current returns the slot and MAC for a cookie issued now, rotating the
// slot's secret if it belongs to an older epoch. A random source that
// fails (a health test tripped, draft §17.3) fails the handshake: the slot
// is left empty, never filled with a weak secret.
func (s *secretRing) current(now time.Time) (uint8, hash.Hash, error) {
	e := s.epochAt(now)
	j := uint8(e % slots)
	if s.epoch[j] != e {
		clear(s.key[j][:])
		s.epoch[j], s.mac[j] = -1, nil
		if _, err := io.ReadFull(s.rand, s.key[j][:]); err != nil {
			clear(s.key[j][:])
			return 0, nil, fmt.Errorf("%w: %v", ErrRandom, err)
		}
		s.epoch[j] = e
		s.mac[j] = hmac.New(sha256.New, s.key[j][:])
	}
	return j, s.mac[j], nil
}

// live returns the MAC for slot j if its secret is of the current epoch or
// one of the two before it (P02: previous secrets accepted for 2x the
// interval); nil otherwise. Dead secrets are wiped on the way.
func (s *secretRing) live(now time.Time, j uint8) hash.Hash {
	if j >= slots {
		return nil
	}
	e := s.epochAt(now)
	for i := range s.epoch {
		if s.epoch[i] >= 0 && e-s.epoch[i] > 2 {
			clear(s.key[i][:])
			s.epoch[i] = -1
			s.mac[i] = nil
		}
	}
	if s.epoch[j] < 0 || s.epoch[j] > e {
		return nil
	}
	return s.mac[j]
}

// sharedRand is the default source for secrets.
var sharedRand io.Reader = rand.Reader

// cookieInput builds the exact 237-byte cookie MAC input of handshake.md
// §8.4 (vectors note 5, PROTOCOL.md §12.2): "pool1 cookie" || tkind || c_ip || c_port || s_ip ||
// s_port || s_S || INIT* || BE64(t_iss) || d || j || BE16(versions_S).
func cookieInput(dst []byte, p *Path, sS *[32]byte, initPkt []byte, tIss uint64, d, j uint8, versionsS uint16) []byte {
	dst = append(dst, cookieLabel...)
	dst = append(dst, p.Transport)
	cip, sip := ip16(p.Client.Addr()), ip16(p.Server.Addr())
	dst = append(dst, cip[:]...)
	dst = binary.BigEndian.AppendUint16(dst, p.Client.Port())
	dst = append(dst, sip[:]...)
	dst = binary.BigEndian.AppendUint16(dst, p.Server.Port())
	dst = append(dst, sS[:]...)
	dst = append(dst, initPkt...)
	dst = binary.BigEndian.AppendUint64(dst, tIss)
	dst = append(dst, d, j)
	return binary.BigEndian.AppendUint16(dst, versionsS)
}

// cookieLen is the size of the cookie MAC input.
const cookieLen = len(cookieLabel) + 1 + 16 + 2 + 16 + 2 + 32 + 144 + 8 + 1 + 1 + 2

// sidFrom computes O = HMAC(K[j], input) and returns SID = O[0:16]. The SID
// is at once the cookie MAC, the Session ID and the puzzle seed
// (handshake.md §1.1 P1.5).
func sidFrom(m hash.Hash, input []byte) (sid [16]byte) {
	m.Reset()
	m.Write(input)
	var o [32]byte
	m.Sum(o[:0])
	copy(sid[:], o[:16])
	return sid
}
