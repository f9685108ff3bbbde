package testutil

import (
	"net"
	"testing"
)

// TCPPair returns the two ends of a loopback TCP connection; both are
// closed when the test ends.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		c.Close()
		t.Fatal("loopback accept failed")
	}
	t.Cleanup(func() { c.Close(); sc.Close() })
	return c.(*net.TCPConn), sc.(*net.TCPConn)
}
