package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pool-go/pool"
)

// Defaults of a Server.
const (
	// DefaultDialTimeout bounds the far side's TCP connect to a target.
	DefaultDialTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds the wait for a channel's request: a
	// peer that opens a channel and says nothing does not hold it.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxConns bounds the connections a Server carries at once.
	DefaultMaxConns = 4096
)

// ServerConfig configures a Server, the far side of the bridge. Which
// destinations a peer may ask for is the server's policy alone: the
// default target, and the destinations Allow lists.
type ServerConfig struct {
	// Default is where a request for the default target goes (pool2tcp
	// --target); the zero Target refuses such requests.
	Default Target
	// Allow lists the destinations a request may name. The default target
	// may always be named too.
	Allow []Pattern
	// DialTimeout bounds each TCP connect (DefaultDialTimeout).
	DialTimeout time.Duration
	// RequestTimeout bounds the wait for a channel's request
	// (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// MaxConns bounds the connections carried at once (DefaultMaxConns);
	// more are answered StatusBusy.
	MaxConns int
	// OnConn, if set, is told of every request when its connection ends
	// (or is refused).
	OnConn func(ConnEvent)
	Logger *slog.Logger
}

// Server carries the channels of POOL sessions to TCP destinations.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	// routes are the counters per policy entry: "default", then each
	// Allow pattern in order, then "refused" for requests none allowed.
	names    []string
	counters []Counters
	active   chan struct{} // a slot per carried connection (MaxConns)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	sess   map[*pool.Session]struct{}
	lns    map[*pool.Listener]struct{}
}

// NewServer makes a Server; give it sessions with Serve or ServeSession.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Default.IsDefault() && len(cfg.Allow) == 0 {
		return nil, errors.New("bridge: pool2tcp needs a default target or allowed destinations (nothing could be reached)")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names := []string{"default " + cfg.Default.String()}
	if cfg.Default.IsDefault() {
		names[0] = "default (none)"
	}
	for _, p := range cfg.Allow {
		names = append(names, "allow "+p.String())
	}
	names = append(names, "refused")
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: log, names: names, counters: make([]Counters, len(names)),
		active: make(chan struct{}, cfg.MaxConns), ctx: ctx, cancel: cancel,
		sess: map[*pool.Session]struct{}{}, lns: map[*pool.Listener]struct{}{}}, nil
}

// Serve serves every session l accepts until l or the Server is closed;
// it returns nil then.
func (s *Server) Serve(l *pool.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, l)
		s.mu.Unlock()
	}()
	for {
		sess, err := l.AcceptContext(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, pool.ErrClosed) {
				return nil
			}
			return err
		}
		s.log.Info("bridge: session from a peer", "peer", sess.Peer().String(), "remote", sess.Path().Client.String())
		s.ServeSession(sess)
	}
}

// ServeSession carries each channel sess's peer opens, in the background,
// until the session ends or the Server is closed.
func (s *Server) ServeSession(sess *pool.Session) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.Close()
		return
	}
	s.sess[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sess, sess)
			s.mu.Unlock()
		}()
		s.ServeChannels(s.ctx, sess)
	}()
}

// ServeChannels carries each channel sess's peer opens until the session
// or ctx ends, or the Server is closed; the connections it started go on
// (Close ends them). A node, which owns its sessions, calls it.
func (s *Server) ServeChannels(ctx context.Context, sess *pool.Session) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	for {
		ch, err := sess.AcceptChannel(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = ch.Reset(CodeAbort, "bridge: shutting down")
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveChannel(ch)
		}()
	}
}

// route returns the index of the policy entry that allows t, or the
// "refused" index.
func (s *Server) route(t Target) (int, bool) {
	if t.IsDefault() {
		return 0, !s.cfg.Default.IsDefault()
	}
	if !s.cfg.Default.IsDefault() && t == s.cfg.Default {
		return 0, true
	}
	for i, p := range s.cfg.Allow {
		if p.Match(t) {
			return 1 + i, true
		}
	}
	return len(s.names) - 1, false
}

// serveChannel reads the channel's request, connects to the destination
// the policy allows, answers with a status and then carries the bytes.
func (s *Server) serveChannel(ch *pool.Channel) {
	start := time.Now()
	ev := ConnEvent{Client: ch.Session().Peer().String()}
	_ = ch.SetReadDeadline(start.Add(s.cfg.RequestTimeout))
	t, err := ReadRequest(ch)
	_ = ch.SetReadDeadline(time.Time{})
	if err != nil {
		st := StatusMalformed
		if errors.Is(err, ErrBadVersion) {
			st = StatusVersion
		}
		s.refuse(ch, len(s.names)-1, ev, st, fmt.Errorf("bad request: %w", err), start)
		return
	}
	ev.Target = t
	idx, ok := s.route(t)
	ev.Route = s.names[idx]
	c := &s.counters[idx]
	c.conns.Add(1)
	if !ok {
		s.refuse(ch, idx, ev, StatusNotAllowed, errors.New("not allowed by policy"), start)
		return
	}
	select {
	case s.active <- struct{}{}:
		defer func() { <-s.active }()
	default:
		s.refuse(ch, idx, ev, StatusBusy, fmt.Errorf("at the limit of %d connections", s.cfg.MaxConns), start)
		return
	}
	dest := t
	if t.IsDefault() {
		dest = s.cfg.Default
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", dialAddr(dest))
	cancel()
	if err != nil {
		s.refuse(ch, idx, ev, dialStatus(err), err, start)
		return
	}
	tc := conn.(*net.TCPConn)
	if !s.trackConn() {
		tc.Close()
		s.refuse(ch, idx, ev, StatusBusy, net.ErrClosed, start)
		return
	}
	c.active.Add(1)
	defer c.active.Add(-1)
	if _, err := ch.Write(AppendReply(nil, StatusOK)); err != nil {
		_ = tc.SetLinger(0)
		tc.Close()
		_ = ch.Reset(CodeAbort, "bridge: "+err.Error())
		c.errors.Add(1)
		ev.Err, ev.Duration = err, time.Since(start)
		s.event(ev)
		return
	}
	stop := context.AfterFunc(s.ctx, func() { _ = tc.SetLinger(0); tc.Close() })
	// splice counts its TCP side's reads first: here that is the target,
	// whose bytes go down to the client.
	ev.Down, ev.Up, ev.Err = splice(tc, ch, &c.bytesDown, &c.bytesUp)
	stop()
	if ev.Err != nil {
		c.errors.Add(1)
	}
	ev.Duration = time.Since(start)
	s.event(ev)
}

func (s *Server) trackConn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed
}

// refuse answers a request with a failure status and closes the channel;
// whatever the opener sent after its request is discarded.
func (s *Server) refuse(ch *pool.Channel, idx int, ev ConnEvent, st Status, err error, start time.Time) {
	// Every answer but OK counts as refused, on both sides of the bridge:
	// the policy, or the target, said no before any byte was carried.
	s.counters[idx].refused.Add(1)
	if ev.Route == "" {
		ev.Route = s.names[idx]
		s.counters[idx].conns.Add(1)
	}
	_ = ch.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if _, werr := ch.Write(AppendReply(nil, st)); werr != nil {
		_ = ch.Reset(CodeAbort, "bridge: "+st.String())
	} else {
		_ = ch.Close()
	}
	ev.Status, ev.Err, ev.Duration = st, err, time.Since(start)
	s.event(ev)
}

func (s *Server) event(ev ConnEvent) {
	if s.cfg.OnConn != nil {
		s.cfg.OnConn(ev)
	}
}

func dialAddr(t Target) string {
	if t.Host != "" {
		return net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
	}
	return net.JoinHostPort(t.Addr.String(), strconv.Itoa(int(t.Port)))
}

// dialStatus says why a connect failed, in the preamble's terms.
func dialStatus(err error) Status {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return StatusUnreachable
	case errors.As(err, &dnsErr):
		return StatusNoHost
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return StatusTimeout
	}
	return StatusFailed
}

// Stats returns the counters of each policy entry.
func (s *Server) Stats() []RouteStats {
	out := make([]RouteStats, len(s.names))
	for i := range s.names {
		out[i] = s.counters[i].snapshot(s.names[i])
	}
	return out
}

// Close stops the Server: its listeners, sessions and every connection it
// carries. It waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	lns := make([]*pool.Listener, 0, len(s.lns))
	for l := range s.lns {
		lns = append(lns, l)
	}
	sess := make([]*pool.Session, 0, len(s.sess))
	for x := range s.sess {
		sess = append(sess, x)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range lns {
		l.Close()
	}
	ps := make([]*peerSession, 0, len(sess))
	for _, x := range sess {
		x.Close()
		ps = append(ps, &peerSession{s: x})
	}
	waitSessions(ps)
	s.wg.Wait()
	return nil
}
