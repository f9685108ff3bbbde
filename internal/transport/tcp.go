package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/wire"
)

// TCP keepalive settings: a peer that vanishes without a FIN or RST is
// noticed by the kernel within Idle + Interval*Count, even on an idle
// session (heartbeats, a later layer, do it faster).
var tcpKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// TCPConn frames POOL packets on a TCP stream: each packet is its 80-byte
// header followed by exactly "payload length" bytes; nothing else is on the
// wire, from the first byte (the same framing as the C reference).
type TCPConn struct {
	c    *net.TCPConn
	rd   *bufio.Reader // every read goes through it: see readBuffer
	path handshake.Path
	hdr  [wire.HeaderLen]byte
	// A ReadPacket cut short by a read deadline resumes where it stopped:
	// hdrN header bytes read, then pkt filled up to pktN.
	hdrN, pktN int
	pkt        *[]byte
	out        net.Buffers
	wv         net.Buffers // what writev still has to send of out
}

// NewTCPConn wraps an established TCP connection. isServer says which end
// of the Path the local socket is.
func NewTCPConn(c *net.TCPConn, isServer bool) *TCPConn {
	_ = c.SetKeepAliveConfig(tcpKeepAlive)
	_ = c.SetNoDelay(true)
	local, remote := mapped(c.LocalAddr()), mapped(c.RemoteAddr())
	p := handshake.Path{Transport: handshake.TransportTCP, Client: local, Server: remote}
	if isServer {
		p.Client, p.Server = remote, local
	}
	return &TCPConn{c: c, rd: bufio.NewReaderSize(c, readBuffer), path: p}
}

// readBuffer is the read-ahead of a TCPConn. Small packets (a 64-byte
// message is a 160-byte packet) then cost one read system call for many
// instead of two each (header, then payload); a full-size payload still
// goes mostly straight into its packet buffer, because bufio reads
// directly into a destination larger than its own buffer. Kept small: an
// idle session holds it (pool bench: memory).
const readBuffer = 2 << 10

// mapped returns a TCP address with its IP in 16-byte form: IPv4 peers of a
// dual-stack listener appear as IPv4-mapped IPv6 (draft §12).
func mapped(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

// ReadPacket reads one frame. The payload length is bounded by the 16-bit
// field itself (at most 65535) and must cover at least the AEAD tag: after
// the handshake every packet is sealed. The buffer is sized from the
// length, never larger than one packet. A read ended by a deadline keeps
// what it read, and the next call continues the same frame: a session
// uses a past deadline to take a blocked read back without losing the
// stream's framing.
func (t *TCPConn) ReadPacket() (*[]byte, error) {
	for t.hdrN < wire.HeaderLen {
		n, err := t.rd.Read(t.hdr[t.hdrN:])
		t.hdrN += n
		if err != nil && t.hdrN < wire.HeaderLen {
			if err == io.EOF && t.hdrN > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if t.pkt == nil {
		if wire.PacketVersion(t.hdr[:]) != wire.Version1 {
			return nil, fmt.Errorf("%w: version %d", ErrFrame, wire.PacketVersion(t.hdr[:]))
		}
		n := wire.PayloadLen(t.hdr[:])
		if n < wire.TagLen {
			return nil, fmt.Errorf("%w: payload length %d below the %d-byte tag", ErrFrame, n, wire.TagLen)
		}
		t.pkt = bufpool.Get(wire.HeaderLen + n)
		t.pktN = copy(*t.pkt, t.hdr[:])
	}
	p := t.pkt
	for t.pktN < len(*p) {
		n, err := t.rd.Read((*p)[t.pktN:])
		t.pktN += n
		if err != nil && t.pktN < len(*p) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	t.pkt, t.hdrN, t.pktN = nil, 0, 0
	return p, nil
}

// ReadExact reads one handshake packet of exactly len(dst) bytes into a
// fixed array: handshake reads never allocate from the length field
// (handshake.md §1.3).
func (t *TCPConn) ReadExact(dst []byte) error {
	_, err := io.ReadFull(t.rd, dst)
	return err
}

// WritePackets writes the packets with one writev where it can.
func (t *TCPConn) WritePackets(pkts [][]byte) error {
	if len(pkts) == 1 {
		_, err := t.c.Write(pkts[0])
		return err
	}
	// WriteTo consumes the slice it is called on, so it works on a copy
	// of the header held in the struct (a local would escape, one
	// allocation per write) and t.out keeps its array for the next call.
	t.out = append(t.out[:0], pkts...)
	t.wv = t.out
	_, err := t.wv.WriteTo(t.c)
	clear(t.out)
	return err
}

// Write sends raw bytes (handshake packets).
func (t *TCPConn) Write(b []byte) (int, error) { return t.c.Write(b) }

func (t *TCPConn) Path() handshake.Path               { return t.path }
func (t *TCPConn) Reliable() bool                     { return true }
func (t *TCPConn) MaxPacket() int                     { return wire.HeaderLen + wire.MaxPayload }
func (t *TCPConn) SetReadDeadline(d time.Time) error  { return t.c.SetReadDeadline(d) }
func (t *TCPConn) SetWriteDeadline(d time.Time) error { return t.c.SetWriteDeadline(d) }
func (t *TCPConn) SetDeadline(d time.Time) error      { return t.c.SetDeadline(d) }
func (t *TCPConn) Close() error                       { return t.c.Close() }

// CloseWrite sends a TCP FIN after the last packet.
func (t *TCPConn) CloseWrite() error { return t.c.CloseWrite() }

// LocalAddr and RemoteAddr return the socket addresses.
func (t *TCPConn) LocalAddr() net.Addr  { return t.c.LocalAddr() }
func (t *TCPConn) RemoteAddr() net.Addr { return t.c.RemoteAddr() }

// NormalizeAddress fills in the default port: "host" and "[v6]" become
// host:9253; "host:port" is kept. Host names are resolved by the dialer.
func NormalizeAddress(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty address")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("address %q: bad port %q", s, port)
		}
		return net.JoinHostPort(host, port), nil
	}
	host := s
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort)), nil
}

// ListenTCP opens the overlay listener. An empty host (":9253") binds a
// single dual-stack socket, so IPv4 and IPv6 clients share one listener.
func ListenTCP(ctx context.Context, address string) (*net.TCPListener, error) {
	if address == "" {
		address = ":" + strconv.Itoa(DefaultPort)
	}
	a, err := NormalizeAddress(address)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", a)
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

// DialTCP connects to a POOL node.
func DialTCP(ctx context.Context, address string) (*TCPConn, error) {
	a, err := NormalizeAddress(address)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a)
	if err != nil {
		return nil, err
	}
	return NewTCPConn(c.(*net.TCPConn), false), nil
}
