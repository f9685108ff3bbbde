package unixsock

import (
	"errors"
	"net"
	"sync"
)

// Errors of Conns.Add.
var (
	ErrBusy   = errors.New("unixsock: too many connections")
	ErrClosed = errors.New("unixsock: server closed")
)

// Conns is the set of a local server's open connections: it bounds how
// many are served at once (a flood of local clients cannot exhaust the
// node), and closing the server ends them (a control or shim client that
// stalls must not hold the node's shutdown).
type Conns struct {
	Max int // at most this many at once; 0: no bound

	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// Add tracks c: ErrBusy when Max are open (the caller answers "busy" and
// closes c), ErrClosed once CloseAll has run (the caller closes c).
func (s *Conns) Add(c net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.Max > 0 && len(s.m) >= s.Max:
		return ErrBusy
	}
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	return nil
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
