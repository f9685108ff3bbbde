// Package shimd is the node's end of the LD_PRELOAD shim (shim/): a Unix
// socket on which the shim names the destination an application asked
// connect() for; shimd has a Dialer (the bridge's router) open a stream to
// it over POOL, answers a status, then relays bytes both ways.
package shimd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pool-go/pool/internal/unixsock"
)

// Dialer opens a stream to an original destination, over POOL. The bridge's
// router implements it; tests use fakes.
type Dialer interface {
	DialDestination(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// Errors a Dialer may return (wrapped or not) to choose the status the shim
// gets. Errors it does not recognise are classified by Classify.
var (
	// ErrNoRoute: no POOL peer serves the destination; the shim then
	// applies POOL_SHIM_FALLBACK. Config.IsNoRoute recognises the
	// Dialer's own "no route" errors too (the bridge's ErrNoRoute).
	ErrNoRoute = errors.New("no POOL route to the destination")
	// ErrRefused: the far side refused the connection.
	ErrRefused = errors.New("connection refused at the far side")
	// ErrUnreachable: the POOL peer serving the destination is unreachable.
	ErrUnreachable = errors.New("the POOL peer is unreachable")
)

// Defaults.
const (
	DefaultPath           = "/run/pool/shim.sock"
	DefaultMode           = fs.FileMode(0o600)
	DefaultDialTimeout    = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxConns       = 1024
	relayBuffer           = 32 << 10
)

// Config configures a Server. Only Dialer is required.
type Config struct {
	// Path of the socket (DefaultPath).
	Path string
	// Mode of the socket (DefaultMode, 0600: the node's user only). Any
	// process that can connect can have the node open connections with
	// its POOL identity, so widen it only to a group of trusted users,
	// e.g. 0660 with Group.
	Mode fs.FileMode
	// Group, if set, owns the socket: a group name or a numeric GID. The
	// node must be root or a member of it.
	Group string
	// Dialer opens the streams.
	Dialer Dialer
	// IsNoRoute, if set, says which of the Dialer's errors mean "no POOL
	// route" besides those wrapping ErrNoRoute; the integrator passes
	// func(err error) bool { return errors.Is(err, bridge.ErrNoRoute) }.
	IsNoRoute func(error) bool
	// DialTimeout bounds each dial (DefaultDialTimeout). The shim waits
	// for the status (POOL_SHIM_TIMEOUT_MS), so keep the two consistent.
	DialTimeout time.Duration
	// RequestTimeout bounds the wait for the request after accept, and the
	// writing of the response (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// MaxConns bounds the shim connections served at once, dialing or
	// relaying (DefaultMaxConns); more are answered StatusFailed "busy".
	MaxConns int
	// Log receives one line per connection (debug) and per failure.
	Log *slog.Logger
}

// Stats are the server's counters since it started.
type Stats struct {
	Accepted    uint64 `json:"accepted"`     // connections accepted on the socket
	Active      int64  `json:"active"`       // connections being served now
	Connected   uint64 `json:"connected"`    // StatusConnected answers
	NoRoute     uint64 `json:"no_route"`     // StatusNoRoute answers
	Refused     uint64 `json:"refused"`      // StatusRefused answers
	Unreachable uint64 `json:"unreachable"`  // StatusUnreachable answers
	Timeouts    uint64 `json:"timeouts"`     // StatusTimeout answers
	Errors      uint64 `json:"errors"`       // StatusFailed answers for dial errors
	BadRequests uint64 `json:"bad_requests"` // malformed or missing requests
	Busy        uint64 `json:"busy"`         // refused over MaxConns
	BytesOut    uint64 `json:"bytes_out"`    // application → destination
	BytesIn     uint64 `json:"bytes_in"`     // destination → application
}

type counters struct {
	accepted, connected, noRoute, refused, unreachable, timeouts, errs,
	badRequests, busy, bytesOut, bytesIn atomic.Uint64
	active atomic.Int64
}

// Server serves the shim socket.
type Server struct {
	cfg    Config
	ln     *net.UnixListener
	ctx    context.Context
	cancel context.CancelFunc
	c      counters

	conns unixsock.Conns
	wg    sync.WaitGroup
	once  sync.Once
}

// Listen creates the socket and starts serving it. A stale socket is
// replaced; a live one (another node) or a file that is not a socket is an
// error.
func Listen(cfg Config) (*Server, error) {
	if cfg.Dialer == nil {
		return nil, errors.New("shim socket: no Dialer")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Mode == 0 {
		cfg.Mode = DefaultMode
	}
	if cfg.Mode&^0o777 != 0 || cfg.Mode&0o007 != 0 {
		return nil, fmt.Errorf("shim socket %s: mode %#o: only owner and group bits are allowed (anyone who can connect uses the node's POOL identity)", cfg.Path, uint32(cfg.Mode))
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
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	gid := -1
	if cfg.Group != "" {
		g, err := lookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("shim socket %s: group %q: %v", cfg.Path, cfg.Group, err)
		}
		gid = g
	}
	ln, err := unixsock.Listen(cfg.Path, cfg.Mode, func() { cfg.Log.Info("removed a stale shim socket", "path", cfg.Path) })
	switch {
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("shim socket %s: another pool node is serving it; stop it first, or give this node another shim socket path", cfg.Path)
	case err != nil:
		return nil, fmt.Errorf("shim socket %s: %v", cfg.Path, err)
	}
	if gid >= 0 {
		if err := os.Chown(cfg.Path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("shim socket %s: cannot give it to group %q: %v", cfg.Path, cfg.Group, unixsock.UnwrapPathErr(err))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, ctx: ctx, cancel: cancel}
	s.conns.Max = cfg.MaxConns
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Path is the socket's path.
func (s *Server) Path() string { return s.cfg.Path }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := &s.c
	return Stats{Accepted: c.accepted.Load(), Active: c.active.Load(), Connected: c.connected.Load(),
		NoRoute: c.noRoute.Load(), Refused: c.refused.Load(), Unreachable: c.unreachable.Load(),
		Timeouts: c.timeouts.Load(), Errors: c.errs.Load(), BadRequests: c.badRequests.Load(),
		Busy: c.busy.Load(), BytesOut: c.bytesOut.Load(), BytesIn: c.bytesIn.Load()}
}

// Close stops serving, ends every shim connection (and its stream) and
// removes the socket.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.conns.CloseAll()
		s.cancel()
		_ = s.ln.Close() // also unlinks the socket
		s.wg.Wait()
	})
	return nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off instead of spinning.
			s.cfg.Log.Warn("shim socket: accept failed", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.c.accepted.Add(1)
		switch err := s.conns.Add(conn); {
		case errors.Is(err, unixsock.ErrBusy):
			s.c.busy.Add(1)
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(EncodeResponse(StatusFailed, fmt.Sprintf("busy: %d shim connections already", s.cfg.MaxConns)))
			conn.Close()
			continue
		case err != nil:
			conn.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.conns.Remove(conn)
			s.c.active.Add(1)
			defer s.c.active.Add(-1)
			s.serveConn(conn)
		}()
	}
}

// serveConn reads the request, dials, answers, then relays.
func (s *Server) serveConn(conn *net.UnixConn) {
	var req [RequestLen]byte
	_ = conn.SetDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if _, err := io.ReadFull(conn, req[:]); err != nil {
		s.c.badRequests.Add(1)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			s.answer(conn, StatusFailed, fmt.Sprintf("shim request: short (%v)", err))
		}
		s.cfg.Log.Debug("shim connection without a request", "err", err)
		return
	}
	dst, err := DecodeRequest(req[:])
	if err != nil {
		s.c.badRequests.Add(1)
		s.cfg.Log.Warn("bad shim request", "err", err)
		s.answer(conn, StatusFailed, err.Error())
		return
	}
	// While dialing, the application may already write (kernel-buffered,
	// bounded by the socket buffers); nothing is read until connected.
	_ = conn.SetDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	remote, err := s.cfg.Dialer.DialDestination(ctx, dst)
	cancel()
	if err != nil {
		st := s.classify(err)
		s.count(st)
		s.cfg.Log.Debug("shim destination not connected", "dst", dst, "status", st, "err", err)
		s.answer(conn, st, err.Error())
		return
	}
	defer remote.Close()
	if !s.answer(conn, StatusConnected, "") {
		return
	}
	s.c.connected.Add(1)
	s.cfg.Log.Debug("shim connection relayed", "dst", dst)
	s.relay(conn, remote)
}

// answer writes the response within RequestTimeout.
func (s *Server) answer(conn net.Conn, st Status, reason string) bool {
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	_, err := conn.Write(EncodeResponse(st, reason))
	_ = conn.SetWriteDeadline(time.Time{})
	return err == nil
}

func (s *Server) count(st Status) {
	switch st {
	case StatusNoRoute:
		s.c.noRoute.Add(1)
	case StatusRefused:
		s.c.refused.Add(1)
	case StatusUnreachable:
		s.c.unreachable.Add(1)
	case StatusTimeout:
		s.c.timeouts.Add(1)
	default:
		s.c.errs.Add(1)
	}
}

// classify maps a dial error to a status: the sentinels above, the
// caller's IsNoRoute, then what the operating system said.
func (s *Server) classify(err error) Status {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNoRoute), s.cfg.IsNoRoute != nil && s.cfg.IsNoRoute(err):
		return StatusNoRoute
	case errors.Is(err, ErrRefused), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return StatusRefused
	case errors.Is(err, ErrUnreachable), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return StatusUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return StatusTimeout
	}
	return StatusFailed
}
