package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/session"
)

// Defaults of a Client.
const (
	// DefaultMaxSessions bounds the sessions a Client keeps to one peer:
	// each carries up to channelsPerSession connections.
	DefaultMaxSessions = 16
	// DefaultConnectTimeout bounds the wait for the far side's status: its
	// own TCP connect (DefaultDialTimeout) plus a margin for the round trip.
	DefaultConnectTimeout = DefaultDialTimeout + 5*time.Second
	// channelsPerSession: a bridge opens channels 1-255 of a session; 0
	// is left alone (control packets travel on it, and a future per-session
	// bridge control stream would too), hence "a new session when 255 are
	// busy".
	channelsPerSession = 255
	minBackoff         = 250 * time.Millisecond
	maxBackoff         = 30 * time.Second
)

// ClientConfig configures a Client: the near side of the bridge for one
// POOL peer.
type ClientConfig struct {
	// Pool is this node's configuration for dialing (Identity required).
	Pool *pool.Config
	// Address is the peer's HOST:PORT (port 9253 when omitted); Peer is
	// its pinned public key.
	Address string
	Peer    pool.PublicKey
	// PeerAddress, if set instead of Peer, pins only the peer's 64-bit
	// node ID (trust on first use, PROTOCOL.md §9.3): the key the first
	// session proves is then pinned for every later session.
	PeerAddress *pool.Address
	// Name labels the route in stats and events ("tcp2pool" if empty).
	Name string
	// MaxSessions bounds the sessions to the peer (DefaultMaxSessions).
	MaxSessions int
	// ConnectTimeout bounds the wait for the far side's answer to a
	// request (DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// OnConn, if set, is told of every bridged connection when it ends.
	OnConn func(ConnEvent)
	Logger *slog.Logger
}

// Client carries TCP connections to one POOL peer: every connection rides
// its own channel of a shared, long-lived session, so a new connection
// costs no handshake; a session is added when the others' 255 channels are
// busy, and a lost session is redialled with exponential backoff.
type Client struct {
	cfg      ClientConfig
	log      *slog.Logger
	counters Counters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions []*peerSession
	dialing  chan struct{} // closed when the running dial ends
	backoff  time.Duration
	nextDial time.Time
	lastErr  error
	conns    map[*net.TCPConn]struct{}
	lns      map[net.Listener]struct{}
	closed   bool
}

type peerSession struct {
	s      *pool.Session
	cursor int  // the channel last opened, so numbers are used round robin
	idle   bool // no channel open at the last idle check
}

// NewClient starts a Client; it dials the peer at once in the background
// and keeps one session up (reconnecting with backoff) until Close.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Pool == nil || cfg.Pool.Identity == nil {
		return nil, errors.New("bridge: the client needs an identity")
	}
	if cfg.Address == "" {
		return nil, errors.New("bridge: the client needs the peer's address")
	}
	if cfg.Name == "" {
		cfg.Name = "tcp2pool"
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		conns: map[*net.TCPConn]struct{}{}, lns: map[net.Listener]struct{}{}}
	c.wg.Add(1)
	go c.keepWarm()
	return c, nil
}

// idleCheck is how often extra sessions are checked for idleness; one
// found without channels at two checks in a row is closed.
const idleCheck = 30 * time.Second

// keepWarm keeps at least one session to the peer, so the first
// connection after an outage does not wait for a handshake, and closes
// the extra sessions a burst of connections opened once they are idle.
func (c *Client) keepWarm() {
	defer c.wg.Done()
	reap := time.NewTicker(idleCheck)
	defer reap.Stop()
	for {
		s, wait, err := c.session(false)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		if !c.watch(s, reap) {
			return
		}
	}
}

// watch waits until s ends (true) or the Client is closed (false),
// closing idle extra sessions meanwhile.
func (c *Client) watch(s *pool.Session, reap *time.Ticker) bool {
	for {
		select {
		case <-s.Done():
			c.log.Warn("bridge: session to the peer ended; reconnecting", "route", c.cfg.Name, "peer", c.cfg.Address, "err", s.Err())
			return true
		case <-reap.C:
			c.reapIdle()
		case <-c.ctx.Done():
			return false
		}
	}
}

// reapIdle closes the sessions beyond the first that carried no channel at
// this check and the last. They leave the list under c.mu, so no new
// connection picks them while they close.
func (c *Client) reapIdle() {
	c.mu.Lock()
	var idle []*peerSession
	kept := c.sessions[:0]
	for i, ps := range c.sessions {
		empty := ps.s.Telemetry().ChannelsOpen == 0
		if i > 0 && empty && ps.idle {
			idle = append(idle, ps)
			continue
		}
		ps.idle = empty
		kept = append(kept, ps)
	}
	clear(c.sessions[len(kept):])
	c.sessions = kept
	c.mu.Unlock()
	for _, ps := range idle {
		c.log.Info("bridge: closing an idle extra session", "route", c.cfg.Name, "peer", c.cfg.Address)
		ps.s.Close()
	}
}

// session returns a live session, dialling one if there is none (or, with
// more, if every live one is full). During the backoff after a failed
// dial it fails at once, saying how long is left.
func (c *Client) session(more bool) (*pool.Session, time.Duration, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, 0, net.ErrClosed
		}
		c.pruneLocked()
		if !more && len(c.sessions) > 0 {
			s := c.sessions[0].s
			c.mu.Unlock()
			return s, 0, nil
		}
		if more && len(c.sessions) >= c.cfg.MaxSessions {
			c.mu.Unlock()
			return nil, 0, fmt.Errorf("bridge: all %d sessions to %s are carrying %d connections each", c.cfg.MaxSessions, c.cfg.Address, channelsPerSession)
		}
		if d := c.dialing; d != nil {
			c.mu.Unlock()
			select {
			case <-d:
			case <-c.ctx.Done():
				return nil, 0, net.ErrClosed
			}
			if more {
				return nil, 0, nil // the caller looks for a free channel again
			}
			continue
		}
		if wait := time.Until(c.nextDial); wait > 0 {
			err := c.lastErr
			c.mu.Unlock()
			return nil, wait, fmt.Errorf("bridge: peer %s unreachable (next attempt in %v): %w", c.cfg.Address, wait.Round(time.Millisecond), err)
		}
		d := make(chan struct{})
		c.dialing = d
		c.mu.Unlock()

		s, err := c.dial()

		c.mu.Lock()
		c.dialing = nil
		close(d)
		if err != nil {
			c.backoff = min(max(2*c.backoff, minBackoff), maxBackoff)
			c.nextDial = time.Now().Add(c.backoff)
			c.lastErr = err
			c.mu.Unlock()
			c.log.Warn("bridge: cannot reach the peer", "route", c.cfg.Name, "peer", c.cfg.Address, "retry_in", c.backoff, "err", err)
			return nil, c.backoff, err
		}
		if c.closed {
			c.mu.Unlock()
			s.Close()
			return nil, 0, net.ErrClosed
		}
		c.backoff, c.lastErr = 0, nil
		c.sessions = append(c.sessions, &peerSession{s: s})
		c.mu.Unlock()
		c.log.Info("bridge: session to the peer established", "route", c.cfg.Name, "peer", c.cfg.Address)
		return s, 0, nil
	}
}

// dial starts a session, pinning the peer's key, or on the first dial by
// address the node ID, and then the key that session proved.
func (c *Client) dial() (*pool.Session, error) {
	c.mu.Lock()
	byAddr := c.cfg.PeerAddress
	key := c.cfg.Peer
	c.mu.Unlock()
	if byAddr == nil {
		return pool.Dial(c.ctx, c.cfg.Address, key, c.cfg.Pool)
	}
	s, err := pool.DialAddress(c.ctx, c.cfg.Address, *byAddr, c.cfg.Pool)
	if err == nil {
		c.mu.Lock()
		c.cfg.Peer, c.cfg.PeerAddress = s.Peer(), nil
		c.mu.Unlock()
		c.log.Warn("bridge: the peer was pinned by address only; pinning the key it proved from now on", "route", c.cfg.Name, "key", s.Peer().String())
	}
	return s, err
}

// pruneLocked forgets sessions that have ended.
func (c *Client) pruneLocked() {
	live := c.sessions[:0]
	for _, ps := range c.sessions {
		if ps.s.Err() == nil {
			live = append(live, ps)
		}
	}
	clear(c.sessions[len(live):])
	c.sessions = live
}

// openChannel opens a free channel on one of the peer's sessions, adding
// a session when all are full.
func (c *Client) openChannel() (*pool.Channel, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, net.ErrClosed
		}
		c.pruneLocked()
		for _, ps := range c.sessions {
			for k := 1; k <= channelsPerSession; k++ {
				id := 1 + (ps.cursor+k-1)%channelsPerSession
				ch, err := ps.s.OpenChannel(id)
				if err == nil {
					ps.cursor = id
					c.mu.Unlock()
					return ch, nil
				}
				if !errors.Is(err, session.ErrChannelInUse) {
					break // the session is ending
				}
			}
		}
		c.mu.Unlock()
		s, _, err := c.session(true)
		if err != nil {
			return nil, err
		}
		_ = s // a new session is in the list: look again
	}
}

// Open asks the peer to connect to t (the zero Target: its default
// target) and returns the connection once the peer has answered
// StatusOK. A refusal is a *StatusError.
func (c *Client) Open(ctx context.Context, t Target) (net.Conn, error) {
	ch, err := c.open(ctx, t)
	if err != nil {
		return nil, err
	}
	c.counters.conns.Add(1)
	c.counters.active.Add(1)
	return &countedConn{Channel: ch, c: &c.counters}, nil
}

func (c *Client) open(ctx context.Context, t Target) (*pool.Channel, error) {
	req, err := AppendRequest(nil, t)
	if err != nil {
		return nil, err
	}
	// A session can end between the choice of a channel and the request:
	// then try once more, on a session that is still alive.
	for attempt := 0; ; attempt++ {
		ch, err := c.openChannel()
		if err != nil {
			return nil, err
		}
		st, err := c.request(ctx, ch, req)
		if err == nil && st == StatusOK {
			return ch, nil
		}
		if err == nil {
			_ = ch.Close()
			return nil, &StatusError{Status: st, Target: t}
		}
		_ = ch.Reset(CodeAbort, "bridge: no answer to the request")
		if attempt > 0 || ch.Session().Err() == nil || ctx.Err() != nil {
			return nil, fmt.Errorf("bridge: asking %s for %s: %w", c.cfg.Address, t, err)
		}
	}
}

// request sends the preamble and waits, within ConnectTimeout and ctx,
// for the far side's status.
func (c *Client) request(ctx context.Context, ch *pool.Channel, req []byte) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = ch.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		_ = ch.SetDeadline(d)
	}
	if _, err := ch.Write(req); err != nil {
		return 0, err
	}
	var rep [ReplyLen]byte
	if _, err := readFull(ch, rep[:]); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no answer within %v: %w", c.cfg.ConnectTimeout, ctx.Err())
		}
		return 0, err
	}
	if !stop() {
		return 0, ctx.Err()
	}
	_ = ch.SetDeadline(time.Time{})
	return ParseReply(rep[:])
}

func readFull(ch *pool.Channel, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := ch.Read(b[n:])
		n += k
		if err != nil {
			if n < len(b) && errors.Is(err, io.EOF) {
				return n, fmt.Errorf("the far side closed the channel before answering")
			}
			return n, err
		}
	}
	return n, nil
}

// Serve accepts TCP connections on ln and carries each to t at the peer
// until ln is closed or the Client is; it returns nil then.
func (c *Client) Serve(ln net.Listener, t Target) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	c.lns[ln] = struct{}{}
	c.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			c.mu.Lock()
			closed := c.closed
			delete(c.lns, ln)
			c.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		tc, ok := conn.(*net.TCPConn)
		if !ok {
			conn.Close()
			continue
		}
		if !c.track(tc) {
			tc.Close()
			return nil
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.untrack(tc)
			c.serveConn(tc, t)
		}()
	}
}

func (c *Client) track(tc *net.TCPConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.conns[tc] = struct{}{}
	return true
}

func (c *Client) untrack(tc *net.TCPConn) {
	c.mu.Lock()
	delete(c.conns, tc)
	c.mu.Unlock()
}

// serveConn bridges one accepted TCP connection. A refusal or failure
// closes it with a RST at once, the way a refused connect looks to the
// client.
func (c *Client) serveConn(tc *net.TCPConn, t Target) {
	start := time.Now()
	c.counters.conns.Add(1)
	c.counters.active.Add(1)
	defer c.counters.active.Add(-1)
	ev := ConnEvent{Route: c.cfg.Name, Client: tc.RemoteAddr().String(), Target: t}
	ch, err := c.open(c.ctx, t)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			c.counters.refused.Add(1)
			ev.Status = se.Status
		} else {
			c.counters.errors.Add(1)
			ev.Status = StatusFailed
		}
		_ = tc.SetLinger(0)
		_ = tc.Close()
		ev.Err, ev.Duration = err, time.Since(start)
		c.event(ev)
		return
	}
	ev.Up, ev.Down, ev.Err = splice(tc, ch, &c.counters.bytesUp, &c.counters.bytesDown)
	if ev.Err != nil {
		c.counters.errors.Add(1)
	}
	ev.Duration = time.Since(start)
	c.event(ev)
}

func (c *Client) event(ev ConnEvent) {
	if c.cfg.OnConn != nil {
		c.cfg.OnConn(ev)
	}
}

// Stats returns the route's counters and the number of live sessions.
func (c *Client) Stats() RouteStats {
	st := c.counters.snapshot(c.cfg.Name)
	st.Peer = c.cfg.Address
	c.mu.Lock()
	c.pruneLocked()
	st.Sessions = len(c.sessions)
	c.mu.Unlock()
	return st
}

// Close stops the Client: its listeners, every bridged connection (reset)
// and its sessions. It waits for its goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for ln := range c.lns {
		ln.Close()
	}
	for tc := range c.conns {
		_ = tc.SetLinger(0)
		tc.Close()
	}
	sessions := c.sessions
	c.sessions = nil
	c.mu.Unlock()
	c.cancel()
	for _, ps := range sessions {
		ps.s.Close()
	}
	waitSessions(sessions)
	c.wg.Wait()
	return nil
}

// sessionEndWait bounds how long Close waits for a closed session to end
// (its peer's answering CLOSE, or the session's own 2 s drain).
const sessionEndWait = 5 * time.Second

// waitSessions waits, within sessionEndWait, until every session has
// ended, so that a closed bridge leaves no session goroutine behind.
func waitSessions(ps []*peerSession) {
	t := time.NewTimer(sessionEndWait)
	defer t.Stop()
	for _, p := range ps {
		select {
		case <-p.s.Done():
		case <-t.C:
			return
		}
	}
}
