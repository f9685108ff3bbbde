package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/wire"
)

func runHandshake(ctx context.Context, o *Options, p progress) (*HandshakeResult, error) {
	r := &HandshakeResult{}
	srvCPU, cliCPU, d, err := poolHandshakeCPU(ctx, o.Handshakes, p)
	if err != nil {
		return nil, fmt.Errorf("POOL CPU: %w", err)
	}
	r.ServerCPUus, r.ClientCPUus, r.Difficulty = us(srvCPU), us(cliCPU), int(d)
	p.printf("POOL CPU per handshake: server %.0f µs, client %.0f µs (d=%d)", r.ServerCPUus, r.ClientCPUus, d)
	srvCPU, cliCPU, group, err := tlsHandshakeCPU(ctx, o.Handshakes)
	if err != nil {
		return nil, fmt.Errorf("TLS CPU: %w", err)
	}
	r.TLS13ServerCPUus, r.TLS13ClientCPUus, r.TLS13Group = us(srvCPU), us(cliCPU), group
	p.printf("TLS 1.3 CPU per handshake: server %.0f µs, client %.0f µs (%s)", r.TLS13ServerCPUus, r.TLS13ClientCPUus, group)
	wall, err := poolHandshakeRate(ctx, o, p)
	if err != nil {
		return nil, fmt.Errorf("POOL handshakes/s: %w", err)
	}
	r.PerS, r.PoolWallMs = 1/wall.Seconds(), float64(wall.Microseconds())/1000
	p.printf("POOL over sockets: %.0f handshakes/s", r.PerS)
	wall, err = tlsHandshakeRate(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("TLS handshakes/s: %w", err)
	}
	r.TLS13PerS, r.TLS13WallMs = 1/wall.Seconds(), float64(wall.Microseconds())/1000
	p.printf("TLS 1.3 over sockets: %.0f handshakes/s", r.TLS13PerS)
	r.ServerOverTLS = ratio(r.ServerCPUus, r.TLS13ServerCPUus)
	cores := float64(runtime.NumCPU())
	r.ServerCapacityPerS, r.TLS13ServerCapacityPerS = ratio(cores*1e6, r.ServerCPUus), ratio(cores*1e6, r.TLS13ServerCPUus)
	return r, nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// poolHandshakeCPU runs n complete POOL handshakes, both roles on one
// goroutine locked to its thread, and charges each step to the role that
// runs it: the server's INIT and RESPONSE processing (cookie, puzzle check,
// every DH and key derivation, the ACCEPT) and the client's INIT, puzzle
// (one worker, on a goroutine of its own: that step is charged by process
// CPU) and ACCEPT check. The packets are handed over in memory:
// socket costs are left out here as in tlsHandshakeCPU, and counted by the
// end-to-end rate. The server runs with its defaults; each handshake comes
// from its own source address, as a server's clients do.
func poolHandshakeCPU(ctx context.Context, n int, p progress) (srvCPU, cliCPU time.Duration, d uint8, err error) {
	sid, err := addr.Generate()
	if err != nil {
		return 0, 0, 0, err
	}
	cid, err := addr.Generate()
	if err != nil {
		return 0, 0, 0, err
	}
	srv, err := handshake.NewServer(handshake.ServerConfig{Identity: sid,
		Authorize: func(k addr.PublicKey) bool { return k == cid.Public }})
	if err != nil {
		return 0, 0, 0, err
	}
	d = srv.Difficulty()
	peer := sid.Public
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var done atomic.Int64
	stop := p.ticker(func() string { return fmt.Sprintf("  POOL CPU: %d of %d handshakes", done.Load(), n) })
	defer stop()
	out := make([]byte, 0, wire.ChallengeLen)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		path := handshake.Path{Transport: handshake.TransportTCP,
			Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(i >> 8), byte(i), 2}), 40000),
			Server: netip.MustParseAddrPort("127.0.0.1:9253")}
		path.Client = netip.AddrPortFrom(netip.AddrFrom16(path.Client.Addr().As16()), path.Client.Port())
		path.Server = netip.AddrPortFrom(netip.AddrFrom16(path.Server.Addr().As16()), path.Server.Port())
		t0 := threadCPU()
		cl, err := handshake.NewClient(handshake.ClientConfig{Identity: cid, PeerKey: &peer, Workers: 1})
		if err != nil {
			return 0, 0, 0, err
		}
		t1 := threadCPU()
		chal, err := srv.HandleInit(out[:0], cl.Init(), path)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("INIT: %w", err)
		}
		t2, p2 := threadCPU(), processCPU()
		resp, err := cl.HandleChallenge(ctx, chal)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("CHALLENGE: %w", err)
		}
		// The puzzle runs on a worker goroutine (handshake.Solve), off
		// this thread: this step is charged by process CPU, which nothing
		// else uses meanwhile.
		t3, p3 := threadCPU(), processCPU()
		est, acc, err := srv.HandleResponse(resp, path)
		if err != nil || est == nil {
			return 0, 0, 0, fmt.Errorf("RESPONSE: %v", err)
		}
		t4 := threadCPU()
		cest, err := cl.HandleAccept(acc)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("ACCEPT: %w", err)
		}
		t5 := threadCPU()
		est.Keys.Zero()
		cest.Keys.Zero()
		srvCPU += (t2 - t1) + (t4 - t3)
		cliCPU += (t1 - t0) + (p3 - p2) + (t5 - t4)
		done.Store(int64(i + 1))
	}
	return srvCPU / time.Duration(n), cliCPU / time.Duration(n), d, nil
}

// tlsHandshakeCPU runs n full crypto/tls 1.3 handshakes (Go's defaults:
// its default key exchange group and suites, an ECDSA P-256 certificate,
// no resumption) over in-memory pipes, each side on its own goroutine
// locked to a thread, and returns each side's CPU per handshake.
func tlsHandshakeCPU(ctx context.Context, n int) (srvCPU, cliCPU time.Duration, group string, err error) {
	sc, cc, err := tlsConfigs(tls13Default)
	if err != nil {
		return 0, 0, "", err
	}
	type res struct {
		cpu   time.Duration
		group string
		err   error
	}
	srvRes := make(chan res, 1)
	conns := make(chan net.Conn)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var total time.Duration
		for c := range conns {
			t := threadCPU()
			s := tls.Server(c, sc)
			err := s.HandshakeContext(ctx)
			total += threadCPU() - t
			c.Close()
			if err != nil {
				for range conns {
				}
				srvRes <- res{err: err}
				return
			}
		}
		srvRes <- res{cpu: total}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var total time.Duration
	for range n {
		a, b := net.Pipe()
		conns <- b
		t := threadCPU()
		c := tls.Client(a, cc)
		err = c.HandshakeContext(ctx)
		total += threadCPU() - t
		if err == nil {
			group = c.ConnectionState().CurveID.String()
		}
		a.Close()
		if err != nil {
			break
		}
	}
	close(conns)
	sr := <-srvRes
	if err := errors.Join(err, sr.err); err != nil {
		return 0, 0, "", err
	}
	return sr.cpu / time.Duration(n), total / time.Duration(n), group, nil
}

// poolHandshakeRate times complete sessions over real sockets, one after
// another, against a listener with its defaults: TCP connect, INIT,
// CHALLENGE, the puzzle, RESPONSE, ACCEPT, the client's confirming packet,
// Accept, then a close of both ends. It returns the mean wall time.
func poolHandshakeRate(ctx context.Context, o *Options, p progress) (time.Duration, error) {
	// Sequential handshakes from 127.0.0.1 exceed the default 100 INITs/s
	// per /24 after its burst of 200: the rate knob is turned off so the
	// figure is the server's, not its limiter's.
	n, err := newPoolNet(func(c *pool.Config) { c.InitRate = -1 })
	if err != nil {
		return 0, err
	}
	defer n.Close()
	var count atomic.Int64
	stop := p.ticker(func() string { return fmt.Sprintf("  POOL over sockets: %d handshakes", count.Load()) })
	defer stop()
	start := time.Now()
	for k := int64(0); k < int64(o.Handshakes) && (k < 5 || time.Since(start) < o.Duration); k = count.Add(1) {
		c, s, err := n.pair(ctx)
		if err != nil {
			return 0, err
		}
		c.Close()
		s.Close()
	}
	return time.Since(start) / time.Duration(count.Load()), nil
}

// tlsHandshakeRate is poolHandshakeRate for crypto/tls 1.3.
func tlsHandshakeRate(ctx context.Context, o *Options) (time.Duration, error) {
	sc, cc, err := tlsConfigs(tls13Default)
	if err != nil {
		return 0, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", sc)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errc <- nil
				return
			}
			if err := c.(*tls.Conn).HandshakeContext(ctx); err != nil {
				c.Close()
				errc <- err
				return
			}
			c.Close()
		}
	}()
	d := tls.Dialer{Config: cc}
	count := 0
	start := time.Now()
	for count < o.Handshakes && (count < 5 || time.Since(start) < o.Duration) {
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return 0, err
		}
		c.Close()
		count++
	}
	el := time.Since(start)
	ln.Close()
	if err := <-errc; err != nil {
		return 0, err
	}
	return el / time.Duration(count), nil
}
