package handshake

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool/internal/addr"
	"github.com/pool-go/pool/internal/wire"
)

// maxISN: ISNs are uniform below 2^62 (DESIGN 2.6), so a sequence number
// can never approach 2^63 within a session.
const maxISN = 1 << 62

// DefaultServerMaxDifficulty is the highest d this server ever issues; a
// RESPONSE claiming more was not minted here (handshake.md §6).
const DefaultServerMaxDifficulty = 24

// ServerConfig configures the responder side.
type ServerConfig struct {
	Identity *addr.Identity
	// Authorize decides whether an authenticated client key may hold a
	// session (allow-list by full key). It must be set; allow-any is an
	// explicit func that returns true.
	Authorize func(addr.PublicKey) bool

	Rotation      time.Duration // cookie secret period; default 10 s, at most 300 s (P02)
	MinDifficulty uint8         // default and floor 16 (P11)
	MaxDifficulty uint8         // default 24
	// LoadThreshold is the rate of RESPONSEs per second reaching the DH
	// stage above which difficulty rises one bit per doubling (P11).
	LoadThreshold int
	// MaxInFlight bounds RESPONSEs doing DH at once; more are dropped as
	// overload and raise the difficulty.
	MaxInFlight    int
	InitRate       float64 // per-prefix INITs per second; < 0 disables the limiter
	InitBurst      float64
	ReplayCacheMax int
	Versions       uint16 // version bitmap offered; default v1 only

	Now  func() time.Time // wall clock; tests inject their own
	Rand io.Reader        // CSPRNG; tests inject their own
}

// ServerStats are cumulative counters, read with Stats.
type ServerStats struct {
	Challenges, VersionCloses, Accepted             uint64
	DroppedInits, DroppedResponses, ReplayedAccepts uint64
}

// Server is the stateless responder. Before a valid RESPONSE it keeps no
// per-INIT state: a CHALLENGE costs one HMAC and is rebuilt from the echo.
// Safe for concurrent use by many connections.
type Server struct {
	cfg    ServerConfig
	static *ecdh.PrivateKey
	sS     [32]byte
	nodeID [8]byte
	dh     dhFunc

	mu    sync.Mutex
	ring  *secretRing
	cache *replayCache
	lim   *limiter
	diff  difficulty
	vnLim *limiter // version-negotiation CLOSEs are rate-limited too (§8.7)
	buf   [cookieLen]byte

	inFlight atomic.Int32
	// acceptTS overrides the ACCEPT's monotonic timestamp (golden vectors).
	acceptTS *uint64
	stats    struct {
		challenges, vn, accepted, droppedInit, droppedResp, replayedAccept atomic.Uint64
	}
}

// NewServer validates cfg and fills its defaults.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Identity == nil {
		return nil, errors.New("handshake: server needs an identity")
	}
	if cfg.Authorize == nil {
		return nil, errors.New("handshake: server needs an authorization policy (allow-list or allow-any)")
	}
	if cfg.Rotation == 0 {
		cfg.Rotation = DefaultRotation
	}
	if cfg.Rotation < 0 || cfg.Rotation > MaxRotation {
		return nil, fmt.Errorf("handshake: secret rotation %v outside (0, %v] (P02)", cfg.Rotation, MaxRotation)
	}
	if cfg.MinDifficulty == 0 {
		cfg.MinDifficulty = MinDifficulty
	}
	if cfg.MinDifficulty < MinDifficulty {
		return nil, fmt.Errorf("handshake: difficulty %d below the P11 floor of %d", cfg.MinDifficulty, MinDifficulty)
	}
	if cfg.MaxDifficulty == 0 {
		cfg.MaxDifficulty = DefaultServerMaxDifficulty
	}
	if cfg.MaxDifficulty < cfg.MinDifficulty || cfg.MaxDifficulty > 64 {
		return nil, fmt.Errorf("handshake: max difficulty %d outside [%d, 64]", cfg.MaxDifficulty, cfg.MinDifficulty)
	}
	if cfg.LoadThreshold == 0 {
		cfg.LoadThreshold = 2000
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.InitRate == 0 {
		cfg.InitRate, cfg.InitBurst = DefaultInitRate, DefaultInitBurst
	}
	if cfg.InitBurst == 0 {
		cfg.InitBurst = cfg.InitRate
	}
	if cfg.ReplayCacheMax == 0 {
		cfg.ReplayCacheMax = DefaultReplayCacheMax
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
	s := &Server{cfg: cfg, static: cfg.Identity.Private, sS: cfg.Identity.Public, dh: x25519}
	s.nodeID = cfg.Identity.Public.NodeID()
	s.ring = newSecretRing(cfg.Rotation, cfg.Rand)
	s.cache = newReplayCache(cfg.ReplayCacheMax)
	if cfg.InitRate > 0 {
		s.lim = newLimiter(cfg.InitRate, cfg.InitBurst)
		s.vnLim = newLimiter(cfg.InitRate, cfg.InitBurst)
	}
	s.diff = difficulty{min: cfg.MinDifficulty, max: cfg.MaxDifficulty, cur: cfg.MinDifficulty, threshold: cfg.LoadThreshold}
	return s, nil
}

// Stats returns the cumulative counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Challenges: s.stats.challenges.Load(), VersionCloses: s.stats.vn.Load(), Accepted: s.stats.accepted.Load(),
		DroppedInits: s.stats.droppedInit.Load(), DroppedResponses: s.stats.droppedResp.Load(),
		ReplayedAccepts: s.stats.replayedAccept.Load(),
	}
}

// Difficulty reports the difficulty the next CHALLENGE will carry.
func (s *Server) Difficulty() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.diff.current(s.cfg.Now())
}

// Identity returns the server's static public key.
func (s *Server) Identity() addr.PublicKey { return s.sS }

// HandleInit answers an INIT-shaped packet. It returns the CHALLENGE (or,
// for an INIT of another version, the version-negotiation CLOSE) appended
// to dst, or an error meaning "drop silently". It allocates no state: the
// answer is computed from the packet, the path and the secret ring alone.
func (s *Server) HandleInit(dst []byte, pkt []byte, p Path) ([]byte, error) {
	now := s.cfg.Now()
	if len(pkt) >= wire.InitLen && wire.PacketType(pkt) == wire.TypeInit && wire.PacketVersion(pkt) != wire.Version1 {
		s.mu.Lock()
		ok := s.vnLim.allow(p.Client.Addr(), now)
		s.mu.Unlock()
		if !ok {
			s.stats.droppedInit.Add(1)
			return dst, ErrRateLimited
		}
		s.stats.vn.Add(1)
		return wire.AppendVersionClose(dst, [8]byte(pkt[4:12]), s.cfg.Versions), nil
	}
	in, err := wire.ParseInit(pkt)
	if err == nil {
		err = s.checkInit(&in, now)
	}
	if err != nil {
		s.stats.droppedInit.Add(1)
		return dst, err
	}
	tIss := uint64(now.UnixNano())
	s.mu.Lock()
	if !s.lim.allow(p.Client.Addr(), now) {
		s.mu.Unlock()
		s.stats.droppedInit.Add(1)
		return dst, ErrRateLimited
	}
	d := s.diff.current(now)
	j, mac, err := s.ring.current(now)
	if err != nil {
		s.mu.Unlock()
		return dst, err
	}
	sid := sidFrom(mac, cookieInput(s.buf[:0], &p, &s.sS, pkt, tIss, d, j, s.cfg.Versions))
	s.mu.Unlock()
	s.stats.challenges.Add(1)
	return wire.AppendChallenge(dst, &wire.Challenge{Ack: in.Seq, SID: sid, TIssue: tIss,
		SS: s.sS, Versions: s.cfg.Versions, D: d, J: j}), nil
}

// checkInit applies handshake.md §8.3's drop rules (other than rate).
func (s *Server) checkInit(in *wire.Init, now time.Time) error {
	if skew := absDiff(int64(in.Timestamp), now.UnixNano()); skew > uint64(CookieLifetime) {
		return ErrClockSkew
	}
	if err := commonVersion(in.Versions, s.cfg.Versions, wire.Version1); err != nil {
		return err
	}
	if in.ServerHint != ([8]byte{}) && in.ServerHint != s.nodeID {
		return fmt.Errorf("%w: node ID %x, ours is %x (the client pinned another key)", ErrWrongServer, in.ServerHint, s.nodeID)
	}
	if !addr.PublicKey(in.EC).Canonical() {
		return fmt.Errorf("%w: e_C", ErrNonCanonicalKey)
	}
	if in.Seq >= maxISN {
		return fmt.Errorf("%w: ISN_C >= 2^62", ErrMalformed)
	}
	return nil
}

// HandleResponse verifies a RESPONSE in the order of handshake.md §8.5 and,
// for an authorized client, creates the session keys and the ACCEPT. Steps
// 1-6 cost two hashes and no DH, so a forged or replayed RESPONSE is cheap
// to refuse. A retransmitted RESPONSE (byte-identical) gets the cached
// ACCEPT again with a nil Established.
func (s *Server) HandleResponse(pkt []byte, p Path) (*Established, []byte, error) {
	est, accept, err := s.handleResponse(pkt, p)
	if err != nil {
		s.stats.droppedResp.Add(1)
	}
	return est, accept, err
}

func (s *Server) handleResponse(pkt []byte, p Path) (*Established, []byte, error) {
	recvAt := time.Now()
	now := s.cfg.Now()
	// 1. Shape: length, version, type, flags, seq, and every fixed field.
	h, r, err := wire.ParseResponse(pkt)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.Flags != wire.FlagEncrypted || h.Ack != 0 || h.Channel != 0 || h.Res1 != 0 || h.Res47 != 0 ||
		h.Length != wire.ResponsePayloadLen || r.ISNC >= maxISN || h.Seq != r.ISNC+1 {
		return nil, nil, fmt.Errorf("%w: RESPONSE header", ErrMalformed)
	}
	if !addr.PublicKey(r.EC).Canonical() {
		return nil, nil, fmt.Errorf("%w: e_C", ErrNonCanonicalKey)
	}
	// 2. Freshness on the server's own clock, and d within what we issue.
	if r.D < s.cfg.MinDifficulty || r.D > s.cfg.MaxDifficulty {
		return nil, nil, ErrDifficulty
	}
	if age := now.UnixNano() - int64(r.TIssue); age < 0 || age > int64(CookieLifetime) {
		return nil, nil, ErrStaleCookie
	}
	initPkt := wire.AppendInit(make([]byte, 0, wire.InitLen), &wire.Init{Seq: r.ISNC, Timestamp: r.TC,
		EC: r.EC, Versions: r.Versions, ServerHint: r.ServerHint})
	respHash := sha256.Sum256(pkt)

	s.mu.Lock()
	mac := s.ring.live(now, r.J)
	if mac == nil {
		s.mu.Unlock()
		return nil, nil, ErrStaleCookie
	}
	// 3. Rebuild the cookie and compare with the SID in constant time (P03).
	sid := sidFrom(mac, cookieInput(s.buf[:0], &p, &s.sS, initPkt, r.TIssue, r.D, r.J, s.cfg.Versions))
	if !hmac.Equal(sid[:], h.SID[:]) {
		s.mu.Unlock()
		return nil, nil, ErrBadCookie
	}
	// 4. The puzzle.
	if !PuzzleOK(&sid, &r.N, r.D) {
		s.mu.Unlock()
		return nil, nil, ErrPuzzle
	}
	// 5. One accepted RESPONSE per cookie. Inserted before any DH, so a
	// captured RESPONSE with a corrupted ciphertext cannot be replayed to
	// make us spend an X25519 each time (handshake.md P1.4).
	s.cache.sync(s.ring)
	if e := s.cache.lookup(r.J, sid); e != nil {
		accept := e.accept
		same := e.respHash == respHash
		s.mu.Unlock()
		if same && accept != nil {
			s.stats.replayedAccept.Add(1)
			return nil, accept, nil
		}
		return nil, nil, ErrReplay
	}
	entry := s.cache.insert(s.ring, r.J, sid, respHash)
	if entry == nil {
		s.diff.raise()
		s.mu.Unlock()
		return nil, nil, ErrReplayFull
	}
	// 6. Overload: too many DH computations at once.
	if int(s.inFlight.Add(1)) > s.cfg.MaxInFlight {
		s.inFlight.Add(-1)
		s.diff.raise()
		s.mu.Unlock()
		return nil, nil, ErrOverload
	}
	s.diff.count(now)
	s.mu.Unlock()
	defer s.inFlight.Add(-1)

	est, accept, err := s.complete(pkt, &h, &r, initPkt, recvAt)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	entry.accept = accept
	s.mu.Unlock()
	s.stats.accepted.Add(1)
	return est, accept, nil
}

// complete runs steps 7-10: the DHs, the client's identity, the allow-list,
// and only then the session keys and the ACCEPT.
func (s *Server) complete(pkt []byte, h *wire.Header, r *wire.Response, initPkt []byte, recvAt time.Time) (*Established, []byte, error) {
	var k schedule
	defer k.zero()
	seq := h.Seq
	chal := wire.AppendChallenge(make([]byte, 0, wire.ChallengeLen), &wire.Challenge{Ack: r.ISNC, SID: h.SID,
		TIssue: r.TIssue, SS: s.sS, Versions: s.cfg.Versions, D: r.D, J: r.J})
	payload := pkt[wire.HeaderLen:]
	k.start(initPkt, chal, pkt[:48], payload[:wire.ResponseEchoLen])

	// 7. es, then the client's static key.
	es, err := s.dh(s.static, r.EC[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: es: %v", ErrAuth, err)
	}
	k.afterES(es)
	clear(es)
	sCb, err := k.s1.open(seq, r.CStatic[:], &k.h1)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: c_static", ErrAuth)
	}
	sC := addr.PublicKey(sCb)
	if !sC.Canonical() {
		return nil, nil, fmt.Errorf("%w: s_C", ErrNonCanonicalKey)
	}
	if sC == s.sS {
		return nil, nil, ErrSelfConnection
	}
	// 8. ss, params_C, then the header HMAC (constant time).
	ss, err := s.dh(s.static, sC[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ss: %v", ErrAuth, err)
	}
	k.afterSS(r.CStatic[:], ss)
	clear(ss)
	paramsC, err := k.s2.open(seq, r.CParams[:], &k.h2)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: c_pC", ErrAuth)
	}
	want := k.s2.hmac(pkt, payload[:wire.ResponseEchoLen], sC[:], paramsC)
	if !hmac.Equal(want[:], h.HMAC[:]) {
		return nil, nil, fmt.Errorf("%w: RESPONSE HMAC", ErrAuth)
	}
	if !allZeroBytes(paramsC) {
		return nil, nil, fmt.Errorf("%w: params_C must be zero in v1", ErrMalformed)
	}
	// 9. Authorization by full key, only after possession is proven, so the
	// allow-list cannot be probed with keys one does not hold (§7.3).
	if !s.cfg.Authorize(sC) {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnauthorized, sC)
	}
	// 10. Now the session: a fresh e_S, ISN_S, ee and se, the ACCEPT.
	eS, err := newEphemeral(s.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	isnS, err := randomISN(s.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	accept := make([]byte, wire.AcceptLen)
	eSPub := eS.PublicKey().Bytes()
	ts := uint64(time.Since(recvAt).Nanoseconds())
	if s.acceptTS != nil {
		ts = *s.acceptTS
	}
	wire.PutHeader(accept, &wire.Header{Version: wire.Version1, Type: wire.TypeAccept, Flags: wire.FlagEncrypted,
		Seq: isnS, Ack: r.ISNC + 1, SID: h.SID, Timestamp: ts,
		Length: wire.AcceptPayloadLen})
	ee, err := s.dh(eS, r.EC[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ee: %v", ErrAuth, err)
	}
	se, err := s.dh(eS, sC[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: se: %v", ErrAuth, err)
	}
	eS = nil // e_S_priv is dropped right after its last DH (handshake.md §8.6)
	k.afterEESE(r.CParams[:], accept[:48], eSPub, ee, se)
	clear(ee)
	clear(se)
	var paramsS [wire.ParamsLen]byte
	cPS := k.s3.seal(nil, isnS, paramsS[:], &k.h3)
	mac := k.s3.hmac(accept, eSPub, paramsS[:])
	wire.PutAcceptPayload(accept[wire.HeaderLen:], &wire.Accept{ES: [32]byte(eSPub), CParams: [24]byte(cPS)})
	copy(accept[48:80], mac[:])
	keys := k.finish(cPS)
	return &Established{
		Initiator: false, SID: h.SID, Version: wire.Version1, Peer: sC, Keys: keys,
		SendSeq: isnS + 1, RecvSeq: r.ISNC + 2, SessionHash: k.h4, Static: s.static,
	}, accept, nil
}

// commonVersion checks that v is the highest version both bitmaps share:
// a higher common version means someone stripped it (VERSION_DOWNGRADE,
// handshake.md §7.1); none means no common version.
func commonVersion(a, b uint16, v uint8) error {
	common := a & b
	if common&(1<<v) == 0 {
		return ErrVersion
	}
	if bits.Len16(common)-1 > int(v) {
		return ErrDowngrade
	}
	return nil
}

func newEphemeral(r io.Reader) (*ecdh.PrivateKey, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("handshake: CSPRNG: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(b[:])
	clear(b[:])
	return k, err
}

// randomISN draws an initial sequence number uniformly below 2^62 (DESIGN 2.6).
func randomISN(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("handshake: CSPRNG: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]) & (maxISN - 1), nil
}

func absDiff(a, b int64) uint64 {
	if a > b {
		return uint64(a) - uint64(b)
	}
	return uint64(b) - uint64(a)
}

func allZeroBytes(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}

// difficulty is the adaptive P11 policy: d = min at rest, one more bit per
// doubling of the RESPONSE rate above threshold, and a slow return (one bit
// per quiet second) so an attacker cannot make it oscillate cheaply.
type difficulty struct {
	min, max, cur uint8
	threshold     int
	windowStart   int64
	inWindow      int
}

func (d *difficulty) roll(now time.Time) {
	t := now.UnixNano()
	elapsed := t - d.windowStart
	if elapsed < int64(time.Second) {
		return
	}
	rate := d.inWindow
	quiet := int64(0)
	if elapsed >= 2*int64(time.Second) {
		// Whole seconds passed with nothing counted: each one is a quiet
		// window and lowers d by one.
		rate = 0
		quiet = elapsed/int64(time.Second) - 1
	}
	target := d.min
	for r := rate; r > d.threshold && target < d.max; r /= 2 {
		target++
	}
	switch {
	case target > d.cur:
		d.cur = target
	case target < d.cur:
		steps := max(quiet, 1)
		if int64(d.cur-target) <= steps {
			d.cur = target
		} else {
			d.cur -= uint8(steps)
		}
	}
	d.windowStart, d.inWindow = t, 0
}

func (d *difficulty) current(now time.Time) uint8 { d.roll(now); return d.cur }
func (d *difficulty) count(now time.Time)         { d.roll(now); d.inWindow++ }
func (d *difficulty) raise() {
	if d.cur < d.max {
		d.cur++
	}
}
