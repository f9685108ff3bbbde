package shimd

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// tcpDialer is a fake router: every destination is "served" by dialing it
// directly over TCP, as the bridge would at the far end.
type tcpDialer struct{}

func (tcpDialer) DialDestination(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

// errDialer answers every destination with err.
type errDialer struct{ err error }

func (d errDialer) DialDestination(context.Context, netip.AddrPort) (net.Conn, error) {
	return nil, d.err
}

// blockDialer waits for the context: a POOL peer that never answers.
type blockDialer struct{}

func (blockDialer) DialDestination(ctx context.Context, _ netip.AddrPort) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// echoServer echoes each connection and half-closes when the client does.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *echoServer) addr() netip.AddrPort {
	return e.ln.Addr().(*net.TCPAddr).AddrPort()
}

var errFakeNoRoute = errors.New("fake router: no peer serves it")
