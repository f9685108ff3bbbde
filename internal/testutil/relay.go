// Package testutil holds test-only network tools: a frame-aware TCP relay
// that can corrupt, replay, drop or stall POOL packets in flight (netem is
// not available on the test machines, so faults are made in userspace).
package testutil

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Direction of a packet through the relay.
type Direction int

// Directions.
const (
	ClientToServer Direction = iota
	ServerToClient
)

// Hook sees each whole packet (header and payload) and returns the packets
// to forward in its place: nil drops it, two copies replay it.
type Hook func(dir Direction, index int, pkt []byte) [][]byte

// Relay forwards POOL frames between a client and a target server.
type Relay struct {
	ln     net.Listener
	target string
	hook   Hook
	stall  [2]atomic.Bool
	done   chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// NewRelay listens on loopback and forwards every connection to target.
func NewRelay(target string, hook Hook) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, hook: hook, done: make(chan struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is where clients connect.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stall stops forwarding in one direction without closing anything: a
// black hole, as a dead path looks to TCP.
func (r *Relay) Stall(d Direction) { r.stall[d].Store(true) }

// Cut closes every relayed connection abruptly (a vanished peer).
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// Close stops the relay and waits for its goroutines.
func (r *Relay) Close() error {
	err := r.ln.Close()
	close(r.done)
	r.Cut()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pump(ClientToServer, c, s)
		go r.pump(ServerToClient, s, c)
	}
}

// pump copies frames: 80-byte header, then the length field's bytes.
func (r *Relay) pump(d Direction, from, to net.Conn) {
	defer r.wg.Done()
	defer to.Close()
	defer from.Close()
	for i := 0; ; i++ {
		var hdr [80]byte
		if _, err := io.ReadFull(from, hdr[:]); err != nil {
			return
		}
		pkt := make([]byte, 80+int(binary.BigEndian.Uint16(hdr[44:46])))
		copy(pkt, hdr[:])
		if _, err := io.ReadFull(from, pkt[80:]); err != nil {
			return
		}
		if r.stall[d].Load() {
			// Hold the packet and stop reading, so the sender's socket
			// fills, until the relay closes.
			<-r.done
			return
		}
		out := [][]byte{pkt}
		if r.hook != nil {
			out = r.hook(d, i, pkt)
		}
		for _, p := range out {
			if _, err := to.Write(p); err != nil {
				return
			}
		}
	}
}
