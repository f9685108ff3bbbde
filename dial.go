package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/pool-go/pool/internal/handshake"
	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// DefaultHandshakeTimeout is how long a client tries before giving up.
const DefaultHandshakeTimeout = 10 * time.Second

// Handshake failures a client reports. Each error message says what went
// wrong in words an operator can act on.
var (
	// ErrRefused: the server closed the connection after our RESPONSE. It
	// never says why (handshake.md §7.3); the usual cause is that our key
	// is not in its authorized peers.
	ErrRefused = errors.New("pool: server refused the handshake after our RESPONSE (is this client's key in the server's authorized peers?)")
	// ErrHandshakeTimeout: no complete handshake within the deadline.
	ErrHandshakeTimeout = errors.New("pool: handshake timed out")
	// ErrPinMismatch: the server's key is not the one pinned.
	ErrPinMismatch = handshake.ErrPinMismatch
	// ErrVersion: the server speaks no version we do.
	ErrVersion = handshake.ErrVersionRefused
	// ErrNoChallenge: the server closed the connection instead of
	// answering our INIT. Servers drop INITs silently (handshake.md §8.3),
	// so this is all a client can know.
	ErrNoChallenge = errors.New("pool: the server closed the connection without a CHALLENGE: it is not the identity we pinned (wrong peer key?), our clock is more than 30 s off, it is rate-limiting us, or it refuses every new session because it failed a runtime integrity check (its \"pool status\" says so)")
)

// Dial connects to the node at address ("host", "host:port", "[v6]:port";
// port 9253 by default) whose identity key must be peer, and completes the
// handshake. The session's channels are ready when it returns.
func Dial(ctx context.Context, address string, peer PublicKey, cfg *Config) (*Session, error) {
	return dial(ctx, address, handshake.ClientConfig{PeerKey: &peer}, cfg)
}

// DialAddress connects trusting only the 64-bit node ID in peer's address
// (trust on first use: about 2^64 work forges it, and org/subnet are not
// bound to the key). The caller should record Session.Peer() and dial by
// key afterwards.
func DialAddress(ctx context.Context, address string, peer Address, cfg *Config) (*Session, error) {
	if err := peer.Valid(); err != nil {
		return nil, err
	}
	id := peer.NodeID()
	return dial(ctx, address, handshake.ClientConfig{PeerNodeID: &id}, cfg)
}

func dial(ctx context.Context, address string, hc handshake.ClientConfig, cfg *Config) (*Session, error) {
	if cfg == nil || cfg.Identity == nil {
		return nil, errors.New("pool: Dial needs Config.Identity")
	}
	// Fail closed (draft §17.3): a compromised node starts no session.
	if err := cfg.health(); err != nil {
		return nil, fmt.Errorf("%w: not dialing %s: %w", ErrCompromised, address, err)
	}
	timeout := orDefault(cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	tc, err := transport.DialTCP(ctx, address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: connecting to %s: %v", ErrHandshakeTimeout, address, err)
		}
		return nil, fmt.Errorf("pool: connecting to %s: %w", address, err)
	}
	hc.Identity, hc.MaxDifficulty, hc.Rand = cfg.Identity, cfg.MaxDifficulty, cfg.Rand
	est, err := clientHandshake(ctx, tc, hc)
	if err != nil {
		tc.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %v with %s: %v", ErrHandshakeTimeout, time.Since(start).Round(time.Millisecond), address, err)
		}
		return nil, fmt.Errorf("pool: handshake with %s: %w", address, err)
	}
	// The session exists once our first packet confirms it; a failure
	// detected while the handshake ran still refuses it. The server then
	// sees a client that never confirmed.
	if err := cfg.health(); err != nil {
		tc.Close()
		est.Keys.Zero()
		return nil, fmt.Errorf("%w: abandoned the handshake with %s: %w", ErrCompromised, address, err)
	}
	_ = tc.SetDeadline(time.Time{})
	s := cfg.newSession(tc, est)
	cfg.logger().Info("session established", "peer", est.Peer.String(), "remote", tc.RemoteAddr().String(),
		"handshake", time.Since(start).Round(time.Microsecond))
	return s, nil
}

// clientHandshake runs INIT → CHALLENGE → RESPONSE → ACCEPT over TCP,
// reading each reply at its exact size.
func clientHandshake(ctx context.Context, tc *transport.TCPConn, hc handshake.ClientConfig) (*handshake.Established, error) {
	stop := context.AfterFunc(ctx, func() { _ = tc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(d)
	}
	cl, err := handshake.NewClient(hc)
	if err != nil {
		return nil, err
	}
	if _, err := tc.Write(cl.Init()); err != nil {
		return nil, fmt.Errorf("sending INIT: %w", err)
	}
	var buf [wire.ChallengeLen]byte
	if err := tc.ReadExact(buf[:wire.HeaderLen]); err != nil {
		return nil, fmt.Errorf("waiting for CHALLENGE: %w", closedMeaning(err, ErrNoChallenge))
	}
	switch {
	case wire.PacketType(buf[:]) == wire.TypeClose && wire.PayloadLen(buf[:]) == 8:
		if err := tc.ReadExact(buf[wire.HeaderLen:wire.VNCloseLen]); err != nil {
			return nil, fmt.Errorf("reading version CLOSE: %w", err)
		}
		return nil, cl.HandleVersionClose(buf[:wire.VNCloseLen])
	case wire.PacketType(buf[:]) != wire.TypeChallenge || wire.PayloadLen(buf[:]) != wire.ChallengePayloadLen:
		return nil, fmt.Errorf("%w: expected a CHALLENGE", handshake.ErrMalformed)
	}
	if err := tc.ReadExact(buf[wire.HeaderLen:]); err != nil {
		return nil, fmt.Errorf("reading CHALLENGE: %w", err)
	}
	resp, err := cl.HandleChallenge(ctx, buf[:])
	if err != nil {
		return nil, err
	}
	if _, err := tc.Write(resp); err != nil {
		return nil, fmt.Errorf("sending RESPONSE: %w", err)
	}
	var acc [wire.AcceptLen]byte
	if err := tc.ReadExact(acc[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil, ErrRefused
		}
		return nil, fmt.Errorf("waiting for ACCEPT: %w", err)
	}
	return cl.HandleAccept(acc[:])
}

func closedMeaning(err error, meaning error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
		return meaning
	}
	return err
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout() && op.Op == "read"
}
