package shimd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "shim.sock")
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRelayHalfClose: a connected stream carries data both ways, and the
// application's half-close reaches the destination, whose own half-close
// comes back after its last bytes.
func TestRelayHalfClose(t *testing.T) {
	echo := startEcho(t)
	s := startServer(t, Config{Dialer: tcpDialer{}})
	c, err := Connect(ctx5(t), s.Path(), echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	data := make([]byte, 3<<20)
	rand.Read(data)
	go func() {
		_, _ = c.Write(data)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	got, err := io.ReadAll(c) // ends only if the echo server's FIN came back
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echoed %d bytes that differ from the %d sent", len(got), len(data))
	}
	st := s.Stats()
	if st.Connected != 1 || st.BytesOut != uint64(len(data)) || st.BytesIn != uint64(len(data)) {
		t.Errorf("stats %+v", st)
	}
}

// TestStatuses: each kind of dial error reaches the client as its status,
// with the reason, and is counted.
func TestStatuses(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().(*net.TCPAddr).AddrPort()
	closed.Close()
	dst := netip.MustParseAddrPort("192.0.2.10:6379")
	for _, tc := range []struct {
		name   string
		cfg    Config
		dst    netip.AddrPort
		want   Status
		reason string
		count  func(Stats) uint64
	}{
		{"sentinel no route", Config{Dialer: errDialer{fmt.Errorf("route: %w", ErrNoRoute)}}, dst, StatusNoRoute, "no POOL route", func(s Stats) uint64 { return s.NoRoute }},
		{"IsNoRoute", Config{Dialer: errDialer{errFakeNoRoute}, IsNoRoute: func(err error) bool { return errors.Is(err, errFakeNoRoute) }}, dst, StatusNoRoute, "no peer serves it", func(s Stats) uint64 { return s.NoRoute }},
		{"refused by the OS", Config{Dialer: tcpDialer{}}, closedAddr, StatusRefused, "refused", func(s Stats) uint64 { return s.Refused }},
		{"refused sentinel", Config{Dialer: errDialer{ErrRefused}}, dst, StatusRefused, "refused", func(s Stats) uint64 { return s.Refused }},
		{"unreachable", Config{Dialer: errDialer{ErrUnreachable}}, dst, StatusUnreachable, "unreachable", func(s Stats) uint64 { return s.Unreachable }},
		{"timeout", Config{Dialer: blockDialer{}, DialTimeout: 50 * time.Millisecond}, dst, StatusTimeout, "deadline", func(s Stats) uint64 { return s.Timeouts }},
		{"other", Config{Dialer: errDialer{errors.New("something odd")}}, dst, StatusFailed, "something odd", func(s Stats) uint64 { return s.Errors }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.cfg)
			_, err := Connect(ctx5(t), s.Path(), tc.dst)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tc.want || !strings.Contains(se.Reason, tc.reason) {
				t.Fatalf("got %v, want status %v with %q", err, tc.want, tc.reason)
			}
			if n := tc.count(s.Stats()); n != 1 {
				t.Errorf("counted %d, want 1: %+v", n, s.Stats())
			}
		})
	}
}

// TestBadRequests: a malformed request gets a "failed" answer naming the
// problem; a silent client is dropped after RequestTimeout.
func TestBadRequests(t *testing.T) {
	s := startServer(t, Config{Dialer: tcpDialer{}, RequestTimeout: 200 * time.Millisecond})
	for _, tc := range []struct {
		req  []byte
		want string
	}{
		{[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad magic"},
		{append([]byte("PSHM\x02\x04\x00\x50"), make([]byte, 16)...), "version 2"},
		{[]byte("PSHM\x01"), "short"},
	} {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(tc.req)
		c.(*net.UnixConn).CloseWrite()
		// The server closes with the rest of a long request unread: a
		// reset after the response.
		resp, err := io.ReadAll(c)
		c.Close()
		if errors.Is(err, syscall.ECONNRESET) {
			err = nil
		}
		if err != nil || len(resp) < ResponseLen {
			t.Fatalf("%q: response %x, %v", tc.req, resp, err)
		}
		st, _, err := DecodeResponseHeader(resp[:ResponseLen])
		if err != nil || st != StatusFailed || !strings.Contains(string(resp[ResponseLen:]), tc.want) {
			t.Errorf("%q: status %v reason %q (%v), want failed with %q", tc.req, st, resp[ResponseLen:], err, tc.want)
		}
	}
	// Silent: the server closes without answering once RequestTimeout passed.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err != io.EOF {
		t.Errorf("silent client: read %d, %v; want EOF from the server", n, err)
	}
	c.Close()
	if n := s.Stats().BadRequests; n != 4 {
		t.Errorf("bad requests counted %d, want 4", n)
	}
}

// TestBusy: connections over MaxConns are answered "busy" at once.
func TestBusy(t *testing.T) {
	s := startServer(t, Config{Dialer: blockDialer{}, MaxConns: 1, DialTimeout: time.Minute})
	first, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	req, _ := EncodeRequest(netip.MustParseAddrPort("192.0.2.1:80"))
	first.Write(req[:])
	for s.Stats().Active != 1 {
		time.Sleep(time.Millisecond)
	}
	_, err = Connect(ctx5(t), s.Path(), netip.MustParseAddrPort("192.0.2.1:80"))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusFailed || !strings.Contains(se.Reason, "busy") {
		t.Fatalf("second connection: %v, want busy", err)
	}
	if s.Stats().Busy != 1 {
		t.Errorf("busy counted %d", s.Stats().Busy)
	}
}

// TestCloseEndsConnections: Close ends dialing and relaying connections and
// removes the socket, leaving no goroutine behind (TestMain checks).
func TestCloseEndsConnections(t *testing.T) {
	echo := startEcho(t)
	path := filepath.Join(t.TempDir(), "shim.sock")
	s, err := Listen(Config{Path: path, Dialer: tcpDialer{}})
	if err != nil {
		t.Fatal(err)
	}
	relayed, err := Connect(ctx5(t), path, echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	s.Close()
	_ = relayed.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(relayed); err != nil {
		t.Errorf("relayed connection after Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}

	// A dial in progress is canceled too.
	s2 := startServer(t, Config{Dialer: blockDialer{}, DialTimeout: time.Minute})
	var wg sync.WaitGroup
	wg.Add(1)
	var cerr error
	go func() {
		defer wg.Done()
		_, cerr = Connect(ctx5(t), s2.Path(), netip.MustParseAddrPort("192.0.2.1:80"))
	}()
	for s2.Stats().Active != 1 {
		time.Sleep(time.Millisecond)
	}
	s2.Close()
	wg.Wait()
	if cerr == nil {
		t.Error("a dial in progress survived Close")
	}
}

// TestSocketMode: the socket gets the configured mode; world bits are
// refused, since anyone who can connect uses the node's identity.
func TestSocketMode(t *testing.T) {
	s := startServer(t, Config{Dialer: tcpDialer{}, Mode: 0o660, Group: fmt.Sprint(os.Getgid())})
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	s2 := startServer(t, Config{Dialer: tcpDialer{}})
	if fi, _ := os.Stat(s2.Path()); fi.Mode().Perm() != 0o600 {
		t.Errorf("default mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := Listen(Config{Path: filepath.Join(t.TempDir(), "w.sock"), Dialer: tcpDialer{}, Mode: 0o666}); err == nil {
		t.Error("mode 0666 accepted")
	}
	if _, err := Listen(Config{Path: s2.Path(), Dialer: tcpDialer{}}); err == nil || !strings.Contains(err.Error(), "another pool node") {
		t.Errorf("second server on a live socket: %v", err)
	}
}

// TestSlowReaderBounded: a destination that sends far more than the
// application reads stalls in the kernel buffers; shimd holds only its
// fixed buffer, so the destination's writes stop progressing.
func TestSlowReaderBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	written := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			written <- 0
			return
		}
		defer c.Close()
		_ = c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, _ := io.Copy(c, io.LimitReader(zeros{}, 1<<30))
		written <- n
	}()
	s := startServer(t, Config{Dialer: tcpDialer{}})
	c, err := Connect(ctx5(t), s.Path(), ln.Addr().(*net.TCPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := <-written // the writer gave up: nobody read
	// Kernel buffers on two sockets pairs plus one relay buffer: a few MiB
	// at most, never the whole GiB.
	if n >= 64<<20 {
		t.Errorf("destination wrote %d bytes to an application that read nothing", n)
	}
	if got := s.Stats().BytesIn; got > uint64(n) {
		t.Errorf("relayed %d > written %d", got, n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
