package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// target is an in-process TCP server on loopback that runs handle for
// every connection.
type target struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newTarget(t *testing.T, handle func(*net.TCPConn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.mu.Lock()
			tg.conns = append(tg.conns, c)
			tg.mu.Unlock()
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(tg.close)
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

func (tg *target) close() {
	tg.ln.Close()
	tg.mu.Lock()
	for _, c := range tg.conns {
		c.Close()
	}
	tg.mu.Unlock()
	tg.wg.Wait()
}

// echo answers with what it reads. It copies through a buffer, hiding the
// connection's ReadFrom: TCP-to-TCP io.Copy splices through pipes that
// the runtime keeps pooled, which the descriptor count would see.
func echo(c *net.TCPConn) {
	defer c.Close()
	io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 32<<10))
	c.CloseWrite()
}

func newPair(t *testing.T, targetAddr string, opt *PairOptions) *Pair {
	t.Helper()
	p, err := NewPair(targetAddr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dialPair(t *testing.T, p *Pair) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// TestBridgeHalfCloseClientFirst: the client sends, half-closes, and then
// reads the target's answer, which the target sends only after it has
// read the client's end of stream. Without FIN → channel FIN → FIN the
// target would wait for ever.
func TestBridgeHalfCloseClientFirst(t *testing.T) {
	tg := newTarget(t, func(c *net.TCPConn) {
		defer c.Close()
		h := sha256.New()
		n, _ := io.Copy(h, c) // until the client's FIN
		c.Write([]byte{byte(n >> 16), byte(n >> 8), byte(n)})
		c.Write(h.Sum(nil))
		c.CloseWrite()
	})
	p := newPair(t, tg.addr(), nil)
	c := dialPair(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := bytes.Repeat([]byte("half-close "), 100_000)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	n := len(data)
	want := append([]byte{byte(n >> 16), byte(n >> 8), byte(n)}, sum[:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("answer %x, want %x", got, want)
	}
}

// TestBridgeHalfCloseTargetFirst: the target speaks and half-closes first;
// the client reads the end of stream and can still send, and the target
// receives it.
func TestBridgeHalfCloseTargetFirst(t *testing.T) {
	got := make(chan []byte, 1)
	tg := newTarget(t, func(c *net.TCPConn) {
		defer c.Close()
		c.Write([]byte("banner\n"))
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		got <- b
	})
	p := newPair(t, tg.addr(), nil)
	c := dialPair(t, p)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "banner\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := c.Write([]byte("after the target's FIN")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	select {
	case b := <-got:
		if string(b) != "after the target's FIN" {
			t.Fatalf("target got %q", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the target never got the client's data and FIN")
	}
}

// TestBridgeBackpressure: a target writes as fast as it can to a client
// that does not read. What the target manages to write must stay bounded
// (socket buffers at both edges plus one channel window), and so must the
// process's heap; then the client reads everything, intact.
func TestBridgeBackpressure(t *testing.T) {
	const total = 128 << 20
	var written atomic.Int64
	tg := newTarget(t, func(c *net.TCPConn) {
		defer c.Close()
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for written.Load() < total {
			n, err := c.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
		c.CloseWrite()
	})
	p := newPair(t, tg.addr(), nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c := dialPair(t, p)
	defer c.Close()
	// Wait until the target is stalled: its count stops moving.
	last := int64(-1)
	for stable := 0; stable < 5; {
		time.Sleep(100 * time.Millisecond)
		w := written.Load()
		if w == last && w > 0 {
			stable++
		} else {
			stable = 0
		}
		last = w
	}
	// Loopback TCP buffers can grow to a few MiB per socket (tcp_rmem,
	// tcp_wmem); the channel holds at most its 1 MiB window.
	const bound = 48 << 20
	if last >= bound {
		t.Fatalf("the target wrote %d MiB into a client that reads nothing: no backpressure", last>>20)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grow := int64(during.HeapInuse) - int64(before.HeapInuse); grow > 32<<20 {
		t.Fatalf("heap grew by %d MiB with a stalled reader", grow>>20)
	}
	t.Logf("stalled after %.1f MiB written; heap %+.1f MiB", float64(last)/(1<<20), float64(int64(during.HeapInuse)-int64(before.HeapInuse))/(1<<20))
	c.SetDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := c.Read(buf)
		for i := 0; i < k; i++ {
			if buf[i] != byte(int((n+int64(i))%(64<<10))*7) {
				t.Fatalf("byte %d corrupted", n+int64(i))
			}
		}
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != written.Load() || n < total {
		t.Fatalf("read %d of %d", n, written.Load())
	}
}

// isClosed reports whether c's peer is gone: a read returns EOF or a
// reset before the deadline, not a timeout.
func readUntilClosed(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return err
		}
		return nil
	}
}

// TestBridgeRefusedTarget: with nothing listening at the target the far
// side answers REFUSED and the client's connection is reset, promptly and
// without a hang; the counters and the event say so.
func TestBridgeRefusedTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	events := make(chan ConnEvent, 4)
	p := newPair(t, dead, &PairOptions{Client: ClientConfig{OnConn: func(e ConnEvent) { events <- e }}})
	c := dialPair(t, p)
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("read %d, %v; want a closed connection", n, err)
	}
	e := <-events
	if e.Status != StatusRefused || e.Err == nil {
		t.Fatalf("event %+v", e)
	}
	if st := p.Client.Stats(); st.Refused != 1 || st.Conns != 1 || st.Active != 0 {
		t.Fatalf("client stats %+v", st)
	}
	if st := p.Server.Stats(); st[0].Refused != 1 || st[0].Errors != 0 || st[0].Conns != 1 {
		t.Fatalf("server stats %+v", st)
	}
}

// TestBridgeKilledTarget: a target that dies mid-transfer (its connection
// reset) ends the client's connection within a second.
func TestBridgeKilledTarget(t *testing.T) {
	kill := make(chan struct{})
	tg := newTarget(t, func(c *net.TCPConn) {
		defer c.Close()
		buf := make([]byte, 32<<10)
		go func() { <-kill; c.SetLinger(0); c.Close() }()
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	p := newPair(t, tg.addr(), nil)
	c := dialPair(t, p)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	close(kill)
	if err := readUntilClosed(c, time.Second); err != nil {
		t.Fatalf("the client's connection outlived its target by more than a second: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Client.Stats().Active != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.Client.Stats(); st.Errors != 1 {
		t.Errorf("client stats %+v: the reset is not counted as an error", st)
	}
}

// TestBridgeClientVanishes: the TCP client resets its connection; the
// target's connection is ended too (no connection left open at the far
// edge).
func TestBridgeClientVanishes(t *testing.T) {
	ended := make(chan error, 1)
	tg := newTarget(t, func(c *net.TCPConn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, c)
		ended <- err
	})
	p := newPair(t, tg.addr(), nil)
	c := dialPair(t, p)
	c.Write([]byte("hello"))
	time.Sleep(50 * time.Millisecond)
	c.SetLinger(0)
	c.Close()
	if err := <-ended; os.IsTimeout(err) {
		t.Fatal("the target's connection stayed open after the client reset")
	}
}

func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// TestBridgeThousandConnections: 1,000 connections at once (more than
// three sessions' worth of channels), each echoing a message, then all
// closed: no connection fails, and once the pair is closed no goroutine
// (TestMain's goleak) and no descriptor is left.
func TestBridgeThousandConnections(t *testing.T) {
	const n = 1000
	fds := fdCount(t)
	tg := newTarget(t, echo)
	p, err := NewPair(tg.addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.TCPConn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range conns {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.TCPConn)
	}
	// All open at once: each sends, and reads its echo.
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			msg := []byte("connection " + string(rune('A'+i%26)) + " number " + itoa(i))
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- errors.New("bad echo on connection " + itoa(i))
			}
		}()
	}
	wg.Wait()
	if st := p.Client.Stats(); st.Active != n || st.Sessions < 4 {
		t.Errorf("with %d open: %+v (want %d active over at least 4 sessions)", n, st, n)
	}
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.CloseWrite()
			if _, err := io.ReadAll(c); err != nil {
				errs <- err
			}
			c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every bridged connection ends by itself once both sides closed.
	deadline := time.Now().Add(30 * time.Second)
	for p.Client.Stats().Active != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := p.Client.Stats()
	if st.Active != 0 || st.Conns != n || st.Errors != 0 {
		t.Errorf("after closing: %+v", st)
	}
	// The extra sessions the burst opened are closed once idle at two
	// checks in a row; the first stays.
	waitFor := func(cond func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Channel numbers are freed when the peer's FIN arrives: wait for it.
	waitFor(func() bool {
		p.Client.mu.Lock()
		defer p.Client.mu.Unlock()
		for _, ps := range p.Client.sessions {
			if ps.s.Telemetry().ChannelsOpen != 0 {
				return false
			}
		}
		return true
	})
	p.Client.reapIdle()
	if got := p.Client.Stats().Sessions; got != st.Sessions {
		t.Errorf("one idle check closed sessions: %d of %d left", got, st.Sessions)
	}
	p.Client.reapIdle()
	if got := p.Client.Stats().Sessions; got != 1 {
		t.Errorf("%d sessions left after two idle checks, want 1", got)
	}
	p.Close()
	tg.close()
	// Descriptors are released by the runtime's poller soon after Close.
	deadline = time.Now().Add(10 * time.Second)
	for fdCount(t) > fds && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := fdCount(t); got > fds {
		t.Errorf("%d descriptors open after closing, %d before: %v", got, fds, fdKinds())
	}
}

// fdKinds summarises what the open descriptors are, for a failure message.
func fdKinds() map[string]int {
	m := map[string]int{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if i := strings.IndexByte(l, '['); i > 0 {
			l = l[:i]
		}
		m[l]++
	}
	return m
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestRouterDialDestination: the shim's entry point. A routed destination
// the far side allows is carried; one it does not allow is refused with
// StatusNotAllowed; one no route covers wraps ErrNoRoute.
func TestRouterDialDestination(t *testing.T) {
	tg := newTarget(t, echo)
	tap := netip.MustParseAddrPort(tg.addr())
	srvID, _ := pool.GenerateIdentity()
	cliID, _ := pool.GenerateIdentity()
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: srvID, AllowList: pool.NewAllowList(cliID.Public)})
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := ParsePattern("127.0.0.0/8:" + itoa(int(tap.Port())))
	srv, err := NewServer(ServerConfig{Allow: []Pattern{allow}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	defer func() { srv.Close(); l.Close(); <-served }()

	rt, err := NewRoute("127.0.0.0/8:*", srvID.Public.String(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(RouterConfig{Pool: &pool.Config{Identity: cliID}, Routes: []Route{rt}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := r.DialDestination(ctx, tap)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(b) != "ping" {
		t.Fatalf("echo %q, %v", b, err)
	}

	other := netip.AddrPortFrom(tap.Addr(), tap.Port()+1)
	var se *StatusError
	if _, err := r.DialDestination(ctx, other); !errors.As(err, &se) || se.Status != StatusNotAllowed {
		t.Fatalf("not allowed destination: %v", err)
	}
	if _, err := r.DialDestination(ctx, netip.MustParseAddrPort("192.0.2.1:80")); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("unrouted destination: %v", err)
	}
	st := r.Stats()
	if len(st) != 1 || st[0].Conns != 2 || st[0].Refused != 1 || st[0].BytesUp != 4 || st[0].BytesDown != 4 || st[0].Active != 0 {
		t.Fatalf("router stats %+v", st)
	}
}

// TestServerRefusesBadRequests: a peer that sends garbage, or nothing,
// gets a status and a closed channel, never a hang and never a
// connection.
func TestServerRefusesBadRequests(t *testing.T) {
	tg := newTarget(t, echo)
	p := newPair(t, tg.addr(), &PairOptions{Server: ServerConfig{RequestTimeout: 300 * time.Millisecond}})
	ch, err := p.Client.openChannel()
	if err != nil {
		t.Fatal(err)
	}
	ch.SetDeadline(time.Now().Add(10 * time.Second))
	ch.Write([]byte{2, 0, 0, 0})
	rep := make([]byte, 3)
	n, _ := io.ReadFull(ch, rep)
	if n != 2 || rep[0] != 1 || Status(rep[1]) != StatusVersion {
		t.Fatalf("reply %x", rep[:n])
	}
	ch.Close()

	ch, err = p.Client.openChannel()
	if err != nil {
		t.Fatal(err)
	}
	ch.SetDeadline(time.Now().Add(10 * time.Second))
	ch.Write([]byte{1, 3}) // then silence
	n, _ = io.ReadFull(ch, rep)
	if n != 2 || Status(rep[1]) != StatusMalformed {
		t.Fatalf("reply to a stalled request %x", rep[:n])
	}
	ch.Close()
}

// TestClientReconnects: when the session dies, the next connections use a
// new one.
func TestClientReconnects(t *testing.T) {
	tg := newTarget(t, echo)
	p := newPair(t, tg.addr(), nil)
	roundTrip := func() {
		t.Helper()
		c := dialPair(t, p)
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte("x"))
		c.CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != "x" {
			t.Fatalf("echo %q, %v", b, err)
		}
	}
	roundTrip()
	p.Server.mu.Lock()
	var victims []*pool.Session
	for s := range p.Server.sess {
		victims = append(victims, s)
	}
	p.Server.mu.Unlock()
	for _, s := range victims {
		s.CloseWithError(pool.CodeOverload, "test: session killed")
	}
	for _, s := range victims {
		<-s.Done()
	}
	roundTrip()
}
