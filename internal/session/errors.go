package session

import (
	"errors"
	"fmt"
	"os"

	"github.com/pool-go/pool/internal/wire"
)

// CloseError is how a session or channel ended by a CLOSE: who sent it,
// its code (draft §11) and the sender's reason.
type CloseError struct {
	Remote bool
	// Channel is set for a channel's RST, which ends that channel alone;
	// clear for the session's CLOSE, which every channel then reports.
	Channel bool
	Code    wire.Code
	Reason  string
}

func (e *CloseError) Error() string {
	who := "closed locally"
	switch {
	case e.Channel && e.Remote:
		who = "channel reset by peer"
	case e.Channel:
		who = "channel reset locally"
	case e.Remote:
		who = "closed by peer"
	}
	if e.Reason == "" {
		return fmt.Sprintf("pool: %s (%v)", who, e.Code)
	}
	return fmt.Sprintf("pool: %s (%v): %s", who, e.Code, e.Reason)
}

// Errors a session or channel reports.
var (
	// ErrClosed is returned by operations on a session or channel the
	// local side closed.
	ErrClosed = errors.New("pool: use of closed session or channel")
	// ErrPeerVanished reports a transport that ended without a CLOSE.
	ErrPeerVanished = errors.New("pool: peer vanished (connection ended without CLOSE)")
	// ErrAuthFailed reports a packet that failed AEAD or HMAC: over TCP
	// the stream is desynchronised, so the session ends (DESIGN 2.8).
	ErrAuthFailed = errors.New("pool: packet failed authentication; session ended")
	// ErrUnconfirmed reports a client that never proved its key with a
	// first traffic packet (handshake.md §3, event 2).
	ErrUnconfirmed = errors.New("pool: client did not confirm the session in time")
	// ErrWriteStalled reports a peer that stopped reading: a write made no
	// progress for the write timeout.
	ErrWriteStalled = errors.New("pool: peer stopped reading (write timed out)")
	// ErrTimeout is the deadline error of channels; it satisfies
	// os.ErrDeadlineExceeded so net.Error-style checks work.
	ErrTimeout error = os.ErrDeadlineExceeded
	// ErrChannelInUse reports OpenChannel on a channel that is open.
	ErrChannelInUse = errors.New("pool: channel already open")
	// ErrNoChannel reports that all 256 channels are in use.
	ErrNoChannel = errors.New("pool: no free channel (256 in use)")
)
