package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// Pre-authentication deadlines (DESIGN 2.8): whole-phase deadlines, not
// per-read timeouts, so a slow-loris client cannot stretch them.
const (
	DefaultInitTimeout     = 5 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	// maxForeignInit bounds what we read of an INIT of another version
	// before answering it with a version CLOSE.
	maxForeignInit = 1280
	acceptBacklog  = 128
)

// ListenerStats counts what a listener did with connections.
type ListenerStats struct {
	Handshake      handshake.ServerStats
	RefusedPreAuth uint64 // over the pre-auth caps
	// RefusedUnhealthy counts handshakes refused because Config.Health
	// reported the node compromised (draft §17.3): connections closed on
	// arrival, and handshakes abandoned just before ACCEPT. They are not
	// counted in FailedHandshakes.
	RefusedUnhealthy uint64
	FailedHandshakes uint64
	Sessions         uint64
	PreAuthInUse     int
}

// Listener accepts POOL sessions on a TCP overlay socket.
type Listener struct {
	cfg  Config
	log  *slog.Logger
	ln   *net.TCPListener
	srv  *handshake.Server
	pre  *transport.PreAuthLimiter
	sess chan *Session

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	refused, failed, sessions atomic.Uint64
	refusedUnhealthy          atomic.Uint64
	// unhealthy latches the first error of Config.Health (see health).
	unhealthy atomic.Pointer[error]

	handoffHook func() // tests only (export_test.go)
}

// Listen opens a dual-stack listener at address (":9253" when empty; IPv4
// clients appear as IPv4-mapped addresses) and starts answering handshakes.
func Listen(address string, cfg *Config) (*Listener, error) {
	if cfg == nil || cfg.Identity == nil {
		return nil, errors.New("pool: Listen needs Config.Identity")
	}
	authorize, err := cfg.authorizer()
	if err != nil {
		return nil, err
	}
	srv, err := handshake.NewServer(handshake.ServerConfig{
		Identity: cfg.Identity, Authorize: authorize, Rotation: cfg.CookieRotation,
		MinDifficulty: cfg.MinDifficulty, MaxDifficulty: cfg.ServerMaxDifficulty,
		InitRate: cfg.InitRate, InitBurst: cfg.InitBurst, Rand: cfg.Rand,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := transport.ListenTCP(ctx, address)
	if err != nil {
		cancel()
		return nil, err
	}
	l := &Listener{cfg: *cfg, log: cfg.logger(), ln: ln, srv: srv,
		pre:  transport.NewPreAuthLimiter(cfg.MaxPreAuth, cfg.MaxPreAuthPerPrefix),
		sess: make(chan *Session, acceptBacklog), ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (c *Config) authorizer() (func(PublicKey) bool, error) {
	n := 0
	var f func(PublicKey) bool
	if c.AllowList != nil {
		n++
		f = c.AllowList.Allowed
	}
	if c.AllowAny {
		n++
		f = func(PublicKey) bool { return true }
	}
	if c.Authorize != nil {
		n++
		f = c.Authorize
	}
	if n != 1 {
		return nil, errors.New("pool: a listener needs exactly one of AllowList, AllowAny or Authorize (which clients may connect?)")
	}
	return f, nil
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Identity returns the listener's public key.
func (l *Listener) Identity() PublicKey { return l.cfg.Identity.Public }

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{Handshake: l.srv.Stats(), RefusedPreAuth: l.refused.Load(),
		RefusedUnhealthy: l.refusedUnhealthy.Load(), FailedHandshakes: l.failed.Load(),
		Sessions: l.sessions.Load(), PreAuthInUse: l.pre.InUse()}
}

// health says whether the listener may admit a new session: nil, or why
// not. The first error of Config.Health is latched: from then on the
// listener refuses every handshake without asking again, so that a node
// found compromised stays closed to new sessions until it is restarted
// (draft §17.3), whatever Health says later.
func (l *Listener) health() error {
	if p := l.unhealthy.Load(); p != nil {
		return *p
	}
	err := l.cfg.health()
	if err == nil {
		return nil
	}
	if l.unhealthy.CompareAndSwap(nil, &err) {
		l.log.Error("refusing every new session from now on: this node failed a runtime integrity check (draft §17.3)",
			"err", err)
	}
	return *l.unhealthy.Load()
}

// Accept waits for the next confirmed session: one whose client has proven
// its key with its first traffic packet.
func (l *Listener) Accept() (*Session, error) { return l.AcceptContext(context.Background()) }

// AcceptContext is Accept with a context.
func (l *Listener) AcceptContext(ctx context.Context) (*Session, error) {
	select {
	case s := <-l.sess:
		return s, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening, abandons handshakes in progress and closes
// sessions not yet accepted. Accepted sessions stay up.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
		for {
			select {
			case s := <-l.sess:
				s.CloseWithError(wire.CodeOverload, "listener closed")
			default:
				return
			}
		}
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			// Out of descriptors and the like: back off, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if l.health() != nil {
			// Fail closed (draft §17.3), and silently, like the
			// pre-auth refusal below: see Config.Health.
			l.refusedUnhealthy.Add(1)
			l.log.Debug("node compromised; connection refused", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		tc := transport.NewTCPConn(c, true)
		ip := tc.Path().Client.Addr()
		if !l.pre.Acquire(ip) {
			l.refused.Add(1)
			l.log.Debug("pre-auth cap reached; connection refused", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.serve(tc)
	}
}

// serve runs one connection's server handshake and, once the client is
// confirmed, hands the session to Accept.
func (l *Listener) serve(tc *transport.TCPConn) {
	defer l.wg.Done()
	released := false
	release := func() {
		if !released {
			released = true
			l.pre.Release(tc.Path().Client.Addr())
		}
	}
	defer release()
	stop := context.AfterFunc(l.ctx, func() { tc.Close() })
	defer stop()
	est, err := l.serverHandshake(tc)
	if errors.Is(err, ErrCompromised) {
		l.refusedUnhealthy.Add(1)
		l.log.Debug("node compromised; handshake abandoned before ACCEPT", "remote", tc.RemoteAddr().String())
		tc.Close()
		return
	}
	if err != nil {
		l.handshakeFailed(tc, err)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	s := l.cfg.newSession(tc, est)
	select {
	case <-s.Confirmed():
	case <-s.Done():
		l.handshakeFailed(tc, fmt.Errorf("client %v did not confirm the session: %w", est.Peer, s.Err()))
		return
	}
	release()
	// From here the session outlives the listener (Close leaves accepted
	// sessions up), so the listener's context must no longer close its
	// socket. If the AfterFunc already ran, ctx is done and the select
	// below closes the session properly.
	stop()
	l.sessions.Add(1)
	l.log.Info("session established", "peer", est.Peer.String(), "remote", tc.RemoteAddr().String())
	select {
	case l.sess <- s:
		if l.handoffHook != nil {
			l.handoffHook()
		}
	case <-l.ctx.Done():
		s.CloseWithError(wire.CodeOverload, "listener closed")
	case <-s.Done():
	}
}

func (l *Listener) handshakeFailed(tc *transport.TCPConn, err error) {
	l.failed.Add(1)
	tc.Close()
	if errors.Is(err, net.ErrClosed) && l.ctx.Err() != nil {
		return // the listener is closing
	}
	l.log.Debug("handshake failed", "remote", tc.RemoteAddr().String(), "err", err)
	if l.cfg.OnHandshakeError != nil {
		l.cfg.OnHandshakeError(tc.Path().Client, err)
	}
}

// serverHandshake reads the INIT within the INIT deadline and the RESPONSE
// within the RESPONSE deadline, each at its exact size into fixed arrays.
func (l *Listener) serverHandshake(tc *transport.TCPConn) (*handshake.Established, error) {
	path := tc.Path()
	_ = tc.SetDeadline(time.Now().Add(orDefault(l.cfg.InitTimeout, DefaultInitTimeout)))
	var in [maxForeignInit]byte
	if err := tc.ReadExact(in[:wire.HeaderLen]); err != nil {
		return nil, fmt.Errorf("reading INIT: %w", err)
	}
	n := wire.PayloadLen(in[:])
	switch {
	case wire.PacketType(in[:]) != wire.TypeInit:
		return nil, fmt.Errorf("first packet is %v, not INIT", wire.PacketType(in[:]))
	case wire.PacketVersion(in[:]) == wire.Version1 && n != wire.InitPayloadLen,
		wire.HeaderLen+n < wire.InitLen || wire.HeaderLen+n > maxForeignInit:
		return nil, fmt.Errorf("INIT payload length %d", n)
	}
	pkt := in[:wire.HeaderLen+n]
	if err := tc.ReadExact(pkt[wire.HeaderLen:]); err != nil {
		return nil, fmt.Errorf("reading INIT: %w", err)
	}
	var out [wire.ChallengeLen]byte
	reply, err := l.srv.HandleInit(out[:0], pkt, path)
	if err != nil {
		return nil, err
	}
	if _, err := tc.Write(reply); err != nil {
		return nil, err
	}
	if wire.PacketType(reply) == wire.TypeClose {
		return nil, fmt.Errorf("%w: client offered version %d", handshake.ErrVersion, wire.PacketVersion(pkt))
	}
	_ = tc.SetDeadline(time.Now().Add(orDefault(l.cfg.ResponseTimeout, DefaultResponseTimeout)))
	var resp [wire.ResponseLen]byte
	if err := tc.ReadExact(resp[:wire.HeaderLen]); err != nil {
		return nil, fmt.Errorf("reading RESPONSE: %w", err)
	}
	if wire.PacketType(resp[:]) != wire.TypeResponse || wire.PayloadLen(resp[:]) != wire.ResponsePayloadLen {
		return nil, fmt.Errorf("%w: expected RESPONSE", handshake.ErrMalformed)
	}
	if err := tc.ReadExact(resp[wire.HeaderLen:]); err != nil {
		return nil, fmt.Errorf("reading RESPONSE: %w", err)
	}
	est, accept, err := l.srv.HandleResponse(resp[:], path)
	if err != nil {
		return nil, err
	}
	if est == nil { // a retransmission; over TCP a second RESPONSE is never valid
		return nil, handshake.ErrReplay
	}
	// ACCEPT creates the session; a node found compromised while the
	// handshake ran must not send it (draft §17.3).
	if err := l.health(); err != nil {
		est.Keys.Zero()
		return nil, fmt.Errorf("%w: %w", ErrCompromised, err)
	}
	if _, err := tc.Write(accept); err != nil {
		est.Keys.Zero()
		return nil, err
	}
	return est, nil
}
