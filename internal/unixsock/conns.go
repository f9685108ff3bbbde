package unixsock

import (
	"net"
	"sync"
)

// Conns is the set of a local server's open connections, so that closing
// the server ends them (a control or shim client that stalls must not
// hold the node's shutdown). The zero value is ready to use.
type Conns struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// Add tracks c; false once CloseAll has run (the caller then closes c).
func (s *Conns) Add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	return true
}

// Remove stops tracking c and closes it.
func (s *Conns) Remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	c.Close()
}

// CloseAll closes every tracked connection; later Adds fail.
func (s *Conns) CloseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		c.Close()
	}
}
