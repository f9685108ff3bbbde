package session

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// chunk is received plaintext still held in its packet buffer, so DATA is
// copied once, into the reader's slice.
type chunk struct {
	buf  *[]byte
	data []byte
}

// Channel is one of a session's 256 bidirectional byte streams. It
// implements net.Conn; CloseWrite sends a FIN (half-close).
type Channel struct {
	s   *Session
	id  uint8
	gen uint16 // which use of the number this is (see Session.gen)

	readMu, writeMu sync.Mutex // one Read and one Write at a time

	mu   sync.Mutex
	rsig chan struct{} // data, FIN, reset or deadline change
	// waiting: a Read waits for data; rxHolding: a Read holds the read
	// role, maybe blocked in the transport (rxrole.go).
	waiting, rxHolding bool
	wsig               chan struct{} // credit, reset or deadline change
	recv               []chunk       // received DATA; recv[rhead:] is unread
	rhead              int
	buffered           int
	granted            int64 // total credit this side gave the peer
	received           int64 // total DATA bytes the peer sent
	accepted           int64 // total bytes Write queued for sending
	consumed           int   // read but not yet granted back
	// pendingGrant is window not yet granted on a channel we opened
	pendingGrant int
	credit       int64 // bytes this side may still send
	localFIN     bool  // we sent FIN
	localRST     bool  // we sent RST
	remoteFIN    bool  // the peer sent FIN
	remoteRST    bool  // the peer sent RST
	closed       bool  // the application closed it
	sent         bool  // we queued DATA or FIN: the peer knows the channel
	heard        bool  // the peer sent DATA or FIN
	resetErr     error // a reset (either side) ends both directions
	rdeadline    time.Time
	wdeadline    time.Time
}

// newChannel is called with s.mu held.
func newChannel(s *Session, id uint8) *Channel {
	return &Channel{s: s, id: id, gen: s.gen[id], rsig: make(chan struct{}, 1), wsig: make(chan struct{}, 1),
		granted: InitialWindow, credit: InitialWindow}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ID returns the channel number.
func (c *Channel) ID() int { return int(c.id) }

// Session returns the session the channel belongs to.
func (c *Channel) Session() *Session { return c.s }

// deliver appends received DATA. The sender may never exceed the credit
// granted (flow control): doing so is an authenticated protocol error.
func (c *Channel) deliver(pt []byte, p *[]byte) error {
	c.mu.Lock()
	if c.remoteFIN || c.remoteRST {
		c.mu.Unlock()
		bufpool.Put(p)
		return c.s.protocolError("DATA after FIN or RST on channel")
	}
	c.heard = true
	c.received += int64(len(pt))
	if c.received > c.granted {
		c.mu.Unlock()
		bufpool.Put(p)
		return c.s.protocolError("flow control violated: DATA beyond the granted window")
	}
	if c.closed || c.resetErr != nil {
		// Nobody will read it: drop it but give the credit back so the
		// peer is not stalled until it sees our FIN.
		c.granted += int64(len(pt))
		c.mu.Unlock()
		bufpool.Put(p)
		c.s.grant(c.id, len(pt))
		return nil
	}
	if len(c.recv) == cap(c.recv) && c.rhead > 0 {
		// Reuse the consumed front of the array instead of growing it:
		// in steady state the queue allocates nothing (DESIGN §5).
		n := copy(c.recv, c.recv[c.rhead:])
		clear(c.recv[n:])
		c.recv, c.rhead = c.recv[:n], 0
	}
	c.recv = append(c.recv, chunk{buf: p, data: pt})
	c.buffered += len(pt)
	if c.waiting && c.rdeadline.IsZero() {
		c.s.lendAfterLocked() // handle runs under rxMu
	}
	g := c.pendingGrant
	c.pendingGrant = 0
	c.granted += int64(g)
	c.mu.Unlock()
	c.s.noteUnread(len(pt))
	if g > 0 {
		c.s.grant(c.id, g)
	}
	signal(c.rsig)
	return nil
}

func (s *Session) grant(ch uint8, n int) {
	s.mu.Lock()
	if s.err == nil {
		s.out.grant(ch, uint32(n))
	}
	s.mu.Unlock()
}

func (c *Channel) addCredit(n int64) {
	c.mu.Lock()
	c.credit += n
	c.mu.Unlock()
	signal(c.wsig)
}

// finishedLocked: both directions ended (FIN or RST each way), so both
// ends free the channel number at this point.
func (c *Channel) finishedLocked() bool {
	return (c.localFIN || c.localRST) && (c.remoteFIN || c.remoteRST)
}

// remoteFin records the peer's FIN: reads end with io.EOF once the
// buffered data is consumed.
func (c *Channel) remoteFin() error {
	c.mu.Lock()
	if c.remoteFIN || c.remoteRST {
		c.mu.Unlock()
		return c.s.protocolError("FIN after FIN or RST on channel")
	}
	c.remoteFIN = true
	c.heard = true
	done := c.finishedLocked()
	c.mu.Unlock()
	signal(c.rsig)
	if done {
		c.s.release(c)
	}
	return nil
}

// remoteReset records the peer's RST. If we had not finished our own
// direction we answer with an RST, so the peer knows no more DATA of ours
// is coming and both ends free the number together; DATA of the peer's
// still in flight meets a reset channel and is discarded.
func (c *Channel) remoteReset(err error) error {
	c.mu.Lock()
	if c.remoteRST || c.remoteFIN && c.finishedLocked() {
		c.mu.Unlock()
		return c.s.protocolError("RST on a finished channel")
	}
	c.remoteRST = true
	if c.resetErr == nil {
		c.resetErr = err
	}
	c.dropRecvLocked()
	answer := !c.localFIN && !c.localRST
	c.localRST = true
	c.mu.Unlock()
	signal(c.rsig)
	signal(c.wsig)
	if answer {
		code := wire.CodeNoError
		if ce, ok := err.(*CloseError); ok {
			code = ce.Code
		}
		c.sendClose(&wire.Close{Code: code, Scope: wire.ScopeChannelRST, Reason: "reset acknowledged"})
	}
	c.s.release(c)
	return nil
}

func (c *Channel) dropRecvLocked() {
	for i := c.rhead; i < len(c.recv); i++ {
		bufpool.Put(c.recv[i].buf)
	}
	clear(c.recv)
	c.recv, c.rhead = nil, 0
	if c.buffered > 0 {
		n := c.buffered
		c.buffered = 0
		c.s.noteUnread(-n) // c.mu before s.mu, as grant does
	}
}

// Read reads data the peer sent on this channel. It returns io.EOF after
// the peer's FIN, and the session's error if the session ended first.
func (c *Channel) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, ErrClosed
		}
		if c.buffered > 0 {
			n := c.copyOutLocked(p)
			c.mu.Unlock()
			return n, nil
		}
		if c.resetErr != nil {
			err := c.resetErr
			c.mu.Unlock()
			return 0, err
		}
		if c.remoteFIN {
			c.mu.Unlock()
			return 0, io.EOF
		}
		deadline := c.rdeadline
		c.mu.Unlock()
		if err := c.s.Err(); err != nil {
			// The reader may have delivered data or a FIN just before
			// the session ended: hand those out before the error.
			c.mu.Lock()
			pending := c.buffered > 0 || c.remoteFIN || c.resetErr != nil
			c.mu.Unlock()
			if pending {
				continue
			}
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		c.s.readWaiting(1)
		if deadline.IsZero() && c.readAsReader() {
			c.s.readWaiting(-1)
			continue
		}
		c.s.reclaimRole() // this Read will not read: the reader must
		c.mu.Lock()
		c.waiting = true
		c.mu.Unlock()
		err := waitFor(c.rsig, deadline, c.s.done)
		c.mu.Lock()
		c.waiting = false
		c.mu.Unlock()
		c.s.readWaiting(-1)
		if err != nil {
			return 0, err
		}
	}
}

// copyOutLocked copies buffered data into p and grants the peer credit for
// what was consumed, in steps of a quarter window so ACKs stay rare.
func (c *Channel) copyOutLocked(p []byte) int {
	n := 0
	for n < len(p) && c.rhead < len(c.recv) {
		h := &c.recv[c.rhead]
		k := copy(p[n:], h.data)
		n += k
		h.data = h.data[k:]
		if len(h.data) == 0 {
			bufpool.Put(h.buf)
			*h = chunk{}
			c.rhead++
		}
	}
	if c.rhead == len(c.recv) {
		c.recv, c.rhead = c.recv[:0], 0 // keep the array: no allocation next time
	}
	c.buffered -= n
	c.consumed += n
	if n > 0 {
		c.s.noteUnread(-n)
	}
	if c.consumed >= c.s.cfg.Window/4 && !c.remoteFIN {
		g := c.consumed
		c.consumed = 0
		c.granted += int64(g)
		c.s.grant(c.id, g)
	}
	return n
}

// Write sends p on the channel, blocking while the peer's window is
// exhausted (backpressure) or the session queue is full. It returns the
// session's error if the session ends.
func (c *Channel) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	written := 0
	for written < len(p) {
		c.mu.Lock()
		if err := c.writableLocked(); err != nil {
			c.mu.Unlock()
			return written, err
		}
		if c.credit <= 0 {
			deadline := c.wdeadline
			c.mu.Unlock()
			if err := c.s.Err(); err != nil {
				return written, err
			}
			c.s.reclaimRole() // the credit comes in an ACK no Read fetches
			if err := waitFor(c.wsig, deadline, c.s.done); err != nil {
				return written, err
			}
			continue
		}
		n := min(int64(len(p)-written), c.credit, int64(c.s.maxPlaintext()))
		c.credit -= n
		c.sent = true
		deadline := c.wdeadline
		c.mu.Unlock()
		buf := bufpool.Get(wire.HeaderLen + int(n) + wire.TagLen)
		copy((*buf)[wire.HeaderLen:], p[written:written+int(n)])
		if err := c.s.enqueue(outPkt{buf: buf, n: int(n), typ: wire.TypeData, ch: c.id}, deadline); err != nil {
			c.mu.Lock()
			c.credit += n
			c.mu.Unlock()
			return written, err
		}
		c.mu.Lock()
		c.accepted += n
		c.mu.Unlock()
		written += int(n)
	}
	return written, nil
}

// stats returns the channel's counters for Session.Telemetry.
func (c *Channel) stats() ChannelStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ChannelStats{ID: c.id, BytesSent: uint64(c.accepted), BytesReceived: uint64(c.received), Buffered: c.buffered}
}

func (c *Channel) writableLocked() error {
	switch {
	case c.resetErr != nil:
		return c.resetErr
	case c.closed || c.localFIN || c.localRST:
		return ErrClosed
	}
	return nil
}

// CloseWrite sends a FIN: the peer's reads end with io.EOF after the data
// already written. Reading continues until the peer's own FIN.
func (c *Channel) CloseWrite() error {
	c.mu.Lock()
	if err := c.writableLocked(); err != nil {
		c.mu.Unlock()
		if err == ErrClosed {
			return nil
		}
		return err
	}
	c.localFIN = true
	done := c.finishedLocked()
	c.mu.Unlock()
	if err := c.sendClose(&wire.Close{Code: wire.CodeNoError, Scope: wire.ScopeChannelFIN}); err != nil {
		return err
	}
	if done {
		c.s.release(c)
	}
	return nil
}

// sendClose queues a channel FIN or RST. Its Detail carries the channel's
// generation, so a FIN or RST still in flight when the number is freed and
// reused is recognised as stale and ignored by the receiver.
func (c *Channel) sendClose(cl *wire.Close) error {
	cl.Detail = c.gen
	c.mu.Lock()
	c.sent = true
	c.mu.Unlock()
	pt := wire.AppendClose(nil, cl)
	buf := bufpool.Get(wire.HeaderLen + len(pt) + wire.TagLen)
	copy((*buf)[wire.HeaderLen:], pt)
	return c.s.enqueue(outPkt{buf: buf, n: len(pt), typ: wire.TypeClose, ch: c.id}, time.Time{})
}

// Close closes both directions: it sends a FIN if none was sent, and data
// still arriving is discarded (with its credit returned) until the peer's
// FIN or RST frees the channel number.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	needFIN := !c.localFIN && !c.localRST
	c.localFIN = true
	done := c.finishedLocked()
	c.dropRecvLocked()
	kick := c.rxHolding
	c.mu.Unlock()
	if kick {
		c.s.kickReader()
	}
	signal(c.rsig)
	signal(c.wsig)
	var err error
	if needFIN && c.s.Err() == nil {
		err = c.sendClose(&wire.Close{Code: wire.CodeNoError, Scope: wire.ScopeChannelFIN})
		if err == ErrClosed {
			err = nil // the session is closing; its CLOSE covers us
		}
	}
	if done {
		c.s.release(c)
	}
	return err
}

// Reset abandons the channel in both directions with a code the peer sees.
// The number is freed when the peer's answering RST (or its FIN) arrives.
func (c *Channel) Reset(code wire.Code, reason string) error {
	c.mu.Lock()
	if c.localRST || c.closed || c.localFIN && c.finishedLocked() {
		c.mu.Unlock()
		return nil
	}
	c.localRST = true
	if c.resetErr == nil {
		c.resetErr = &CloseError{Channel: true, Code: code, Reason: reason}
	}
	// A channel the peer never heard of ends here, silently: an RST for
	// it could not be answered (a peer ignores RSTs for numbers it does
	// not hold), so it could never free the number.
	silent := !c.sent && !c.heard
	done := c.finishedLocked() || silent
	c.dropRecvLocked()
	kick := c.rxHolding
	c.mu.Unlock()
	if kick {
		c.s.kickReader()
	}
	signal(c.rsig)
	signal(c.wsig)
	var err error
	if !silent {
		err = c.sendClose(&wire.Close{Code: code, Scope: wire.ScopeChannelRST, Reason: reason})
	}
	if done {
		c.s.free(c, !silent)
	}
	return err
}

// SetDeadline sets both deadlines.
func (c *Channel) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds blocked and future Reads (os.ErrDeadlineExceeded).
func (c *Channel) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline = t
	kick := c.rxHolding
	c.mu.Unlock()
	if kick {
		c.s.kickReader()
	}
	signal(c.rsig)
	return nil
}

// SetWriteDeadline bounds blocked and future Writes.
func (c *Channel) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.mu.Unlock()
	signal(c.wsig)
	return nil
}

// Addr is a channel endpoint: a node's key and a channel number.
type Addr struct {
	Key     string
	Channel int
	Net     net.Addr
}

func (a Addr) Network() string { return "pool" }
func (a Addr) String() string  { return a.Net.String() + "/" + a.Key + "#" + strconv.Itoa(a.Channel) }

// LocalAddr returns the local transport address and channel.
func (c *Channel) LocalAddr() net.Addr {
	p := c.s.conn.Path()
	ap := p.Client
	if !c.s.initiator {
		ap = p.Server
	}
	return Addr{Key: "local", Channel: int(c.id), Net: net.TCPAddrFromAddrPort(ap)}
}

// RemoteAddr returns the peer's transport address, key and channel.
func (c *Channel) RemoteAddr() net.Addr {
	p := c.s.conn.Path()
	ap := p.Server
	if !c.s.initiator {
		ap = p.Client
	}
	return Addr{Key: c.s.peer.String(), Channel: int(c.id), Net: net.TCPAddrFromAddrPort(ap)}
}

// Buffered reports received bytes not yet read; flow control keeps it at
// or below the channel window.
func (c *Channel) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buffered
}
