// Package transport carries whole POOL packets between two nodes: the TCP
// overlay (length-delimited frames on a stream, port 9253) today, raw IP
// protocol 253 (datagrams) later. Sessions see only the Conn interface.
package transport

import (
	"errors"
	"time"

	"github.com/pool-go/pool/internal/handshake"
)

// DefaultPort is POOL's TCP overlay port (draft §16).
const DefaultPort = 9253

// ErrFrame reports a frame that cannot be a POOL packet (a length below the
// minimum for its state or a bad version); over TCP it ends the connection.
var ErrFrame = errors.New("transport: malformed frame")

// Conn is one transport association carrying one session's packets.
type Conn interface {
	// ReadPacket returns the next whole packet in a pooled buffer
	// (bufpool.Get); the caller owns it and must bufpool.Put it.
	ReadPacket() (*[]byte, error)
	// WritePackets sends whole packets in order. A stream transport
	// coalesces them into as few writes as it can.
	WritePackets(pkts [][]byte) error
	// Path identifies both endpoints and the transport kind; the handshake
	// binds it into the cookie.
	Path() handshake.Path
	// Reliable reports an ordered, lossless transport (TCP). Over it the
	// receiver demands exactly the next sequence number (DESIGN 2.7) and any
	// forged or corrupt packet ends the session (DESIGN 2.8).
	Reliable() bool
	// MaxPacket is the largest packet the peer accepts over this transport.
	MaxPacket() int
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	Close() error
}
