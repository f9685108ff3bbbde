package handshake

import "errors"

// Server-side reasons a handshake packet is dropped. None is ever told to
// the peer (handshake.md §7.3); they exist for counters and logs.
var (
	ErrMalformed      = errors.New("handshake: malformed packet")
	ErrClockSkew      = errors.New("handshake: INIT timestamp more than 30 s from server time (P10)")
	ErrVersion        = errors.New("handshake: no common protocol version")
	ErrWrongServer    = errors.New("handshake: INIT names another server identity")
	ErrRateLimited    = errors.New("handshake: source prefix over its INIT rate")
	ErrStaleCookie    = errors.New("handshake: cookie expired or its secret is gone")
	ErrBadCookie      = errors.New("handshake: cookie MAC mismatch")
	ErrDifficulty     = errors.New("handshake: difficulty outside the accepted range")
	ErrPuzzle         = errors.New("handshake: puzzle solution below difficulty")
	ErrReplay         = errors.New("handshake: RESPONSE replayed")
	ErrReplayFull     = errors.New("handshake: replay cache full (failing closed)")
	ErrOverload       = errors.New("handshake: too many handshakes in progress")
	ErrAuth           = errors.New("handshake: authentication failed")
	ErrUnauthorized   = errors.New("handshake: client identity not authorized")
	ErrSelfConnection = errors.New("handshake: client uses the server's own identity")
	ErrRandom         = errors.New("handshake: the random source failed")
)

// Client-side failures. The pin failure and the downgrade are definite; the
// others may be an attacker's forgery and are reported as such.
var (
	ErrPinMismatch    = errors.New("handshake: server key does not match the pinned key (wrong --peer, or a man in the middle)")
	ErrTooHard        = errors.New("handshake: server demands a puzzle harder than this client's cap")
	ErrDowngrade      = errors.New("handshake: version downgrade detected (VERSION_DOWNGRADE)")
	ErrServerAuth     = errors.New("handshake: server failed to authenticate its ACCEPT")
	ErrState          = errors.New("handshake: packet not expected in this state")
	ErrVersionRefused = errors.New("handshake: server does not speak this protocol version")
)
