package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool/internal/bufpool"
	"github.com/pool-go/pool/internal/wire"
)

// Peer configuration (PROTOCOL.md §7.15, draft §9 and §15.7 P07): a peer
// proposes new session parameters for this side (CONFIG PROPOSE); this side
// applies them tentatively at once and answers ACCEPT or REJECT; the
// proposer sends the confirmation request at 1, 3 and 7 s (backoff 1, 2,
// 4 s); at the rollback deadline the tentative configuration is kept
// whether or not a confirmation request arrived (P07: silence is
// confirmation). Only an explicit ROLLBACK from the proposer before the
// deadline restores the previous configuration, verified against its
// stored hash.

// ConfigParams are the session parameters a peer may set (wire format:
// PROTOCOL.md §7.15).
type ConfigParams = wire.ConfigParams

// Limits of a proposal (PROTOCOL.md §7.15, §13).
const (
	MinConfigHeartbeat     = 100 * time.Millisecond
	MaxConfigHeartbeat     = 10 * time.Second
	MinConfigRekeyInterval = time.Minute
	MinConfigRekeyPackets  = 1 << 16
	MinConfigDeadline      = 8 * time.Second // the three confirmation requests (1, 3, 7 s) fit before it
	MaxConfigDeadline      = time.Hour
	DefaultConfigDeadline  = time.Minute
)

// configRetries are when the proposer sends the confirmation request,
// counted from the PROPOSE: backoff 1, 2 and 4 s (draft §15.7).
var configRetries = [...]time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second}

// ConfigEventKind says what happened to a configuration.
type ConfigEventKind uint8

// Configuration events.
const (
	// ConfigApplied: the receiver applied a proposal tentatively (Local),
	// or the peer accepted ours.
	ConfigApplied ConfigEventKind = iota + 1
	// ConfigConfirmed: the deadline passed after at least one confirmation
	// request arrived (Local); for the proposer: the deadline passed on its
	// clock and the peer keeps the configuration.
	ConfigConfirmed
	// ConfigConfirmedBySilence: the deadline passed with no confirmation
	// request; the configuration is kept (P07).
	ConfigConfirmedBySilence
	// ConfigRolledBack: an explicit ROLLBACK restored the previous
	// configuration (hash verified).
	ConfigRolledBack
	// ConfigRejected: a proposal (or a rollback) was refused; Detail says why.
	ConfigRejected
)

var configEventNames = [...]string{"", "applied", "confirmed", "confirmed-by-silence", "rolled-back", "rejected"}

func (k ConfigEventKind) String() string {
	if int(k) < len(configEventNames) && k != 0 {
		return configEventNames[k]
	}
	return fmt.Sprintf("ConfigEventKind(%d)", k)
}

// ConfigEvent reports a change for the node to journal. Local events are
// about this side's own parameters (it received the proposal); the others
// are about the peer's (this side proposed).
type ConfigEvent struct {
	Kind                 ConfigEventKind
	Local                bool
	Version, PrevVersion uint32
	Hash, PrevHash       [32]byte
	Params, PrevParams   ConfigParams
	Detail               uint8 // ConfigRejected: wire.Reject*
	Confirms             int   // Local ConfigConfirmed: confirmation requests received
}

// ConfigResult is the peer's answer to ProposeConfig or RollbackConfig.
type ConfigResult struct {
	Version, PrevVersion uint32
	Hash, PrevHash       [32]byte
	Params               ConfigParams
	Deadline             time.Duration // ACCEPT: the rollback deadline
}

// ConfigRejectedError is a REJECT from the peer.
type ConfigRejectedError struct {
	Detail         uint8
	CurrentVersion uint32 // the peer's current configuration
	Highest        uint32 // the highest version the peer has seen
}

func (e *ConfigRejectedError) Error() string {
	why := map[uint8]string{wire.RejectLocked: "locked", wire.RejectStale: "stale version",
		wire.RejectBusy: "a tentative configuration is pending", wire.RejectInvalid: "invalid parameters",
		wire.RejectNotTentative: "not tentative"}[e.Detail]
	return fmt.Sprintf("pool: CONFIG_REJECT: %s (peer at version %d)", why, e.CurrentVersion)
}

// Errors of the configuration API.
var (
	ErrConfigBusy      = errors.New("pool: a configuration proposal is already outstanding")
	ErrConfigNoPending = errors.New("pool: no accepted proposal within its deadline to roll back")
)

// configLive are the parameters in force, exactly as they act (durations
// are kept besides the wire values so that a rollback restores the exact
// previous behaviour, including values the 20-byte block rounds).
type configLive struct {
	heartbeat     time.Duration
	rekeyInterval time.Duration
	rekeyPackets  uint64
	mtuMax        int
}

type proposal struct {
	msg      wire.ConfigMsg // the PROPOSE
	answer   chan wire.ConfigMsg
	rbAnswer chan wire.ConfigMsg
	accepted bool
	accept   wire.ConfigMsg
	over     bool // deadline passed, rolled back or rejected
	timers   []*time.Timer
}

// peerConfig is the layer's state, under its own mutex (never held while
// taking Session.mu, except in the short reads of configFlags).
type peerConfig struct {
	mu sync.Mutex
	// lose drops our confirmation requests before they are sealed, as a
	// lossy path would (LoseConfirmRequestsForTest).
	lose atomic.Bool
	// Ours: set by the peer's proposals.
	version   uint32
	params    ConfigParams
	hash      [32]byte
	live      configLive
	highest   uint32
	locked    bool
	tentative bool
	prev      struct {
		version uint32
		params  ConfigParams
		hash    [32]byte
		live    configLive
	}
	deadline *time.Timer
	confirms int
	// The peer's, as we last heard (ACCEPT, REJECT, ROLLBACK DONE).
	peerVersion, peerHighest uint32
	peerHash                 [32]byte
	out                      *proposal
}

func (s *Session) startPeerConfig() {
	c := &s.pcfg
	c.live = configLive{heartbeat: s.cfg.HeartbeatInterval, rekeyInterval: s.cfg.RekeyInterval,
		rekeyPackets: s.cfg.RekeyPackets}
	c.params = ConfigParams{HeartbeatMs: uint32(min(s.cfg.HeartbeatInterval/time.Millisecond, 1<<32-1)),
		RekeyIntervalS: uint32(min(s.cfg.RekeyInterval/time.Second, 1<<32-1)), RekeyPackets: s.cfg.RekeyPackets}
	c.hash = wire.ConfigHash(0, &c.params)
}

func (s *Session) stopPeerConfig() {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline != nil {
		c.deadline.Stop()
	}
	if c.out != nil {
		for _, t := range c.out.timers {
			t.Stop()
		}
	}
}

// heartbeatInterval is the telemetry interval in force.
func (s *Session) heartbeatInterval() time.Duration {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live.heartbeat
}

// mtuCap is the applied mtu_max, or 0.
func (s *Session) mtuCap() int {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live.mtuMax
}

// configVersion is the version telemetry reports.
func (s *Session) configVersion() uint32 {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// configFlags are the flags our telemetry HEARTBEATs carry: ROLLBACK_READY
// while a previous configuration can be restored, CONFIG_LOCKED while
// changes are frozen.
func (s *Session) configFlags() uint16 {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	var f uint16
	if c.tentative {
		f |= wire.FlagRollbackReady
	}
	if c.locked {
		f |= wire.FlagConfigLocked
	}
	return f
}

// configRekeyCheck runs from the idle timer: a peer-set rekey interval or
// packet count below the session's own triggers starts a rekey.
func (s *Session) configRekeyCheck(now time.Duration) {
	c := &s.pcfg
	c.mu.Lock()
	live := c.live
	c.mu.Unlock()
	if live.rekeyInterval >= s.cfg.RekeyInterval && live.rekeyPackets >= s.cfg.RekeyPackets {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && !s.closing && (now-s.rk.keysSince >= live.rekeyInterval || s.sendOnKey.Load() >= live.rekeyPackets) {
		s.rk.force = true
		s.out.wake()
	}
}

// Config returns this side's configuration version and parameters.
func (s *Session) Config() (uint32, ConfigParams) {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version, c.params
}

// ConfigHash returns the SHA-256 of this side's serialized configuration.
func (s *Session) ConfigHash() [32]byte {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hash
}

// LockConfig freezes (true) or unfreezes this side's configuration: while
// locked, the peer's PROPOSE and ROLLBACK are refused with CONFIG_REJECT
// (locked) and telemetry carries CONFIG_LOCKED.
func (s *Session) LockConfig(locked bool) {
	c := &s.pcfg
	c.mu.Lock()
	c.locked = locked
	c.mu.Unlock()
}

func validConfig(p *ConfigParams, deadline time.Duration) bool {
	hb := time.Duration(p.HeartbeatMs) * time.Millisecond
	return hb >= MinConfigHeartbeat && hb <= MaxConfigHeartbeat &&
		time.Duration(p.RekeyIntervalS)*time.Second >= MinConfigRekeyInterval && p.RekeyIntervalS <= uint32(DefaultRekeyInterval/time.Second) &&
		p.RekeyPackets >= MinConfigRekeyPackets && p.RekeyPackets <= DefaultRekeyPackets &&
		(p.MTUMax == 0 || p.MTUMax >= wire.MinMTU) && p.Compression == wire.CompressionOff &&
		deadline >= MinConfigDeadline && deadline <= MaxConfigDeadline
}

func liveOf(p *ConfigParams) configLive {
	return configLive{heartbeat: time.Duration(p.HeartbeatMs) * time.Millisecond,
		rekeyInterval: time.Duration(p.RekeyIntervalS) * time.Second, rekeyPackets: p.RekeyPackets,
		mtuMax: int(p.MTUMax)}
}

// sendConfigMsg queues a CONFIG or ROLLBACK ahead of DATA (100 bytes:
// never fragmented).
func (s *Session) sendConfigMsg(typ wire.Type, m *wire.ConfigMsg) error {
	if m.Kind == wire.ConfigConfirm && s.pcfg.lose.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.closing {
		return s.closingErrLocked()
	}
	buf := bufpool.Get(wire.HeaderLen + wire.ConfigMsgLen + wire.TagLen)
	wire.AppendConfigMsg((*buf)[:wire.HeaderLen], m)
	s.out.notices = append(s.out.notices, outPkt{buf: buf, n: wire.ConfigMsgLen, typ: typ})
	s.out.wake()
	return nil
}

func (s *Session) configEvent(e ConfigEvent) {
	s.log.Debug("config", "event", e.Kind, "local", e.Local, "version", e.Version, "prev", e.PrevVersion)
	if s.cfg.OnConfigChange != nil {
		s.cfg.OnConfigChange(e)
	}
}

// applyLive puts parameters into force: the heartbeat timer is re-armed at
// once with the new interval.
func (s *Session) applyLive(l configLive) {
	s.mu.Lock()
	if s.err == nil && s.hbTimer != nil {
		s.hbTimer.Reset(l.heartbeat)
	}
	s.mu.Unlock()
}

// onConfigMessage handles an authenticated CONFIG or ROLLBACK plaintext.
func (s *Session) onConfigMessage(typ wire.Type, pt []byte) error {
	m, err := wire.ParseConfigMsg(typ, pt)
	if err != nil {
		return s.protocolError(err.Error())
	}
	switch {
	case typ == wire.TypeConfig && m.Kind == wire.ConfigPropose:
		s.onPropose(&m)
	case typ == wire.TypeConfig && m.Kind == wire.ConfigConfirm:
		c := &s.pcfg
		c.mu.Lock()
		if c.tentative && m.Version == c.version && m.Hash == c.hash {
			c.confirms++
		}
		c.mu.Unlock()
	case typ == wire.TypeRollback && m.Kind == wire.RollbackRequest:
		s.onRollbackRequest(&m)
	default: // ACCEPT, REJECT, ROLLBACK DONE: answers to us
		s.onConfigAnswer(typ, &m)
	}
	return nil
}

// rejectLocked builds a REJECT carrying our current configuration.
func (c *peerConfig) rejectLocked(m *wire.ConfigMsg, detail uint8) wire.ConfigMsg {
	return wire.ConfigMsg{Kind: wire.ConfigReject, Code: wire.CodeConfigReject, Detail: detail,
		Version: m.Version, Hash: m.Hash, PrevVersion: c.version, PrevHash: c.hash, Params: c.params,
		Value: c.highest}
}

func (s *Session) onPropose(m *wire.ConfigMsg) {
	c := &s.pcfg
	c.mu.Lock()
	detail := uint8(0)
	switch {
	case c.locked:
		detail = wire.RejectLocked
	case c.tentative:
		detail = wire.RejectBusy
	case m.Version <= c.highest || m.Version <= c.version || m.PrevVersion != c.version ||
		m.PrevHash != ([32]byte{}) && m.PrevHash != c.hash:
		detail = wire.RejectStale
	case !validConfig(&m.Params, time.Duration(m.Value)*time.Millisecond):
		detail = wire.RejectInvalid
	}
	if detail != 0 {
		r := c.rejectLocked(m, detail)
		c.mu.Unlock()
		_ = s.sendConfigMsg(wire.TypeConfig, &r)
		s.configEvent(ConfigEvent{Kind: ConfigRejected, Local: true, Version: m.Version, Hash: m.Hash,
			Params: m.Params, PrevVersion: r.PrevVersion, PrevHash: r.PrevHash, PrevParams: r.Params, Detail: detail})
		return
	}
	c.prev.version, c.prev.params, c.prev.hash, c.prev.live = c.version, c.params, c.hash, c.live
	c.version, c.params, c.hash, c.live = m.Version, m.Params, m.Hash, liveOf(&m.Params)
	c.highest, c.tentative, c.confirms = m.Version, true, 0
	version := m.Version
	c.deadline = time.AfterFunc(time.Duration(m.Value)*time.Millisecond, func() { s.configDeadline(version) })
	live := c.live
	a := wire.ConfigMsg{Kind: wire.ConfigAccept, Version: c.version, PrevVersion: c.prev.version, Value: m.Value,
		Hash: c.hash, PrevHash: c.prev.hash, Params: c.params}
	ev := ConfigEvent{Kind: ConfigApplied, Local: true, Version: c.version, PrevVersion: c.prev.version,
		Hash: c.hash, PrevHash: c.prev.hash, Params: c.params, PrevParams: c.prev.params}
	c.mu.Unlock()
	s.applyLive(live)
	_ = s.sendConfigMsg(wire.TypeConfig, &a)
	s.configEvent(ev)
}

// configDeadline ends the tentative period of version: the configuration
// is kept, confirmed or not (P07).
func (s *Session) configDeadline(version uint32) {
	c := &s.pcfg
	c.mu.Lock()
	if !c.tentative || c.version != version {
		c.mu.Unlock()
		return
	}
	c.tentative = false
	kind := ConfigConfirmed
	if c.confirms == 0 {
		kind = ConfigConfirmedBySilence
	}
	ev := ConfigEvent{Kind: kind, Local: true, Version: c.version, PrevVersion: c.prev.version,
		Hash: c.hash, PrevHash: c.prev.hash, Params: c.params, PrevParams: c.prev.params, Confirms: c.confirms}
	c.mu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	s.configEvent(ev)
}

func (s *Session) onRollbackRequest(m *wire.ConfigMsg) {
	c := &s.pcfg
	c.mu.Lock()
	detail := uint8(0)
	switch {
	case c.locked:
		detail = wire.RejectLocked
	case !c.tentative || m.Version != c.version || m.Hash != c.hash ||
		m.PrevVersion != c.prev.version || m.PrevHash != c.prev.hash:
		detail = wire.RejectNotTentative
	case wire.ConfigHash(c.prev.version, &c.prev.params) != c.prev.hash:
		// The stored previous configuration no longer matches its hash:
		// restoring it would not restore the exact previous state.
		s.log.Error("config: stored previous configuration fails its hash; rollback refused")
		detail = wire.RejectNotTentative
	}
	if detail != 0 {
		r := c.rejectLocked(m, detail)
		c.mu.Unlock()
		_ = s.sendConfigMsg(wire.TypeConfig, &r)
		return
	}
	c.deadline.Stop()
	undone := struct {
		version uint32
		params  ConfigParams
		hash    [32]byte
	}{c.version, c.params, c.hash}
	c.version, c.params, c.hash, c.live = c.prev.version, c.prev.params, c.prev.hash, c.prev.live
	c.tentative = false
	live := c.live
	d := wire.ConfigMsg{Kind: wire.RollbackDone, Version: c.version, Hash: c.hash, Params: c.params,
		PrevVersion: undone.version, PrevHash: undone.hash}
	ev := ConfigEvent{Kind: ConfigRolledBack, Local: true, Version: c.version, Hash: c.hash, Params: c.params,
		PrevVersion: undone.version, PrevHash: undone.hash, PrevParams: undone.params}
	c.mu.Unlock()
	s.applyLive(live)
	_ = s.sendConfigMsg(wire.TypeRollback, &d)
	s.configEvent(ev)
}

// onConfigAnswer matches an ACCEPT, REJECT or ROLLBACK DONE with our
// outstanding proposal; anything else (late, unknown) is ignored.
func (s *Session) onConfigAnswer(typ wire.Type, m *wire.ConfigMsg) {
	c := &s.pcfg
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.out
	switch {
	case typ == wire.TypeRollback:
		if p == nil || !p.accepted || m.PrevVersion != p.msg.Version || m.PrevHash != p.msg.Hash {
			return
		}
		c.peerVersion, c.peerHash = m.Version, m.Hash
		p.over = true
		for _, t := range p.timers {
			t.Stop()
		}
		select {
		case p.rbAnswer <- *m:
		default:
		}
	case p == nil || m.Version != p.msg.Version || m.Hash != p.msg.Hash:
		return
	case m.Kind == wire.ConfigReject:
		c.peerVersion, c.peerHash = m.PrevVersion, m.PrevHash
		c.peerHighest = max(c.peerHighest, m.Value)
		if p.accepted { // our ROLLBACK refused: the configuration stays
			select {
			case p.rbAnswer <- *m:
			default:
			}
			return
		}
		p.over = true
		for _, t := range p.timers {
			t.Stop()
		}
		select {
		case p.answer <- *m:
		default:
		}
	case m.Kind == wire.ConfigAccept && !p.accepted:
		p.accepted, p.accept = true, *m
		c.peerVersion, c.peerHash = m.Version, m.Hash
		c.peerHighest = max(c.peerHighest, m.Version)
		select {
		case p.answer <- *m:
		default:
		}
	}
}

// ProposeConfig proposes params to the peer with a rollback deadline
// (0: DefaultConfigDeadline) and waits for its answer. On ACCEPT the peer
// has applied them tentatively; the confirmation request follows at 1, 3
// and 7 s, and at the deadline the peer keeps them (P07) unless
// RollbackConfig was called before. A REJECT is a *ConfigRejectedError.
func (s *Session) ProposeConfig(ctx context.Context, params ConfigParams, deadline time.Duration) (ConfigResult, error) {
	if deadline == 0 {
		deadline = DefaultConfigDeadline
	}
	if !validConfig(&params, deadline) {
		return ConfigResult{}, fmt.Errorf("pool: configuration out of range (PROTOCOL.md §7.15): %+v, deadline %v", params, deadline)
	}
	c := &s.pcfg
	c.mu.Lock()
	if c.out != nil && !c.out.over {
		c.mu.Unlock()
		return ConfigResult{}, ErrConfigBusy
	}
	v := max(c.peerHighest, c.peerVersion) + 1
	m := wire.ConfigMsg{Kind: wire.ConfigPropose, Version: v, PrevVersion: c.peerVersion, PrevHash: c.peerHash,
		Value: uint32(deadline / time.Millisecond), Hash: wire.ConfigHash(v, &params), Params: params}
	p := &proposal{msg: m, answer: make(chan wire.ConfigMsg, 1), rbAnswer: make(chan wire.ConfigMsg, 1)}
	c.out = p
	confirm := m
	confirm.Kind, confirm.Value, confirm.Params = wire.ConfigConfirm, 0, ConfigParams{}
	for _, at := range configRetries {
		if at < deadline {
			p.timers = append(p.timers, time.AfterFunc(at, func() { _ = s.sendConfigMsg(wire.TypeConfig, &confirm) }))
		}
	}
	p.timers = append(p.timers, time.AfterFunc(deadline, func() { s.proposalDeadline(p) }))
	c.mu.Unlock()
	if err := s.sendConfigMsg(wire.TypeConfig, &m); err != nil {
		return ConfigResult{}, err
	}
	select {
	case a := <-p.answer:
		if a.Kind == wire.ConfigReject {
			s.configEvent(ConfigEvent{Kind: ConfigRejected, Version: m.Version, Hash: m.Hash, Params: m.Params,
				PrevVersion: a.PrevVersion, PrevHash: a.PrevHash, PrevParams: a.Params, Detail: a.Detail})
			return ConfigResult{}, &ConfigRejectedError{Detail: a.Detail, CurrentVersion: a.PrevVersion, Highest: a.Value}
		}
		s.configEvent(ConfigEvent{Kind: ConfigApplied, Version: a.Version, PrevVersion: a.PrevVersion,
			Hash: a.Hash, PrevHash: a.PrevHash, Params: a.Params})
		return ConfigResult{Version: a.Version, PrevVersion: a.PrevVersion, Hash: a.Hash, PrevHash: a.PrevHash,
			Params: a.Params, Deadline: time.Duration(a.Value) * time.Millisecond}, nil
	case <-ctx.Done():
		return ConfigResult{}, ctx.Err()
	case <-s.done:
		return ConfigResult{}, s.Err()
	}
}

// proposalDeadline: our deadline passed; the peer keeps the configuration.
func (s *Session) proposalDeadline(p *proposal) {
	c := &s.pcfg
	c.mu.Lock()
	if p.over {
		c.mu.Unlock()
		return
	}
	p.over = true
	accepted, a := p.accepted, p.accept
	c.mu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	if accepted {
		s.configEvent(ConfigEvent{Kind: ConfigConfirmed, Version: a.Version, PrevVersion: a.PrevVersion,
			Hash: a.Hash, PrevHash: a.PrevHash, Params: a.Params})
	}
}

// RollbackConfig asks the peer to restore the configuration that preceded
// our accepted proposal (an explicit reject, before the deadline) and
// waits for its answer. A ROLLBACK that arrives after the peer's deadline
// is refused (not tentative): the configuration then stays.
func (s *Session) RollbackConfig(ctx context.Context) (ConfigResult, error) {
	c := &s.pcfg
	c.mu.Lock()
	p := c.out
	if p == nil || !p.accepted || p.over {
		c.mu.Unlock()
		return ConfigResult{}, ErrConfigNoPending
	}
	for _, t := range p.timers[:len(p.timers)-1] { // no more confirmation requests
		t.Stop()
	}
	r := wire.ConfigMsg{Kind: wire.RollbackRequest, Version: p.accept.Version, Hash: p.accept.Hash,
		PrevVersion: p.accept.PrevVersion, PrevHash: p.accept.PrevHash}
	c.mu.Unlock()
	if err := s.sendConfigMsg(wire.TypeRollback, &r); err != nil {
		return ConfigResult{}, err
	}
	select {
	case a := <-p.rbAnswer:
		if a.Kind == wire.ConfigReject {
			return ConfigResult{}, &ConfigRejectedError{Detail: a.Detail, CurrentVersion: a.PrevVersion, Highest: a.Value}
		}
		s.configEvent(ConfigEvent{Kind: ConfigRolledBack, Version: a.Version, Hash: a.Hash, Params: a.Params,
			PrevVersion: a.PrevVersion, PrevHash: a.PrevHash, PrevParams: p.accept.Params})
		return ConfigResult{Version: a.Version, Hash: a.Hash, Params: a.Params, PrevVersion: a.PrevVersion,
			PrevHash: a.PrevHash}, nil
	case <-ctx.Done():
		return ConfigResult{}, ctx.Err()
	case <-s.done:
		return ConfigResult{}, s.Err()
	}
}
