// Package pool is a Go implementation of POOL (Protected Orchestrated
// Overlay Link, draft-davis-pool-03): mutually authenticated, always
// encrypted sessions with 256 channels, over a TCP overlay.
//
// A server listens with its identity and a policy for which clients it
// accepts; a client dials with its identity and the server's public key
// pinned. Each side then opens or accepts channels, which are net.Conn
// byte streams:
//
//	l, _ := pool.Listen(":9253", &pool.Config{Identity: srvID, AllowList: allowed})
//	sess, _ := l.Accept()
//	ch, _ := sess.AcceptChannel(ctx)
//
//	sess, _ := pool.Dial(ctx, "server.example:9253", srvKey, &pool.Config{Identity: cliID})
//	ch, _ := sess.OpenChannel(0)
//	ch.Write([]byte("hello"))
//
// docs/PROTOCOL.md specifies the wire format this package speaks.
package pool

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/session"
	"github.com/pool-go/pool/internal/wire"
)

// Identities, keys and addresses (draft §6, DESIGN 2.10).
type (
	// PublicKey is a node's X25519 identity public key.
	PublicKey = addr.PublicKey
	// Identity is a node's long-lived key pair.
	Identity = addr.Identity
	// Address is a 256-bit POOL address derived from a public key.
	Address = addr.Address
	// AllowList is a set of client keys a server accepts.
	AllowList = addr.AllowList
)

// Sessions and channels.
type (
	// Session is an established, mutually authenticated session.
	Session = session.Session
	// Channel is one of a session's 256 byte streams; it is a net.Conn.
	Channel = session.Channel
	// CloseError says how a session or channel was closed by a CLOSE.
	CloseError = session.CloseError
	// Code is a CLOSE error code (draft §11).
	Code = wire.Code
	// SessionStats are a session's counters.
	SessionStats = session.Stats
	// HandshakeStats are a listener's handshake counters.
	HandshakeStats = handshake.ServerStats
	// Path names a session's transport endpoints.
	Path = handshake.Path
)

// Identity and address helpers.
var (
	GenerateIdentity = addr.Generate
	LoadIdentity     = addr.LoadIdentity
	ParsePublicKey   = addr.ParsePublicKey
	ParseAddress     = addr.ParseAddress
	NewAddress       = addr.New
	LoadAllowList    = addr.LoadAllowList
	NewAllowList     = addr.NewAllowList
)

// CLOSE codes (draft §11 Table 4, and PROTOCOL.md's additions).
const (
	CodeNoError          = wire.CodeNoError
	CodeAuthFail         = wire.CodeAuthFail
	CodeDecryptFail      = wire.CodeDecryptFail
	CodeSeqInvalid       = wire.CodeSeqInvalid
	CodeFragTimeout      = wire.CodeFragTimeout
	CodeMTUExceeded      = wire.CodeMTUExceeded
	CodeConfigReject     = wire.CodeConfigReject
	CodeRekeyFail        = wire.CodeRekeyFail
	CodeJournalFull      = wire.CodeJournalFull
	CodeOverload         = wire.CodeOverload
	CodeVersionMismatch  = wire.CodeVersionMismatch
	CodeVersionDowngrade = wire.CodeVersionDowngrade
	CodeProtocolError    = wire.CodeProtocolError
	// CodeApplication starts the range 0x80-0xFF that applications may
	// give their own meanings; the protocol never sends these.
	CodeApplication = wire.CodeApplication
)

// Session and channel errors.
var (
	ErrClosed       = session.ErrClosed
	ErrPeerVanished = session.ErrPeerVanished
	ErrAuthFailed   = session.ErrAuthFailed
	ErrWriteStalled = session.ErrWriteStalled
	ErrUnconfirmed  = session.ErrUnconfirmed
	ErrChannelInUse = session.ErrChannelInUse
	ErrNoChannel    = session.ErrNoChannel
)

// Reasons a listener abandons a handshake, as passed to
// Config.OnHandshakeError (the client is never told: handshake.md §7.3).
var (
	ErrUnauthorized   = handshake.ErrUnauthorized
	ErrClockSkew      = handshake.ErrClockSkew
	ErrWrongServer    = handshake.ErrWrongServer
	ErrSelfConnection = handshake.ErrSelfConnection
)

// DefaultPort is the TCP overlay port.
const DefaultPort = 9253

// Config configures a node's side of a session. Only Identity is required
// to dial; a listener also needs exactly one of AllowList, AllowAny or
// Authorize.
type Config struct {
	Identity *Identity

	// Server authorization (handshake.md §8.5 step 9): clients are matched
	// by full public key, never by address.
	AllowList *AllowList
	AllowAny  bool
	Authorize func(PublicKey) bool

	// HandshakeTimeout bounds a client's whole handshake (default 10 s).
	HandshakeTimeout time.Duration
	// MaxDifficulty is the hardest puzzle a client will solve (default 24).
	MaxDifficulty uint8

	// Server handshake tuning; zero values take the defaults of
	// docs/PROTOCOL.md.
	MinDifficulty       uint8         // default 16 (P11 floor)
	ServerMaxDifficulty uint8         // default 24
	CookieRotation      time.Duration // default 10 s, at most 300 s (P02)
	InitRate            float64       // INITs/s per /24 or /56; < 0 disables
	InitBurst           float64
	MaxPreAuth          int           // handshakes in progress, default 1024
	MaxPreAuthPerPrefix int           // per /24 or /56, default 64
	InitTimeout         time.Duration // INIT due within this of accept (5 s)
	ResponseTimeout     time.Duration // RESPONSE due within this of CHALLENGE (30 s)

	// Session tuning.
	Window         int           // receive window per channel (default 1 MiB)
	ConfirmTimeout time.Duration // server: client's first packet (10 s)
	WriteTimeout   time.Duration // a peer that stops reading (30 s)
	IdleTimeout    time.Duration // a peer silent this long is dead (30 s)
	RekeyPackets   uint64        // rekey after this many packets on one key (2^28)
	RekeyInterval  time.Duration // rekey when keys are this old (1 h)

	// OnHandshakeError, if set, is told of every handshake a listener
	// abandons, with the reason (the client never is: handshake.md §7.3).
	OnHandshakeError func(remote netip.AddrPort, err error)

	Logger *slog.Logger
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Config) sessionConfig() session.Config {
	return session.Config{Window: c.Window, ConfirmTimeout: c.ConfirmTimeout,
		WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout,
		RekeyPackets: c.RekeyPackets, RekeyInterval: c.RekeyInterval, Logger: c.logger()}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
