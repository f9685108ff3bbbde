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
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/session"
	"github.com/pool-go/pool/internal/transport"
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
	// Telemetry is a session's measurements, the peer's last report and
	// per-channel counters (Session.Telemetry).
	Telemetry = session.Telemetry
	// HandshakeStats are a listener's handshake counters.
	HandshakeStats = handshake.ServerStats
	// Path names a session's transport endpoints.
	Path = handshake.Path

	// ConfigParams are the session parameters a peer may set with
	// Session.ProposeConfig (PROTOCOL.md §7.15).
	ConfigParams = session.ConfigParams
	// ConfigEvent reports a peer configuration change
	// (Config.OnConfigChange).
	ConfigEvent = session.ConfigEvent
	// ConfigEventKind says what happened to a configuration.
	ConfigEventKind = session.ConfigEventKind
	// ConfigResult is the peer's answer to Session.ProposeConfig or
	// Session.RollbackConfig.
	ConfigResult = session.ConfigResult
	// ConfigRejectedError is the peer's CONFIG_REJECT.
	ConfigRejectedError = session.ConfigRejectedError

	// SessionEvent reports a session state change (Config.OnEvent).
	SessionEvent = session.Event
	// SessionEventKind says what changed.
	SessionEventKind = session.EventKind
	// DropReason says why a datagram was dropped (EventDropped).
	DropReason = session.DropReason
)

// Peer configuration events (ConfigEvent.Kind).
const (
	ConfigApplied            = session.ConfigApplied
	ConfigConfirmed          = session.ConfigConfirmed
	ConfigConfirmedBySilence = session.ConfigConfirmedBySilence
	ConfigRolledBack         = session.ConfigRolledBack
	ConfigRejected           = session.ConfigRejected
)

// Session state events (SessionEvent.Kind).
const (
	EventMTU               = session.EventMTU
	EventOverloadStart     = session.EventOverloadStart
	EventOverloadEnd       = session.EventOverloadEnd
	EventIntegrityVerified = session.EventIntegrityVerified
	EventIntegrityTimeout  = session.EventIntegrityTimeout
	EventDropped           = session.EventDropped
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
	ErrIntegrity    = session.ErrIntegrity
	ErrRekeyTimeout = session.ErrRekeyTimeout
)

// Reasons a listener abandons a handshake, as passed to
// Config.OnHandshakeError (the client is never told: handshake.md §7.3).
var (
	ErrUnauthorized   = handshake.ErrUnauthorized
	ErrClockSkew      = handshake.ErrClockSkew
	ErrWrongServer    = handshake.ErrWrongServer
	ErrSelfConnection = handshake.ErrSelfConnection
)

// ErrCompromised is wrapped by the error of a Dial refused because
// Config.Health reported this node compromised (draft §17.3). The node
// refuses new sessions until it is restarted.
var ErrCompromised = errors.New("pool: this node failed a runtime integrity check and refuses new sessions (draft §17.3)")

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
	// HeartbeatInterval is how often telemetry is sent (5 s); a peer
	// silent for HeartbeatMisses intervals (6) is dead.
	HeartbeatInterval time.Duration
	HeartbeatMisses   int
	// IntegrityInterval is how often the peer's crypto path is challenged
	// (60 s); OnIntegrityFailure is told when a proof is wrong (the
	// session is then closed), so a node can fail closed (draft §17.3).
	IntegrityInterval  time.Duration
	OnIntegrityFailure func(error)
	// Rand is the source of every secret this side draws itself (ISNs,
	// cookie secrets, handshake randoms, INTEGRITY nonces); nil means
	// crypto/rand. A node passes its health-tested source (draft §17.3),
	// so a failing generator stops handshakes instead of weakening them.
	Rand io.Reader
	// JournalHead, if set, gives the first 8 bytes of the node's change
	// journal chain head (internal/journal, Journal.HeadTruncated), which
	// every telemetry HEARTBEAT carries (PROTOCOL.md §7.9.1); nil sends 0.
	JournalHead func() uint64

	// OnConfigChange, if set, is told of every peer configuration event
	// of every session this Config makes (PROTOCOL.md §7.15): applied,
	// confirmed, confirmed by silence, rolled back, rejected; Local events
	// are about this side's parameters (the peer proposed), the others
	// about the peer's (this side proposed). OnRekey, if set, is told of
	// every completed rekey (the new epoch, and whether this side
	// initiated it). Both name the session, so that one Config can serve
	// a node's many sessions; the *Session is the one Dial or Accept
	// returns (a listener's session may still be refused before Accept
	// returns it, if its client never confirms). They run on the
	// session's receive path or a timer: they must return quickly and
	// must not call back into the session's blocking methods.
	OnConfigChange func(s *Session, ev ConfigEvent)
	OnRekey        func(s *Session, epoch uint32, initiated bool)
	// OnEvent, if set, is told of every other state change of every
	// session: path MTU, OVERLOAD start and end either way, INTEGRITY
	// outcome changes (draft §11; SessionEvent). Unlike the two above it
	// runs on a goroutine of its own, in order, so it may block briefly.
	OnEvent func(s *Session, ev SessionEvent)
	// OnJournal, if set, receives every JOURNAL message of every session
	// this Config makes (PROTOCOL.md §7.16), reassembled if it came in
	// fragments, on the session's receive path: it must return quickly.
	// Without it they are accepted and ignored (§7.7).
	OnJournal func(s *Session, msg []byte)

	// OnHandshakeError, if set, is told of every handshake a listener
	// abandons, with the reason (the client never is: handshake.md §7.3).
	OnHandshakeError func(remote netip.AddrPort, err error)

	// Health, if set, gates new sessions on this node's runtime integrity
	// (draft §17.3: a node that fails a runtime integrity check "marks
	// itself compromised, alerts through channels outside the potentially
	// compromised code path, and refuses new sessions"). nil means always
	// healthy. A non-nil error means the node is compromised, and then:
	//
	//   - a Listener refuses the handshake: it closes the connection
	//     without a word, as it does over its pre-authentication caps, and
	//     counts it in ListenerStats.RefusedUnhealthy. Closing at once
	//     rather than holding the connection until the client gives up
	//     makes an honest peer fail fast (and fail over) instead of hanging
	//     for its handshake timeout, holds no descriptor, and runs none of
	//     the suspect crypto path for a new peer; saying nothing keeps the
	//     node's state from strangers, as handshake.md §7.3 does for every
	//     refusal (the client sees ErrNoChallenge). Health is consulted
	//     when a connection arrives and again just before ACCEPT is sent,
	//     so a failure detected mid-handshake still refuses the session.
	//     A Listener latches the first error: it then refuses every later
	//     handshake for its lifetime, whatever Health returns afterwards,
	//     because compromise is permanent until the operator restarts
	//     the node (§17.3 gives no way back, and a primitive that answers
	//     right again has not been shown sound).
	//   - Dial refuses to start a handshake, and refuses to complete a
	//     session if Health fails while the handshake runs: its error
	//     wraps ErrCompromised and Health's error. Dial keeps no state
	//     between calls, so it relies on Health itself staying failed;
	//     internal/selftest's Monitor, which latches, is meant to back it.
	//
	// Established sessions are left alone, on both sides: §17.3 requires
	// refusing new sessions, not tearing down live ones; their keys were
	// agreed before the failure was detected, each peer verifies every
	// packet with its own (independently checked) primitives, so output
	// a tampered primitive gets wrong ends the session at the peer
	// anyway; and the sessions belong to the application once Accept or
	// Dial has returned them, so the application (or the operator, by
	// restarting) decides whether to close them.
	//
	// Health is called for every connection, concurrently: it must be
	// cheap and safe for concurrent use.
	Health func() error

	Logger *slog.Logger
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// sessionConfig is the session.Config of one new session. The session's
// callbacks carry no session, so Config's per-session callbacks are bound
// through bind: newSession calls it with the session once session.New
// returns; a callback that fires before (it runs on the session's own
// goroutines, never inside New) waits for it.
func (c *Config) sessionConfig() (cfg session.Config, bind func(*Session)) {
	cfg = session.Config{Window: c.Window, ConfirmTimeout: c.ConfirmTimeout,
		WriteTimeout: c.WriteTimeout, IdleTimeout: c.IdleTimeout,
		RekeyPackets: c.RekeyPackets, RekeyInterval: c.RekeyInterval,
		HeartbeatInterval: c.HeartbeatInterval, HeartbeatMisses: c.HeartbeatMisses,
		IntegrityInterval: c.IntegrityInterval, OnIntegrityFailure: c.OnIntegrityFailure, Rand: c.Rand,
		JournalHead: c.JournalHead, Logger: c.logger()}
	if c.OnConfigChange == nil && c.OnRekey == nil && c.OnJournal == nil && c.OnEvent == nil {
		return cfg, func(*Session) {}
	}
	var s *Session
	ready := make(chan struct{})
	if f := c.OnConfigChange; f != nil {
		cfg.OnConfigChange = func(ev session.ConfigEvent) { <-ready; f(s, ev) }
	}
	if f := c.OnRekey; f != nil {
		cfg.OnRekey = func(epoch uint32, initiated bool) { <-ready; f(s, epoch, initiated) }
	}
	if f := c.OnEvent; f != nil {
		cfg.OnEvent = func(ev session.Event) { <-ready; f(s, ev) }
	}
	if f := c.OnJournal; f != nil {
		cfg.OnMessage = func(typ wire.Type, msg []byte) {
			if typ == wire.TypeJournal {
				<-ready
				f(s, msg)
			}
		}
	}
	return cfg, func(sess *Session) { s = sess; close(ready) }
}

// newSession starts a session with c's configuration.
func (c *Config) newSession(conn transport.Conn, est *handshake.Established) *Session {
	cfg, bind := c.sessionConfig()
	s := session.New(conn, est, cfg)
	bind(s)
	return s
}

// health is Config.Health, nil when unset.
func (c *Config) health() error {
	if c.Health == nil {
		return nil
	}
	return c.Health()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
