package handshake

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/wire"
)

// ClientConfig configures the initiator side.
type ClientConfig struct {
	Identity *addr.Identity
	// PeerKey pins the server's full static key: the default, strong form.
	PeerKey *addr.PublicKey
	// PeerNodeID pins only the 64-bit node ID of an address: weak,
	// trust-on-first-use (about 2^64 work to forge; handshake.md §3). Used
	// only when PeerKey is nil; the caller must then remember the key the
	// handshake returns.
	PeerNodeID    *[8]byte
	MaxDifficulty uint8  // default 24; a CHALLENGE asking more aborts
	Versions      uint16 // default v1 only
	Workers       int    // puzzle threads; default GOMAXPROCS

	Now  func() time.Time
	Rand io.Reader
}

type clientState uint8

const (
	awaitChallenge clientState = iota
	awaitAccept
	clientDone
)

// Client runs one handshake attempt. It is not safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	state clientState
	eC    *ecdh.PrivateKey
	isnC  uint64
	t0    time.Time
	init  []byte
	chal  wire.Challenge
	resp  []byte
	sS    addr.PublicKey
	k     schedule
	dh    dhFunc
	// respTimestamp overrides the RESPONSE's monotonic timestamp (vectors).
	respTimestamp *uint64
}

// NewClient prepares an attempt: a fresh e_C and ISN_C, and the INIT.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Identity == nil {
		return nil, errors.New("handshake: client needs an identity")
	}
	if cfg.PeerKey == nil && cfg.PeerNodeID == nil {
		return nil, errors.New("handshake: client needs the server's key or address to pin")
	}
	if cfg.MaxDifficulty == 0 {
		cfg.MaxDifficulty = DefaultClientMaxDifficulty
	}
	if cfg.MaxDifficulty < MinDifficulty || cfg.MaxDifficulty > MaxClientDifficulty {
		return nil, fmt.Errorf("handshake: client puzzle cap %d outside [%d, %d]", cfg.MaxDifficulty, MinDifficulty, MaxClientDifficulty)
	}
	if cfg.Versions == 0 {
		cfg.Versions = wire.VersionsV1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = sharedRand
	}
	eC, err := newEphemeral(cfg.Rand)
	if err != nil {
		return nil, err
	}
	isn, err := randomISN(cfg.Rand)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, eC, isn, cfg.Now()), nil
}

func newClient(cfg ClientConfig, eC *ecdh.PrivateKey, isn uint64, now time.Time) *Client {
	c := &Client{cfg: cfg, eC: eC, isnC: isn, t0: now, dh: x25519}
	var hint [8]byte
	if cfg.PeerKey != nil {
		hint = cfg.PeerKey.NodeID()
	} else {
		hint = *cfg.PeerNodeID
	}
	c.init = wire.AppendInit(make([]byte, 0, wire.InitLen), &wire.Init{Seq: isn,
		Timestamp: uint64(now.UnixNano()), EC: [32]byte(eC.PublicKey().Bytes()),
		Versions: cfg.Versions, ServerHint: hint})
	return c
}

// Init returns the INIT packet. Retransmissions must send these same bytes.
func (c *Client) Init() []byte { return c.init }

// ISN returns this attempt's initial sequence number.
func (c *Client) ISN() uint64 { return c.isnC }

// HandleChallenge checks a CHALLENGE (handshake.md §8.4, in order: shape,
// ack echo, difficulty cap, canonical key, the pin, versions), solves the
// puzzle and returns the RESPONSE. The pin is checked before any work, so a
// forged CHALLENGE costs the client nothing but the parse.
func (c *Client) HandleChallenge(ctx context.Context, pkt []byte) ([]byte, error) {
	if c.state != awaitChallenge {
		return nil, ErrState
	}
	ch, err := wire.ParseChallenge(pkt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ch.Ack != c.isnC {
		return nil, fmt.Errorf("%w: CHALLENGE does not echo our INIT", ErrMalformed)
	}
	if ch.D < MinDifficulty {
		return nil, fmt.Errorf("%w: d = %d below the P11 floor", ErrDifficulty, ch.D)
	}
	if ch.D > c.cfg.MaxDifficulty {
		return nil, fmt.Errorf("%w: d = %d, cap %d", ErrTooHard, ch.D, c.cfg.MaxDifficulty)
	}
	sS := addr.PublicKey(ch.SS)
	if !sS.Canonical() {
		return nil, fmt.Errorf("%w: s_S", ErrNonCanonicalKey)
	}
	if c.cfg.PeerKey != nil {
		if !hmac.Equal(sS[:], c.cfg.PeerKey[:]) {
			return nil, ErrPinMismatch
		}
	} else if sS.NodeID() != *c.cfg.PeerNodeID {
		return nil, ErrPinMismatch
	}
	if sS == c.cfg.Identity.Public {
		return nil, ErrSelfConnection
	}
	if err := commonVersion(c.cfg.Versions, ch.Versions, wire.Version1); err != nil {
		if errors.Is(err, ErrVersion) {
			return nil, ErrVersionRefused
		}
		return nil, err
	}
	n, err := Solve(ctx, ch.SID, ch.D, c.cfg.Workers)
	if err != nil {
		return nil, fmt.Errorf("handshake: puzzle abandoned: %w", err)
	}
	resp, err := c.buildResponse(pkt, &ch, n)
	if err != nil {
		return nil, err
	}
	c.chal, c.sS, c.state = ch, sS, awaitAccept
	return resp, nil
}

func (c *Client) buildResponse(chalPkt []byte, ch *wire.Challenge, n [16]byte) ([]byte, error) {
	seq := c.isnC + 1
	resp := make([]byte, wire.ResponseLen)
	ts := uint64(c.cfg.Now().Sub(c.t0).Nanoseconds())
	if c.respTimestamp != nil {
		ts = *c.respTimestamp
	}
	wire.PutHeader(resp, &wire.Header{Version: wire.Version1, Type: wire.TypeResponse, Flags: wire.FlagEncrypted,
		Seq: seq, SID: ch.SID, Timestamp: ts, Length: wire.ResponsePayloadLen})
	in, _ := wire.ParseInit(c.init)
	r := wire.Response{EC: in.EC, TC: in.Timestamp, ISNC: c.isnC, Versions: in.Versions,
		ServerHint: in.ServerHint, TIssue: ch.TIssue, D: ch.D, J: ch.J, N: n}
	payload := resp[wire.HeaderLen:]
	wire.PutResponsePayload(payload, &r)
	c.k.start(c.init, chalPkt, resp[:48], payload[:wire.ResponseEchoLen])

	es, err := c.dh(c.eC, ch.SS[:])
	if err != nil {
		return nil, fmt.Errorf("%w: es: %v", ErrAuth, err)
	}
	c.k.afterES(es)
	clear(es)
	sC := c.cfg.Identity.Public
	cStatic := c.k.s1.seal(payload[84:84], seq, sC[:], &c.k.h1)
	ss, err := c.dh(c.cfg.Identity.Private, ch.SS[:])
	if err != nil {
		return nil, fmt.Errorf("%w: ss: %v", ErrAuth, err)
	}
	c.k.afterSS(cStatic, ss)
	clear(ss)
	var paramsC [wire.ParamsLen]byte
	c.k.s2.seal(payload[132:132], seq, paramsC[:], &c.k.h2)
	mac := c.k.s2.hmac(resp, payload[:wire.ResponseEchoLen], sC[:], paramsC[:])
	copy(resp[48:80], mac[:])
	c.resp = resp
	return resp, nil
}

// Response returns the RESPONSE for byte-identical retransmission.
func (c *Client) Response() []byte { return c.resp }

// HandleAccept verifies the ACCEPT (handshake.md §8.6). On success the
// server is authenticated and confirmed (event 1), and the returned keys are
// the session's; the caller must send its first c2s packet at once so the
// server can confirm the client (event 2).
func (c *Client) HandleAccept(pkt []byte) (*Established, error) {
	if c.state != awaitAccept {
		return nil, ErrState
	}
	h, a, err := wire.ParseAccept(pkt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.Flags != wire.FlagEncrypted || h.Channel != 0 || h.Res1 != 0 || h.Res47 != 0 ||
		h.Length != wire.AcceptPayloadLen || h.SID != c.chal.SID || h.Ack != c.isnC+1 || h.Seq >= maxISN {
		return nil, fmt.Errorf("%w: ACCEPT header", ErrMalformed)
	}
	if !addr.PublicKey(a.ES).Canonical() {
		return nil, fmt.Errorf("%w: e_S", ErrNonCanonicalKey)
	}
	ee, err := c.dh(c.eC, a.ES[:])
	if err != nil {
		return nil, fmt.Errorf("%w: ee: %v", ErrServerAuth, err)
	}
	se, err := c.dh(c.cfg.Identity.Private, a.ES[:])
	if err != nil {
		return nil, fmt.Errorf("%w: se: %v", ErrServerAuth, err)
	}
	k := c.k // a failed ACCEPT (maybe forged) must not spoil the real one
	defer k.zero()
	k.afterEESE(c.resp[wire.HeaderLen+132:], pkt[:48], a.ES[:], ee, se)
	clear(ee)
	clear(se)
	paramsS, err := k.s3.open(h.Seq, a.CParams[:], &k.h3)
	if err != nil {
		return nil, fmt.Errorf("%w: c_pS", ErrServerAuth)
	}
	mac := k.s3.hmac(pkt, a.ES[:], paramsS)
	if !hmac.Equal(mac[:], h.HMAC[:]) {
		return nil, fmt.Errorf("%w: ACCEPT HMAC", ErrServerAuth)
	}
	if !allZeroBytes(paramsS) {
		return nil, fmt.Errorf("%w: params_S must be zero in v1", ErrMalformed)
	}
	keys := k.finish(a.CParams[:])
	c.k.zero()
	c.eC = nil // e_C_priv dropped after its last DH
	c.state = clientDone
	return &Established{
		Initiator: true, SID: h.SID, Version: wire.Version1, Peer: c.sS, Keys: keys,
		SendSeq: c.isnC + 2, RecvSeq: h.Seq + 1, SessionHash: k.h4, Static: c.cfg.Identity.Private,
	}, nil
}

// HandleVersionClose interprets a cleartext version-negotiation CLOSE. It
// is unauthenticated, so it is only a hint: the attempt fails with a
// message naming the server's versions, and nothing is downgraded
// (handshake.md §7.3).
func (c *Client) HandleVersionClose(pkt []byte) error {
	ack, versions, err := wire.ParseVersionClose(pkt)
	if err != nil || ack != c.isnC {
		return fmt.Errorf("%w: unexpected cleartext CLOSE", ErrMalformed)
	}
	return fmt.Errorf("%w (server speaks version bitmap %#04x, we offer %#04x)", ErrVersionRefused, versions, c.cfg.Versions)
}
