package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// runFlood measures the server under INITs that never complete, three ways:
//
//  1. capacity: o.FloodInits INITs pipelined over o.FloodConns TCP
//     connections (each from its own 127.x.y.z /24) into the handshake
//     server the listener uses, with its per-prefix limiter configured off
//     (ServerConfig.InitRate < 0): how many CHALLENGEs a second the server
//     can mint, and whether its heap grows with them. A listener reads one
//     INIT per connection (PROTOCOL.md §3.4), so pipelining needs this
//     small framing loop in place of the listener's accept loop;
//     meanwhile a real client dials a listener with every default in the
//     same process, which shares the two cores with the flood.
//  2. the listener itself, one INIT per connection as an attacker must
//     send them, sources spread over 127.0.0.0/8, default defenses.
//  3. a flood from a single /24 against a default listener: what the
//     per-prefix limits let through, and a client of another /24.
func runFlood(ctx context.Context, o *Options, p progress) (*FloodResult, error) {
	r := &FloodResult{Inits: o.FloodInits, Connections: o.FloodConns}
	victim, err := newPoolNet(nil) // every default: limiter and caps on
	if err != nil {
		return nil, err
	}
	defer victim.Close()
	if err := floodCapacity(ctx, o, p, victim, r); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	p.printf("capacity: %.0f INITs/s answered, heap %s, client p50 %.1f ms max %.1f ms", r.InitsPerS,
		signedBytes(r.HeapGrowthBytes), r.ClientConnectMs, r.ClientConnectMax)
	if err := floodListener(ctx, o, p, victim, r); err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	p.printf("listener, one INIT per connection: %.0f INITs/s, heap %s", r.ListenerInitsPerS, signedBytes(r.ListenerHeapGrow))
	if err := floodOnePrefix(ctx, o, victim, &r.Limited); err != nil {
		return nil, fmt.Errorf("single prefix: %w", err)
	}
	p.printf("single /24: %d attempts, %d challenged, %d refused; other client ok=%v in %.1f ms",
		r.Limited.Attempts, r.Limited.Challenged, r.Limited.Refused, r.Limited.ClientOK, r.Limited.ClientConnectMs)
	return r, nil
}

// floodSource is the local address of flood connection i: its own /24 of
// 127.0.0.0/8 (127.100.0.0 upward), where every address is loopback.
func floodSource(i int, base byte) *net.TCPAddr {
	if !sourceSpread {
		return nil
	}
	j := i % (100 * 256)
	return &net.TCPAddr{IP: net.IPv4(127, base+byte(j>>8), byte(j), 7)}
}

// initTemplate is a valid INIT for server key k; floods vary its sequence
// number and refresh its timestamp, so each is a distinct INIT the server
// must answer (a fresh e_C per INIT would only cost the flooder).
func initTemplate(k addr.PublicKey) ([]byte, error) {
	id, err := addr.Generate()
	if err != nil {
		return nil, err
	}
	cl, err := handshake.NewClient(handshake.ClientConfig{Identity: id, PeerKey: &k})
	if err != nil {
		return nil, err
	}
	return slices.Clone(cl.Init()), nil
}

func stamp(init []byte, seq uint64, now int64) {
	binary.BigEndian.PutUint64(init[4:12], seq&(1<<62-1))
	binary.BigEndian.PutUint64(init[36:44], uint64(now))
}

func floodCapacity(ctx context.Context, o *Options, p progress, victim *poolNet, r *FloodResult) error {
	id, err := addr.Generate()
	if err != nil {
		return err
	}
	srv, err := handshake.NewServer(handshake.ServerConfig{Identity: id,
		Authorize: func(addr.PublicKey) bool { return false }, InitRate: -1})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var srvWG sync.WaitGroup
	defer func() { ln.Close(); srvWG.Wait() }()
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srvWG.Add(1)
			go func() { defer srvWG.Done(); answerInits(srv, c.(*net.TCPConn)) }()
		}
	}()
	tmpl, err := initTemplate(id.Public)
	if err != nil {
		return err
	}
	conns := make([]*net.TCPConn, o.FloodConns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	prefixes := map[netip.Prefix]bool{}
	for i := range conns {
		d := net.Dialer{LocalAddr: floodSource(i, 100)}
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		conns[i] = c.(*net.TCPConn)
		prefixes[handshake.Prefix(c.LocalAddr().(*net.TCPAddr).AddrPort().Addr())] = true
	}
	r.SourcePrefixes = len(prefixes)
	defer context.AfterFunc(ctx, func() { ln.Close() })() // Ctrl-C: the server side stops answering

	heap0, _, _ := memNow()
	var answered, sent atomic.Int64
	var peak atomic.Int64
	done := make(chan struct{})
	// Sample the heap (without forcing a collection) and dial the default
	// listener with a real client while the flood runs.
	var bg sync.WaitGroup
	var connects []time.Duration
	failures := 0
	bg.Add(2)
	go func() {
		defer bg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if v := int64(m.HeapAlloc); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			t := time.Now()
			c, s, err := victim.pair(ctx)
			if err != nil {
				failures++
				continue
			}
			connects = append(connects, time.Since(t))
			c.Close()
			s.Close()
		}
	}()
	stop := p.ticker(func() string {
		return fmt.Sprintf("  %d INITs sent, %d CHALLENGEs back", sent.Load(), answered.Load())
	})
	per := o.FloodInits / o.FloodConns
	r.Inits = per * o.FloodConns
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(conns))
	for i, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- pipelineInits(c, tmpl, uint64(i)<<40, per, &sent)
		}()
		go func() {
			defer wg.Done()
			errs <- countChallenges(c, &answered)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	stop()
	close(done)
	bg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			return e
		}
	}
	heap1, _, _ := memNow()
	r.Answered = answered.Load()
	r.InitsPerS = float64(r.Answered) / el.Seconds()
	r.HeapGrowthBytes = int64(heap1) - int64(heap0)
	r.HeapPeakBytes = peak.Load()
	r.ClientConnects, r.ClientFailures = len(connects), failures
	if len(connects) == 0 {
		// The flood ended before the first try: measure once after it.
		t := time.Now()
		c, s, err := victim.pair(ctx)
		if err != nil {
			return fmt.Errorf("a real client after the flood: %w", err)
		}
		connects = append(connects, time.Since(t))
		c.Close()
		s.Close()
		r.ClientConnects = 1
	}
	slices.Sort(connects)
	r.ClientConnectMs = float64(connects[len(connects)/2].Microseconds()) / 1000
	r.ClientConnectMax = float64(connects[len(connects)-1].Microseconds()) / 1000
	if r.Answered != int64(r.Inits) {
		return fmt.Errorf("%d of %d INITs answered (limiter off: all should be)", r.Answered, r.Inits)
	}
	return nil
}

// answerInits is the server side of the capacity flood: read INITs at
// their exact size, answer each with srv.HandleInit, and write the answers
// in batches (one write when the input runs dry).
func answerInits(srv *handshake.Server, c *net.TCPConn) {
	defer c.Close()
	path := transport.NewTCPConn(c, true).Path()
	rd := bufio.NewReaderSize(c, 64<<10)
	wr := bufio.NewWriterSize(c, 64<<10)
	var in [wire.InitLen]byte
	out := make([]byte, 0, wire.ChallengeLen)
	for {
		if _, err := io.ReadFull(rd, in[:]); err != nil {
			wr.Flush()
			return
		}
		var err error
		out, err = srv.HandleInit(out[:0], in[:], path)
		if err != nil {
			return // as the listener does: a refused INIT ends its connection
		}
		wr.Write(out)
		if rd.Buffered() < wire.InitLen {
			if wr.Flush() != nil {
				return
			}
		}
	}
}

// pipelineInits writes n INITs on c, distinct by sequence number, with a
// fresh timestamp per batch, then half-closes.
func pipelineInits(c *net.TCPConn, tmpl []byte, seq0 uint64, n int, sent *atomic.Int64) error {
	const batch = 256
	buf := make([]byte, 0, batch*len(tmpl))
	for i := 0; i < n; {
		buf = buf[:0]
		now := time.Now().UnixNano()
		k := min(batch, n-i)
		for j := range k {
			off := len(buf)
			buf = append(buf, tmpl...)
			stamp(buf[off:], seq0+uint64(i+j), now)
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
		i += k
		sent.Add(int64(k))
	}
	return c.CloseWrite()
}

// countChallenges reads CHALLENGEs until the server closes.
func countChallenges(c *net.TCPConn, answered *atomic.Int64) error {
	rd := bufio.NewReaderSize(c, 64<<10)
	var b [wire.ChallengeLen]byte
	for {
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if wire.PacketType(b[:]) != wire.TypeChallenge {
			return fmt.Errorf("answer of type %v", wire.PacketType(b[:]))
		}
		answered.Add(1)
	}
}

// oneInit connects from src, sends one INIT and reads its CHALLENGE; the
// connection is then reset (SO_LINGER 0), as a flooder leaves it, so no
// TIME_WAIT piles up. It reports whether a CHALLENGE came.
func oneInit(ctx context.Context, target string, src *net.TCPAddr, init []byte) bool {
	d := net.Dialer{LocalAddr: src, Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return false
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	_ = tc.SetLinger(0)
	_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
	stamp(init, uint64(time.Now().UnixNano()), time.Now().UnixNano())
	if _, err := tc.Write(init); err != nil {
		return false
	}
	var b [wire.ChallengeLen]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return false
	}
	return wire.PacketType(b[:]) == wire.TypeChallenge
}

// floodListener sends one INIT per connection into the default listener
// from FloodConns concurrent flooders spread over 127.0.0.0/8.
func floodListener(ctx context.Context, o *Options, p progress, victim *poolNet, r *FloodResult) error {
	tmpl, err := initTemplate(victim.l.Identity())
	if err != nil {
		return err
	}
	total := max(o.FloodInits/10, o.FloodConns)
	var next, answered atomic.Int64
	heap0, _, _ := memNow()
	stop := p.ticker(func() string {
		return fmt.Sprintf("  one INIT per connection: %d of %d", next.Load(), total)
	})
	start := time.Now()
	var wg sync.WaitGroup
	for range o.FloodConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			init := slices.Clone(tmpl)
			for {
				i := next.Add(1)
				if i > int64(total) || ctx.Err() != nil {
					return
				}
				if oneInit(ctx, victim.l.Addr().String(), floodSource(int(i), 100), init) {
					answered.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	stop()
	heap1, _, _ := memNow()
	r.ListenerInits = int64(total)
	r.ListenerInitsPerS = float64(answered.Load()) / el.Seconds()
	r.ListenerHeapGrow = int64(heap1) - int64(heap0)
	return ctx.Err()
}

// floodOnePrefix floods the default listener from one /24 (127.77.0.0/24)
// for a while, and meanwhile dials it with a real client from 127.0.0.1.
func floodOnePrefix(ctx context.Context, o *Options, victim *poolNet, r *Limited) error {
	tmpl, err := initTemplate(victim.l.Identity())
	if err != nil {
		return err
	}
	d := max(o.Duration, 300*time.Millisecond)
	r.Seconds = d.Seconds()
	fctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var attempts, challenged atomic.Int64
	var wg sync.WaitGroup
	for i := range o.FloodConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			init := slices.Clone(tmpl)
			var src *net.TCPAddr
			if sourceSpread {
				src = &net.TCPAddr{IP: net.IPv4(127, 77, 0, byte(1+i%250))}
			}
			for fctx.Err() == nil {
				ok := oneInit(fctx, victim.l.Addr().String(), src, init)
				if fctx.Err() != nil {
					return
				}
				attempts.Add(1)
				if ok {
					challenged.Add(1)
				}
			}
		}()
	}
	// Let the flood use up the prefix's burst, then connect from elsewhere.
	time.Sleep(d / 3)
	t := time.Now()
	c, s, err := victim.pair(ctx)
	r.ClientConnectMs = float64(time.Since(t).Microseconds()) / 1000
	if err == nil {
		r.ClientOK = true
		c.Close()
		s.Close()
	}
	wg.Wait()
	r.Attempts, r.Challenged = attempts.Load(), challenged.Load()
	r.Refused = r.Attempts - r.Challenged
	r.ChallengedPerS = float64(r.Challenged) / d.Seconds()
	return ctx.Err()
}
