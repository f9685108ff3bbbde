package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/bridge"
)

// The bridge suite (issue 7): what an operator sees when ordinary TCP
// crosses POOL through tcp2pool → pool2tcp, beside the same traffic over
// plain TCP and over a stunnel pair, in the same run. Bulk: curl downloads
// --size bytes from an HTTP server. Small messages: 64-byte round trips on
// one connection (p50/p99), and as many again spread over parallelConns
// connections at once (round trips per second, the shape of
// redis-benchmark's load).

// bridgeRounds: each download is repeated this many times, the paths
// interleaved, and the median kept, so that a neighbour's burst on the
// shared machine does not decide one path's figure alone.
const bridgeRounds = 3

// parallelConns is the number of connections of the parallel round trips:
// redis-benchmark's default client count.
const parallelConns = 50

// A route is one way from a TCP client to a target.
type route struct {
	name string // "direct", "pool", "stunnel"
	http string // where curl connects
	echo string // where the round-trip client connects
}

func runBridge(ctx context.Context, o *Options, p progress) (_ *BridgeResult, err error) {
	dl := newDownloader()
	r := &BridgeResult{SizeBytes: o.Size, Rounds: bridgeRounds, Client: dl.Name(),
		Server: "Go net/http in this process", Samples: o.RoundTrips, Parallel: parallelConns}
	if r.Client == "go" {
		p.printf("curl not found: Go's HTTP client downloads instead")
	}
	blob, err := startBlobServer(o.Size)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	es, err := startEchoServer()
	if err != nil {
		return nil, err
	}
	defer es.Close()

	// Both bridge pairs run with every default: one long-lived session
	// each, its handshake paid by the warm-up below.
	hp, err := bridge.NewPair(blob.Addr, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge pair: %w", err)
	}
	defer hp.Close()
	ep, err := bridge.NewPair(es.Addr, nil)
	if err != nil {
		return nil, fmt.Errorf("bridge pair: %w", err)
	}
	defer ep.Close()
	routes := []route{{"direct", blob.Addr, es.Addr}, {"pool", hp.Addr, ep.Addr}}

	var st *stunnelPair
	if bin, ok := stunnelBinary(); ok {
		st, err = startStunnel(ctx, bin, map[string]string{"http": blob.Addr, "echo": es.Addr})
		if err != nil {
			return nil, err
		}
		defer st.Close()
		r.Stunnel = st.Version
		routes = append(routes, route{"stunnel", st.Addr["http"], st.Addr["echo"]})
	} else {
		r.StunnelNote = "stunnel not installed (Debian package stunnel4): no stunnel row"
		p.printf("%s", r.StunnelNote)
	}

	// Downloads. The timeout allows 10 MB/s at the least.
	timeout := max(time.Minute, time.Duration(o.Size/10e6)*time.Second)
	mbpsOf := map[string][]float64{}
	cpuOf := map[string][]float64{}
	for _, rt := range routes {
		if _, err := dl.get(ctx, "http://"+rt.http+"/small", 1<<10, timeout); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", rt.name, err)
		}
	}
	for round := range bridgeRounds {
		for _, rt := range routes {
			self0, tun0 := processCPU(), time.Duration(0)
			if rt.name == "stunnel" {
				tun0 = st.CPU()
			}
			f, err := dl.get(ctx, "http://"+rt.http+"/blob", o.Size, timeout)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", rt.name, err)
			}
			cpu := processCPU() - self0 + f.ClientCPU
			if rt.name == "stunnel" {
				cpu += st.CPU() - tun0
			}
			v := mbps(o.Size, f.Elapsed)
			perMB := float64(cpu.Microseconds()) / 1e3 / (float64(o.Size) / 1e6)
			mbpsOf[rt.name] = append(mbpsOf[rt.name], v)
			cpuOf[rt.name] = append(cpuOf[rt.name], perMB)
			p.printf("round %d, %-7s %8.0f MB/s, CPU %.2f ms/MB", round+1, rt.name, v, perMB)
		}
	}
	r.DirectMBps, r.DirectCPUPerMB = median(mbpsOf["direct"]), median(cpuOf["direct"])
	r.PoolMBps, r.PoolCPUPerMB = median(mbpsOf["pool"]), median(cpuOf["pool"])
	r.PoolOverDirect = ratio(r.PoolMBps, r.DirectMBps)
	if st != nil {
		r.StunnelMBps, r.StunnelCPUPerMB = median(mbpsOf["stunnel"]), median(cpuOf["stunnel"])
		r.PoolOverStunnel = ratio(r.PoolMBps, r.StunnelMBps)
		r.StunnelTLS = st.TLS()
	}

	// Small messages.
	perConn := max(o.RoundTrips/parallelConns, 2)
	for _, rt := range routes {
		p50, p99, err := roundTrips(ctx, rt.echo, o.RoundTrips)
		if err != nil {
			return nil, fmt.Errorf("%s: round trips: %w", rt.name, err)
		}
		rps, err := parallelRoundTrips(ctx, rt.echo, parallelConns, perConn)
		if err != nil {
			return nil, fmt.Errorf("%s: %d parallel connections: %w", rt.name, parallelConns, err)
		}
		p.printf("%-7s 64-byte round trip p50 %.1f µs, p99 %.1f µs; %d connections: %.0f round trips/s", rt.name, p50, p99, parallelConns, rps)
		switch rt.name {
		case "direct":
			r.DirectP50us, r.DirectP99us, r.DirectParallelRPS = p50, p99, rps
		case "pool":
			r.PoolP50us, r.PoolP99us, r.PoolParallelRPS = p50, p99, rps
		case "stunnel":
			r.StunnelP50us, r.StunnelP99us, r.StunnelParallelRPS = p50, p99, rps
		}
	}
	r.PoolP50OverDirect = ratio(r.PoolP50us, r.DirectP50us)
	r.PoolParallelOverDirect = ratio(r.PoolParallelRPS, r.DirectParallelRPS)
	if st != nil {
		r.PoolP50OverStunnel = ratio(r.PoolP50us, r.StunnelP50us)
		r.PoolParallelOverStunnel = ratio(r.PoolParallelRPS, r.StunnelParallelRPS)
		if r.StunnelTLS == "" {
			r.StunnelTLS = st.TLS()
		}
	}
	return r, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// roundTrips times n 64-byte round trips on one new connection to addr.
func roundTrips(ctx context.Context, addr string, n int) (p50, p99 float64, err error) {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	return pingPong(c, n)
}

// parallelRoundTrips opens conns connections to addr, then runs perConn
// sequential 64-byte round trips on each, all connections at once, and
// returns round trips per second over the whole.
func parallelRoundTrips(ctx context.Context, addr string, conns, perConn int) (float64, error) {
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := dialTCP(ctx, addr)
		if err != nil {
			return 0, err
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		cs = append(cs, c)
	}
	defer context.AfterFunc(ctx, func() {
		for _, c := range cs {
			c.Close()
		}
	})()
	// One untimed round trip on each connection first: the bridge's
	// channel and stunnel's TLS handshake are set up when the first bytes
	// arrive, and this measures the steady state.
	req, resp := make([]byte, msgSize), make([]byte, msgSize)
	for _, c := range cs {
		if _, err := c.Write(req); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			return 0, err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := make([]byte, msgSize), make([]byte, msgSize)
			for i := range perConn {
				req[0] = byte(i)
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					errs <- err
					return
				}
				if resp[0] != req[0] {
					errs <- errors.New("echo returned another message")
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(conns*perConn) / el.Seconds(), nil
}

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// echoServer answers every 64-byte message of each connection with itself.
type echoServer struct {
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startEchoServer() (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &echoServer{Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				echo(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// Close stops accepting, ends every connection and waits for them.
func (s *echoServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
