package transport

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/wire"
)

// PipeConfig shapes an in-memory transport.
type PipeConfig struct {
	// Datagram makes the pipe report an unreliable transport, so a session
	// over it uses the replay window instead of demanding the exact next
	// sequence number (the raw-IP rules, DESIGN 2.7).
	Datagram bool
	// MaxPacket is what MaxPacket reports: the largest packet the peer
	// accepts (default: the largest POOL packet).
	MaxPacket int
	// DropAbove silently discards packets longer than this many bytes in
	// both directions: an MTU black hole. Zero drops nothing.
	DropAbove int
	// Queue is how many packets may be in flight per direction before a
	// writer blocks (default 256).
	Queue int
}

// Pipe returns the two ends of an in-memory transport. It carries whole
// packets in order, with channel operations only, so sessions over it run
// inside a testing/synctest bubble, where timers are simulated (DESIGN §3);
// with DropAbove it models a path whose MTU is smaller than its peers think.
func Pipe(cfg PipeConfig) (client, server *PipeConn) {
	if cfg.MaxPacket == 0 {
		cfg.MaxPacket = wire.HeaderLen + wire.MaxPayload
	}
	if cfg.Queue == 0 {
		cfg.Queue = 256
	}
	ab, ba := make(chan *[]byte, cfg.Queue), make(chan *[]byte, cfg.Queue)
	closed := make(chan struct{})
	var once sync.Once
	shut := func() { once.Do(func() { close(closed) }) }
	kind := handshake.TransportTCP
	if cfg.Datagram {
		kind = handshake.TransportRawIP
	}
	p := handshake.Path{Transport: kind,
		Client: netip.MustParseAddrPort("[::1]:1"), Server: netip.MustParseAddrPort("[::1]:2")}
	client = &PipeConn{cfg: cfg, in: ba, out: ab, closed: closed, shut: shut, path: p}
	server = &PipeConn{cfg: cfg, in: ab, out: ba, closed: closed, shut: shut, path: p}
	client.init()
	server.init()
	return client, server
}

// PipeConn is one end of a Pipe.
type PipeConn struct {
	cfg     PipeConfig
	in, out chan *[]byte
	closed  chan struct{}
	shut    func()
	path    handshake.Path

	rd, wd deadline

	mu      sync.Mutex
	dropped uint64
}

func (c *PipeConn) init() { c.rd.init(); c.wd.init() }

// ReadPacket implements Conn.
func (c *PipeConn) ReadPacket() (*[]byte, error) {
	select {
	case p := <-c.in:
		return p, nil
	default:
	}
	select {
	case p := <-c.in:
		return p, nil
	case <-c.closed:
		return nil, net.ErrClosed
	case <-c.rd.wait():
		return nil, os.ErrDeadlineExceeded
	}
}

// WritePackets implements Conn: each packet is copied, or dropped when it
// is over DropAbove.
func (c *PipeConn) WritePackets(pkts [][]byte) error {
	for _, pkt := range pkts {
		if c.cfg.DropAbove > 0 && len(pkt) > c.cfg.DropAbove {
			c.mu.Lock()
			c.dropped++
			c.mu.Unlock()
			continue
		}
		b := bufpool.Get(len(pkt))
		copy(*b, pkt)
		select {
		case <-c.closed:
			bufpool.Put(b)
			return net.ErrClosed
		default:
		}
		select {
		case c.out <- b:
		case <-c.closed:
			bufpool.Put(b)
			return net.ErrClosed
		case <-c.wd.wait():
			bufpool.Put(b)
			return os.ErrDeadlineExceeded
		}
	}
	return nil
}

// Dropped counts the packets this end discarded as over DropAbove.
func (c *PipeConn) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Path implements Conn.
func (c *PipeConn) Path() handshake.Path { return c.path }

// Reliable implements Conn.
func (c *PipeConn) Reliable() bool { return !c.cfg.Datagram }

// MaxPacket implements Conn.
func (c *PipeConn) MaxPacket() int { return c.cfg.MaxPacket }

// SetReadDeadline implements Conn.
func (c *PipeConn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements Conn.
func (c *PipeConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// Close closes both ends, as a transport that goes away does.
func (c *PipeConn) Close() error { c.shut(); return nil }

// deadline is a settable deadline whose expiry closes a channel.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	gen   uint64        // which set() the running timer belongs to
	ch    chan struct{} // closed when the deadline passes
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch: // expired: a new deadline needs a new channel
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	ch := d.ch
	dur := time.Until(t)
	if dur <= 0 {
		close(ch)
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen { // not superseded by a later set
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
