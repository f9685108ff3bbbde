// Package node is the POOL daemon: one listener, sessions to configured
// peers kept up with backoff, and a control socket.
//
// The node checks its own integrity (draft §17.3, internal/selftest): it
// refuses to start unless the known-answer tests of its cryptographic
// primitives and the health tests of its random source pass, and it
// repeats them every selftest_interval. A node that fails one later is
// compromised for good: it alerts (an ERROR log line, and a line written
// straight to stderr), refuses every new session, inbound and outbound,
// stops redialing its peers, and says so in "status" and "peers" until it
// is restarted. Established sessions are left alone (see
// pool.Config.Health for why). A peer that answers one of the sessions'
// INTEGRITY challenges with a wrong proof (pool.Config.OnIntegrityFailure)
// makes the node compromised the same way: §17.3 asks a node whose
// integrity check fails to fail closed, and this node cannot tell whether
// its own crypto path or the peer's is at fault.
//
// A Node is started from a validated Config (LoadConfig) and runs until
// Shutdown. Sessions the listener accepts from authorized peers are kept
// until they end; sessions to the configured peers are dialed again, with
// exponential backoff, whenever they end. Reload re-reads the configuration
// file and applies what can change without dropping sessions. The node
// carries no services yet: channels peers open are reset.
//
// docs/OPERATIONS.md is the operator's manual, including the control
// protocol that control.go serves.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/metrics"
	"github.com/pool-go/pool/internal/selftest"
)

const (
	// DefaultResetAfter: a session that lived this long resets its peer's
	// backoff, so the next reconnect is immediate.
	DefaultResetAfter = 30 * time.Second
	// closeWait bounds how long a closing session waits for the peer's
	// answering CLOSE.
	closeWait = 2 * time.Second
	// noService is the reason channels are reset with until the node
	// carries services.
	noService = "no service on this node yet"
)

// Options are a node's settings that do not come from its file.
type Options struct {
	// Logger receives the node's log; nil discards it.
	Logger *slog.Logger
	// Level, if set, is set to the configuration's log_level at start and
	// on every reload; it should be the level of Logger's handler.
	Level *slog.LevelVar
	// Version is reported by "status"; the module version by default.
	Version string
	// Alert receives one line, written directly rather than through
	// Logger, when the node finds itself compromised: draft §17.3's alert
	// "through channels outside the potentially compromised code path".
	// os.Stderr when nil.
	Alert io.Writer
}

// authz is the listener's authorization policy; reload swaps it.
type authz struct {
	any  bool
	list *pool.AllowList
}

func (a *authz) allowed(k pool.PublicKey) bool { return a.any || a.list.Allowed(k) }

// Node is a running POOL node.
type Node struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	version string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	authz      atomic.Pointer[authz]
	refusedLog *logRate                      // rate of "refused a peer" warnings
	witness    *witness                      // replicas of the peers' journals (witness.go)
	ln         atomic.Pointer[pool.Listener] // nil when not listening (listen.go)
	retired    pool.ListenerStats            // counters of listeners a reload replaced; under mu
	ctl        *controlServer
	journal    *nodeJournal    // the change journal; nil when journal = ""
	cfgStore   *configStore    // the configuration's versions (configstore.go)
	metrics    *metrics.Server // /metrics and /healthz; nil unless metrics_listen is set
	bridges    *bridgeSet      // the bridge sections; nil when there are none
	hsFailed   failCounts      // failed inbound handshakes by reason, for metrics

	// Runtime integrity (draft §17.3): mon repeats the self-tests;
	// compromise is set, once and for good, by the first failure (of a
	// self-test, or of a peer's INTEGRITY proof), and compromisedCh is
	// closed then. proofFailures counts the sessions whose peer sent a
	// wrong INTEGRITY proof.
	mon           *selftest.Monitor
	rand          *selftest.Source // the health-tested random source
	compromise    atomic.Pointer[compromise]
	compromisedCh chan struct{}
	proofFailures atomic.Uint64

	reloadMu sync.Mutex // one reload at a time

	mu       sync.Mutex
	cfg      *Config
	sessions map[*pool.Session]*sessionEntry
	peers    map[pool.PublicKey]*dialer
	closing  bool

	shutdownOnce sync.Once
	shutdownErr  error
	stopped      chan struct{}
}

// sessionEntry is a live session the node lists.
type sessionEntry struct {
	s           *pool.Session
	inbound     bool
	established time.Time
	// proofFailed: the peer's wrong INTEGRITY proof has been counted and
	// acted on (guarded by Node.mu).
	proofFailed bool
}

// Causes of the compromised state (Integrity.Cause).
const (
	CauseSelftest = "selftest"        // a runtime integrity self-test failed
	CauseProof    = "integrity_proof" // a peer's INTEGRITY proof was wrong
)

// compromise is the runtime-integrity failure that made the node refuse
// new sessions (draft §17.3).
type compromise struct {
	cause string // CauseSelftest or CauseProof
	err   *integrityError
	at    time.Time
}

// what says in a few words what made the node compromised, for the log
// and the dialers' last error.
func (c *compromise) what() string {
	if c.cause == CauseProof {
		return "a peer answered an INTEGRITY challenge with a wrong proof"
	}
	return "a runtime integrity self-test failed"
}

// integrityError is a failed self-test (see integrityText) or a peer's
// wrong INTEGRITY proof, on one line; it unwraps to the internal/selftest
// error or to pool.ErrIntegrity.
type integrityError struct {
	text string
	err  error
}

func (e *integrityError) Error() string { return e.text }
func (e *integrityError) Unwrap() error { return e.err }

// dialer keeps a session to one configured peer. Its fields but key,
// cancel and done are guarded by Node.mu.
type dialer struct {
	key    pool.PublicKey
	cancel context.CancelFunc
	done   chan struct{}

	peer             Peer
	state            string
	lastErr          string
	retryAt          time.Time
	since            time.Time
	sess             *pool.Session
	attempts         uint64
	disconnects      uint64
	lastDisconnect   string
	lastDisconnectAt time.Time
}

// Start runs the self-tests, opens the control socket, the change journal
// (refusing a corrupt one, naming its first bad entry) and the listener,
// starts keeping the configured peers connected, and returns the running
// node. It fails without side effects when a self-test fails (naming the
// primitive or test), when the control socket is taken by a running node,
// or when the listen address is in use.
func Start(cfg *Config, opts Options) (*Node, error) {
	if cfg == nil || cfg.Identity == nil {
		return nil, errors.New("node: Start needs a configuration with an identity (see LoadConfig)")
	}
	// Runtime integrity first (draft §17.3): a node whose primitives or
	// random source fail their tests does nothing on the network.
	if err := selftest.Run(); err != nil {
		return nil, selftestStartError(err)
	}
	src := selftest.NewSource(nil) // runs the start-up health tests
	if err := src.Err(); err != nil {
		return nil, selftestStartError(err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Level != nil {
		opts.Level.Set(cfg.LogLevel)
	}
	version := opts.Version
	if version == "" {
		version = moduleVersion()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{opts: opts, refusedLog: newLogRate(time.Minute, 1024), witness: newWitness(), log: log, started: time.Now(), version: version, ctx: ctx, cancel: cancel,
		cfg: cfg, sessions: map[*pool.Session]*sessionEntry{}, peers: map[pool.PublicKey]*dialer{},
		stopped: make(chan struct{}), compromisedCh: make(chan struct{})}
	n.authz.Store(&authz{any: cfg.AllowAny, list: cfg.AuthorizedPeers})
	// The control socket first, so that a second node with the same
	// configuration is told another node runs; then the change journal
	// (draft §10): a corrupt one is refused before the node does
	// anything, naming the first bad entry.
	ctl, err := listenControl(cfg.Control, n.handleControl, log)
	if err != nil {
		cancel()
		return nil, err
	}
	n.ctl = ctl
	nj, err := openJournal(cfg, log)
	if err != nil {
		ctl.Close()
		cancel()
		return nil, err
	}
	n.journal = nj
	if nj != nil {
		n.witness.load(replicaDir(nj.j.Path()), func(err error) {
			log.Warn("journal: a peer replica cannot be read; the peer's next run replaces it", "err", err)
		})
	}
	n.record(journal.TypeStart, map[string]string{"identity": cfg.Identity.Public.String(), "version": version,
		"config": cfg.File, "listen": cfg.Listen, "pid": strconv.Itoa(os.Getpid())})
	// The configuration's history (docs/OPERATIONS.md, CHANGING THE
	// CONFIGURATION): a commit-confirmed change whose deadline passed
	// while the node was down is rolled back now, and the node runs the
	// restored file.
	n.openConfigStore(cfg)
	if c := n.startConfigEvents(cfg); c != cfg {
		cfg = c
		n.cfg = cfg
		n.authz.Store(&authz{any: cfg.AllowAny, list: cfg.AuthorizedPeers})
		if opts.Level != nil {
			opts.Level.Set(cfg.LogLevel)
		}
	}

	// The monitor's first round runs now; it repeats the tests above, so
	// it fails only if the fault appeared in between (then the alert
	// goes out too: the node is compromised).
	n.rand = src // every secret the node draws passes the health tests
	n.mon = selftest.NewMonitor(cfg.SelftestInterval, src, n.integrityFailed)
	if err := n.mon.Start(ctx); err != nil {
		ctl.Close()
		cancel()
		err = selftestStartError(err)
		n.record(journal.TypeStop, map[string]string{"reason": "start failed: " + err.Error()})
		n.closeConfigStore()
		n.journal.close()
		return nil, err
	}
	abort := func(err error) error {
		cancel()
		<-n.mon.Done()
		n.closeConfigStore()
		n.record(journal.TypeStop, map[string]string{"reason": "start failed: " + err.Error()})
		n.journal.close()
		return err
	}
	n.wg.Add(1)
	go n.runWitness(cfg.HeartbeatInterval)
	if cfg.Listen != "" {
		ln, err := n.openListener(cfg)
		if err != nil {
			ctl.Close()
			return nil, abort(err)
		}
		n.mu.Lock()
		n.serveListenerLocked(ln)
		n.mu.Unlock()
	}
	if err := n.startMetrics(cfg); err != nil {
		if ln := n.ln.Load(); ln != nil {
			_ = ln.Close()
		}
		ctl.Close()
		err = abort(err)
		n.wg.Wait()
		return nil, err
	}
	if len(cfg.Bridges.TCP2Pool) > 0 || cfg.Bridges.Pool2TCP != nil || cfg.Shim != nil {
		if err := n.startBridges(cfg); err != nil {
			if ln := n.ln.Load(); ln != nil {
				_ = ln.Close()
			}
			n.stopMetrics()
			ctl.Close()
			err = abort(err)
			n.wg.Wait()
			return nil, err
		}
	}
	n.mu.Lock()
	for _, p := range cfg.Peers {
		n.startDialerLocked(p)
	}
	n.mu.Unlock()
	ctl.start()

	listen := "off"
	if a := n.ListenAddr(); a != nil {
		listen = a.String()
	}
	log.Info("node started", "identity", cfg.Identity.Public.String(),
		"address", pool.NewAddress(cfg.Identity.Public, 0, 0).String(), "listen", listen,
		"control", cfg.Control, "peers", len(cfg.Peers), "config", cfg.File,
		"selftest_interval", cfg.SelftestInterval, "heartbeat_interval", cfg.HeartbeatInterval)
	if n.ln.Load() != nil && cfg.AllowAny {
		log.Warn("allow_any = true: any key may connect to this node")
	}
	if n.journal == nil {
		log.Warn(`journal = "": the change journal is disabled; connects, disconnects, handshake failures, reloads and integrity failures are not recorded (docs/OPERATIONS.md, THE CHANGE JOURNAL)`)
	} else {
		n.journal.startPublisher(cfg.JournalPublish, pool.NewAddress(cfg.Identity.Public, 0, 0).String())
	}
	return n, nil
}

// ErrSelftestFailed is wrapped by Start's error when a runtime integrity
// self-test failed, so that "pool node" can exit with a status its
// supervisor does not restart on.
var ErrSelftestFailed = errors.New("a runtime integrity self-test failed")

// selftestStartError is Start's refusal after a failed self-test.
func selftestStartError(err error) error {
	return fmt.Errorf("refusing to start: %w, so this node cannot be trusted to protect sessions (draft §17.3): %s; see docs/OPERATIONS.md, SELF-TESTS AND THE COMPROMISED STATE",
		ErrSelftestFailed, integrityText(err))
}

// integrityText says on one line what a failed self-test found: each
// failing primitive or randomness test, e.g. "known-answer test of X25519
// failed: RFC 7748 §5.2 scalar multiplication differs from the expected
// value".
func integrityText(err error) string {
	var parts []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var ke *selftest.KATError
		if errors.As(e, &ke) {
			parts = append(parts, fmt.Sprintf("known-answer test of %s failed: %s", ke.Primitive, ke.Detail))
			return
		}
		parts = append(parts, strings.TrimPrefix(e.Error(), "selftest: "))
	}
	walk(err)
	return strings.Join(parts, "; ")
}

// integrityFailed is the monitor's onFail: the first failure of a
// periodic self-test (or of the random source's health tests).
func (n *Node) integrityFailed(err error) { n.markCompromised(CauseSelftest, integrityText(err), err) }

// markCompromised records the node as compromised, for good, and alerts;
// later calls return the first record. From here the node refuses new
// sessions: health fails, so the listener refuses handshakes and the
// dialers stop (draft §17.3).
func (n *Node) markCompromised(cause, text string, err error) *compromise {
	c := &compromise{cause: cause, err: &integrityError{text: text, err: err}, at: time.Now()}
	if !n.compromise.CompareAndSwap(nil, c) {
		return n.compromise.Load()
	}
	close(n.compromisedCh)
	// The state is set, so new sessions are refused already; now alert,
	// first through the channel that depends least on the rest of the
	// process: one preformatted write(2) to stderr, bypassing the
	// logger's handler.
	w := n.opts.Alert
	if w == nil {
		w = os.Stderr
	}
	_, _ = io.WriteString(w, fmt.Sprintf("POOL NODE COMPROMISED at %s: %s. This node refuses every new session until it is restarted; "+
		"investigate before restarting (docs/OPERATIONS.md, SELF-TESTS AND THE COMPROMISED STATE).\n",
		c.at.Format(time.RFC3339), c.err.text))
	n.log.Error("node compromised: "+c.what()+"; refusing every new session until restarted (draft §17.3)",
		"reason", c.err.text, "since", c.at.Format(time.RFC3339))
	n.record(journal.TypeIntegrity, map[string]string{"cause": c.cause, "reason": c.err.text})
	n.record(journal.TypeAlert, map[string]string{"alert": "compromised", "cause": c.cause,
		"reason": "node compromised: " + c.what() + "; refusing every new session until restarted"})
	return c
}

// integrityFailure is pool.Config.OnIntegrityFailure, of the listener and
// of every dialer: a session's peer answered an INTEGRITY challenge with
// a wrong proof (the session layer has closed that session). The error
// does not say which session, so this finds the listed sessions with a
// failed proof not acted on yet. A session it cannot find (not listed
// yet, or unlisted already) is caught by endSession or addSession.
func (n *Node) integrityFailure(error) {
	n.mu.Lock()
	entries := make([]*sessionEntry, 0, len(n.sessions))
	for _, e := range n.sessions {
		if !e.proofFailed {
			entries = append(entries, e)
		}
	}
	n.mu.Unlock()
	for _, e := range entries {
		n.checkProofs(e)
	}
}

// checkProofs acts, once per session, on a wrong INTEGRITY proof from e's
// peer: it counts it, logs it and makes the node compromised, naming the
// peer (draft §17.3: an integrity failure marks the node compromised, it
// alerts, and it refuses new sessions). The peer is authenticated and
// authorized, so this is a trusted peer misbehaving, or this node's own
// crypto path failing the check: the node cannot tell which, and fails
// closed (docs/OPERATIONS.md, SELF-TESTS AND THE COMPROMISED STATE).
func (n *Node) checkProofs(e *sessionEntry) {
	if e.s.Integrity().Failed == 0 {
		return
	}
	n.mu.Lock()
	if e.proofFailed {
		n.mu.Unlock()
		return
	}
	e.proofFailed = true
	label := e.s.Peer().String()
	if d, ok := n.peers[e.s.Peer()]; ok && d.peer.Name != "" {
		label = d.peer.Name + " (" + label + ")"
	}
	n.mu.Unlock()
	n.proofFailures.Add(1)
	id := e.s.ID()
	dir := "inbound"
	if !e.inbound {
		dir = "outbound"
	}
	text := fmt.Sprintf("INTEGRITY proof mismatch from peer %s (%s session %x, remote %s): its answer to an INTEGRITY challenge did not verify",
		label, dir, id[:4], remoteOf(e.s))
	n.log.Error("INTEGRITY proof mismatch: a peer answered an INTEGRITY challenge with a wrong proof; its session is closed (draft §17.3)",
		"peer", label, "session", fmt.Sprintf("%x", id[:4]), "remote", remoteOf(e.s), "direction", dir)
	n.markCompromised(CauseProof, text, pool.ErrIntegrity)
}

// health is the listener's and the dialers' pool.Config.Health: nil while
// the node is sound, the integrity failure once it is compromised. The
// monitor latches its failure, and so does the node: there is no way back
// but a restart.
func (n *Node) health() error {
	if c := n.compromise.Load(); c != nil {
		return c.err
	}
	if err := n.mon.LastErr(); err != nil {
		// The monitor failed and its onFail has not run yet.
		return n.markCompromised(CauseSelftest, integrityText(err), err).err
	}
	return nil
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func listenError(address string, err error) error {
	reason := err.Error()
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		reason = op.Err.Error()
	}
	msg := fmt.Sprintf("cannot listen on %s: %s", address, reason)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		msg += " (another program, or another pool node, is using that port; \"ss -ltnp\" shows which)"
	case errors.Is(err, syscall.EACCES):
		msg += " (ports below 1024 need privileges; use the default 9253)"
	}
	return errors.New(msg)
}

// authorized is the listener's Authorize: it reads the current policy, so
// a reload applies to the next handshake.
func (n *Node) authorized(k pool.PublicKey) bool { return n.authz.Load().allowed(k) }

// handshakeError logs an abandoned handshake: the ones an operator can act
// on at info or warn, the noise of the Internet at debug.
func (n *Node) handshakeError(ap netip.AddrPort, err error) {
	n.hsFailed.add(handshakeReason(err))
	n.note(journal.TypeHandshakeFailure, map[string]string{"reason": handshakeReason(err), "source": sourcePrefix(ap)})
	remote := unmap(ap)
	switch {
	case errors.Is(err, pool.ErrUnauthorized):
		// Keyed by source address: the error names the key, but an
		// attacker can make keys faster than addresses.
		if ok, held := n.refusedLog.allow(ap.Addr().Unmap().String(), time.Now()); ok {
			n.log.Warn("refused a peer whose key is not authorized (add it to authorized_peers?)", "remote", remote, "err", err,
				"similar_suppressed", held)
		}
	case errors.Is(err, pool.ErrClockSkew), errors.Is(err, pool.ErrWrongServer),
		errors.Is(err, pool.ErrSelfConnection):
		n.log.Info("handshake failed", "remote", remote, "err", err)
	default:
		n.log.Debug("handshake failed", "remote", remote, "err", err)
	}
}

func (n *Node) config() *Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// ControlPath returns the control socket's path.
func (n *Node) ControlPath() string { return n.ctl.path }

func (n *Node) acceptLoop(ln *pool.Listener) {
	defer n.wg.Done()
	for {
		s, err := ln.AcceptContext(n.ctx)
		if err != nil {
			return
		}
		e := &sessionEntry{s: s, inbound: true, established: time.Now()}
		if !n.addSession(e) {
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runSession(n.ctx, e)
			n.endSession(e)
			if n.ctx.Err() == nil {
				n.log.Info("inbound session ended", "peer", n.peerLabel(s.Peer()), "remote", remoteOf(s),
					"err", sessionEndText(s))
			}
		}()
	}
}

// addSession lists a new session, unless the node is closing or (for an
// inbound one) a reload revoked its key meanwhile; it then closes it.
func (n *Node) addSession(e *sessionEntry) bool {
	n.mu.Lock()
	closing := n.closing
	revoked := e.inbound && !n.authz.Load().allowed(e.s.Peer())
	if !closing && !revoked {
		n.sessions[e.s] = e
	}
	n.mu.Unlock()
	switch {
	case closing:
		_ = e.s.Close()
	case revoked:
		_ = e.s.CloseWithError(pool.CodeAuthFail, "key no longer authorized")
	default:
		n.record(journal.TypeConnect, n.sessionDetail(e))
		return true
	}
	n.checkProofs(e) // never listed, so endSession will not see it
	return false
}

// endSession unlists a session that ended, after acting on a wrong
// INTEGRITY proof that ended it, if OnIntegrityFailure has not yet: so a
// dialer sees the node compromised before it would redial.
func (n *Node) endSession(e *sessionEntry) {
	n.checkProofs(e)
	n.mu.Lock()
	delete(n.sessions, e.s)
	n.mu.Unlock()
	d := n.sessionDetail(e)
	d["reason"] = sessionEndText(e.s)
	d["lived"] = time.Since(e.established).Round(time.Millisecond).String()
	n.record(journal.TypeDisconnect, d)
}

// runSession serves a session until it ends, or until ctx ends: then it
// closes it (CLOSE NO_ERROR) and waits a moment for the peer's answer.
func (n *Node) runSession(ctx context.Context, e *sessionEntry) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.serveChannels(ctx, e.s)
	}()
	select {
	case <-e.s.Done():
	case <-ctx.Done():
		_ = e.s.Close()
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case <-e.s.Done():
		case <-t.C:
		}
	}
}

// refuseChannels resets every channel the peer opens: the node has no
// services yet, and an unaccepted channel would hold memory.
func (n *Node) refuseChannels(ctx context.Context, s *pool.Session) {
	for {
		ch, err := s.AcceptChannel(ctx)
		if err != nil {
			return
		}
		n.log.Debug("refused a channel: "+noService, "peer", n.peerLabel(s.Peer()), "channel", ch.ID())
		_ = ch.Reset(pool.CodeConfigReject, noService)
	}
}

// startDialerLocked starts keeping a session to p.
func (n *Node) startDialerLocked(p Peer) {
	ctx, cancel := context.WithCancel(n.ctx)
	d := &dialer{key: p.Key, cancel: cancel, done: make(chan struct{}), peer: p, state: StateConnecting}
	n.peers[p.Key] = d
	n.wg.Add(1)
	go n.runDialer(ctx, d)
}

// runDialer dials d's peer, serves the session, and dials again when it
// ends: at once after a session that lived DefaultResetAfter, otherwise
// after an exponential backoff from reconnect_min to reconnect_max, with
// jitter, so that a fleet restarting together does not reconnect in step.
func (n *Node) runDialer(ctx context.Context, d *dialer) {
	defer n.wg.Done()
	defer close(d.done)
	var delay, wait time.Duration
	for {
		if wait > 0 {
			n.mu.Lock()
			d.state, d.retryAt = StateBackoff, time.Now().Add(wait)
			n.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-n.compromisedCh: // show it at once, not at the next attempt
				t.Stop()
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		if n.health() != nil {
			n.parkDialer(ctx, d)
			return
		}
		n.mu.Lock()
		d.state, d.retryAt = StateConnecting, time.Time{}
		d.attempts++
		p, cfg := d.peer, n.cfg
		n.mu.Unlock()

		s, err := pool.Dial(ctx, p.Address, p.Key, &pool.Config{Identity: cfg.Identity,
			IdleTimeout: cfg.IdleTimeout, HeartbeatInterval: cfg.HeartbeatInterval, Logger: n.log,
			Health: n.health, OnIntegrityFailure: n.integrityFailure, Rand: n.rand, JournalHead: n.journalHead,
			OnRekey: n.rekeyed, OnConfigChange: n.configChanged, OnEvent: n.sessionEvent, OnJournal: n.onJournal})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, pool.ErrCompromised) {
				n.parkDialer(ctx, d)
				return
			}
			delay = nextDelay(delay, cfg.ReconnectMin, cfg.ReconnectMax)
			wait = jitter(delay, cfg.ReconnectMax)
			msg := errText(err)
			n.mu.Lock()
			d.lastErr = msg
			n.mu.Unlock()
			n.note(journal.TypeError, map[string]string{"what": "dial", "peer": p.Key.String(), "peer_name": p.Name,
				"address": p.Address, "reason": msg})
			n.log.Warn("cannot reach peer", "peer", p.label(), "address", p.Address, "err", msg,
				"retry_in", wait.Round(time.Millisecond))
			continue
		}
		e := &sessionEntry{s: s, established: time.Now()}
		if !n.addSession(e) {
			return
		}
		n.mu.Lock()
		d.state, d.since, d.sess, d.lastErr = StateConnected, e.established, s, ""
		n.mu.Unlock()
		n.log.Info("connected to peer", "peer", p.label(), "address", p.Address, "remote", remoteOf(s))

		n.runSession(ctx, e)
		n.endSession(e)
		why := sessionEndText(s)
		lived := time.Since(e.established)
		n.mu.Lock()
		d.state, d.since, d.sess = StateConnecting, time.Time{}, nil
		d.disconnects++
		d.lastErr, d.lastDisconnect, d.lastDisconnectAt = why, why, time.Now()
		cfg = n.cfg
		n.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if n.health() != nil {
			n.log.Warn("session to peer ended", "peer", p.label(), "err", why, "lived", lived.Round(time.Millisecond))
			n.parkDialer(ctx, d)
			return
		}
		if lived >= DefaultResetAfter {
			delay, wait = 0, 0
		} else {
			delay = nextDelay(delay, cfg.ReconnectMin, cfg.ReconnectMax)
			wait = jitter(delay, cfg.ReconnectMax)
		}
		n.log.Warn("session to peer ended", "peer", p.label(), "err", why, "lived", lived.Round(time.Millisecond),
			"retry_in", wait.Round(time.Millisecond))
	}
}

// parkDialer stops d for good, because the node is compromised and
// starts no session (draft §17.3): its state says so until the node
// stops. Its current session, if any, has ended already: established
// sessions are left to end by themselves.
func (n *Node) parkDialer(ctx context.Context, d *dialer) {
	why := "this node failed a runtime integrity self-test"
	if c := n.compromise.Load(); c != nil {
		if c.cause == CauseProof {
			why = "this node is compromised"
		}
		why += " (" + c.err.text + ")"
	}
	n.mu.Lock()
	d.state, d.retryAt = StateCompromised, time.Time{}
	d.lastErr = "not dialing: " + why + "; restart the node after investigating"
	label, address := d.peer.label(), d.peer.Address
	n.mu.Unlock()
	n.log.Warn("not dialing peer: this node is compromised and refuses new sessions", "peer", label, "address", address)
	<-ctx.Done()
}

// nextDelay doubles the backoff, from lo up to hi.
func nextDelay(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	return min(2*d, hi)
}

// jitter spreads d over ±20%, at most hi.
func jitter(d, hi time.Duration) time.Duration {
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(min(j, hi), time.Millisecond)
}

// errText is an error's message without the "pool: " and "handshake: "
// prefixes that wrapped library errors repeat inside it.
func errText(err error) string {
	s := err.Error()
	for _, p := range []string{"pool: ", "handshake: "} {
		s = strings.ReplaceAll(s, ": "+p, ": ")
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// sessionEndText says why a session ended, e.g. "closed by peer (NO_ERROR)".
func sessionEndText(s *pool.Session) string {
	err := s.Err()
	if err == nil {
		if pc := s.PeerClosed(); pc != nil {
			return errText(pc)
		}
		return "closed"
	}
	return errText(err)
}

// remoteOf is the peer's transport address.
func remoteOf(s *pool.Session) string {
	if s.Initiator() {
		return unmap(s.Path().Server)
	}
	return unmap(s.Path().Client)
}

// unmap writes an IPv4-mapped address (a dual-stack listener's view of an
// IPv4 client) as plain IPv4.
func unmap(ap netip.AddrPort) string {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// peerLabel names a key: its configured peer's name, or the key.
func (n *Node) peerLabel(k pool.PublicKey) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d, ok := n.peers[k]; ok && d.peer.Name != "" {
		return d.peer.Name
	}
	return k.String()
}

// Reload re-reads the configuration file and applies it without dropping
// sessions: the listen address (served at once; sessions the old listener
// accepted stay), the authorization policy (inbound sessions of keys no
// longer authorized are closed), peers added and removed, changed peer
// addresses and names, the log level and the reconnect settings. A file
// that is invalid, that changes identity, control, idle_timeout,
// selftest_interval or heartbeat_interval, or whose new listen address
// cannot be bound, is refused as a whole: the node keeps its old
// configuration.
func (n *Node) Reload() (ReloadResult, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.ctx.Err() != nil {
		return ReloadResult{}, errors.New("the node is shutting down")
	}
	cfg, err := LoadConfig(n.config().File)
	if err != nil {
		err = fmt.Errorf("reload refused, the node keeps its old configuration: %w", err)
		n.log.Error(err.Error())
		n.record(journal.TypeError, map[string]string{"what": "reload", "reason": err.Error()})
		return ReloadResult{}, err
	}
	res, err := n.apply(cfg)
	if err != nil {
		n.log.Error(err.Error())
		n.record(journal.TypeError, map[string]string{"what": "reload", "reason": err.Error()})
		return ReloadResult{}, err
	}
	if len(res.Changes) == 0 {
		n.log.Info("configuration reloaded: nothing changed")
	}
	for _, c := range res.Changes {
		n.log.Info("configuration reloaded: " + c)
	}
	outcome := "applied"
	if len(res.Changes) == 0 {
		outcome = "unchanged"
	}
	n.record(journal.TypeConfig, map[string]string{"what": "reload", "outcome": outcome, "file": n.config().File,
		"changes": strings.Join(res.Changes, "; ")})
	n.recordHandEdit()
	return res, nil
}

func (n *Node) apply(cfg *Config) (ReloadResult, error) {
	old := n.config()
	var frozen []string
	switch {
	case cfg.IdentityFile != old.IdentityFile:
		frozen = append(frozen, fmt.Sprintf("identity (%s -> %s)", old.IdentityFile, cfg.IdentityFile))
	case cfg.Identity.Public != old.Identity.Public:
		frozen = append(frozen, fmt.Sprintf("identity (the key in %s is another key now)", cfg.IdentityFile))
	}
	if cfg.Control != old.Control {
		frozen = append(frozen, fmt.Sprintf("control (%s -> %s)", old.Control, cfg.Control))
	}
	if cfg.IdleTimeout != old.IdleTimeout {
		frozen = append(frozen, fmt.Sprintf("idle_timeout (%v -> %v)", old.IdleTimeout, cfg.IdleTimeout))
	}
	if cfg.SelftestInterval != old.SelftestInterval {
		frozen = append(frozen, fmt.Sprintf("selftest_interval (%v -> %v)", old.SelftestInterval, cfg.SelftestInterval))
	}
	if cfg.HeartbeatInterval != old.HeartbeatInterval {
		frozen = append(frozen, fmt.Sprintf("heartbeat_interval (%v -> %v)", old.HeartbeatInterval, cfg.HeartbeatInterval))
	}
	if cfg.MetricsListen != old.MetricsListen {
		frozen = append(frozen, fmt.Sprintf("metrics_listen (%q -> %q)", old.MetricsListen, cfg.MetricsListen))
	}
	if !cfg.Bridges.equal(old.Bridges) {
		frozen = append(frozen, "the [[bridge.*]] sections")
	}
	if !cfg.Shim.equal(old.Shim) {
		frozen = append(frozen, "the [shim] section")
	}
	if cfg.Journal != old.Journal || cfg.JournalMaxSize != old.JournalMaxSize || cfg.JournalPublish != old.JournalPublish {
		frozen = append(frozen, "journal, journal_max_size and [journal_publish]")
	}
	if len(frozen) > 0 {
		return ReloadResult{}, fmt.Errorf("reload refused: %s cannot change while the node runs; restart the node to apply it (nothing was changed, the node keeps its old configuration)",
			strings.Join(frozen, ", "))
	}

	// A new listen address is bound before anything changes: one that
	// cannot be bound refuses the reload as a whole.
	var newLn *pool.Listener
	if cfg.Listen != old.Listen && cfg.Listen != "" {
		ln, err := n.openListener(cfg)
		if err != nil {
			return ReloadResult{}, fmt.Errorf("reload refused (nothing was changed, the node keeps its old configuration): %w", err)
		}
		newLn = ln
	}

	changes := []string{}
	if cfg.Listen != old.Listen {
		to := cfg.Listen
		if newLn != nil {
			to = newLn.Addr().String()
		}
		switch {
		case cfg.Listen == "":
			changes = append(changes, fmt.Sprintf("listen: %s -> off (accepted sessions stay)", old.Listen))
		default:
			changes = append(changes, fmt.Sprintf("listen: %q -> %s (accepted sessions stay)", old.Listen, to))
		}
	}
	if cfg.LogLevel != old.LogLevel {
		changes = append(changes, fmt.Sprintf("log_level: %s -> %s", levelName(old.LogLevel), levelName(cfg.LogLevel)))
	}
	if cfg.AllowAny != old.AllowAny || cfg.AuthorizedPeersFile != old.AuthorizedPeersFile || cfg.authorizedDigest != old.authorizedDigest {
		switch {
		case cfg.AllowAny:
			changes = append(changes, "allow_any: any key may connect now")
		case cfg.AuthorizedPeersFile != "":
			changes = append(changes, fmt.Sprintf("authorized_peers: %s reloaded (%d keys)", cfg.AuthorizedPeersFile, cfg.AuthorizedPeers.Len()))
		default:
			changes = append(changes, "authorized_peers: none (the node does not listen)")
		}
	}
	if cfg.ReconnectMin != old.ReconnectMin || cfg.ReconnectMax != old.ReconnectMax {
		changes = append(changes, fmt.Sprintf("reconnect: %v-%v -> %v-%v (from the next attempt)",
			old.ReconnectMin, old.ReconnectMax, cfg.ReconnectMin, cfg.ReconnectMax))
	}

	az := &authz{any: cfg.AllowAny, list: cfg.AuthorizedPeers}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		if newLn != nil {
			_ = newLn.Close()
		}
		return ReloadResult{}, errors.New("reload refused: the node is shutting down")
	}
	n.cfg = cfg
	var oldLn *pool.Listener
	if cfg.Listen != old.Listen {
		oldLn = n.serveListenerLocked(newLn)
	}
	n.authz.Store(az)
	var revoked []*pool.Session
	for s, e := range n.sessions {
		if e.inbound && !az.allowed(s.Peer()) {
			revoked = append(revoked, s)
		}
	}
	keep := map[pool.PublicKey]bool{}
	for _, p := range cfg.Peers {
		keep[p.Key] = true
		d, ok := n.peers[p.Key]
		if !ok {
			n.startDialerLocked(p)
			changes = append(changes, fmt.Sprintf("peer %s added (%s)", p.label(), p.Address))
			continue
		}
		if d.peer.Address != p.Address {
			changes = append(changes, fmt.Sprintf("peer %s: address %s -> %s (used from the next connection)", p.label(), d.peer.Address, p.Address))
		}
		if d.peer.Name != p.Name {
			changes = append(changes, fmt.Sprintf("peer %s: name %q -> %q", p.Key, d.peer.Name, p.Name))
		}
		d.peer = p
	}
	for _, p := range old.Peers {
		if d, ok := n.peers[p.Key]; ok && !keep[p.Key] {
			delete(n.peers, p.Key)
			d.cancel() // its session is closed with CLOSE NO_ERROR
			changes = append(changes, fmt.Sprintf("peer %s removed (its session is closed)", d.peer.label()))
		}
	}
	n.mu.Unlock()
	if oldLn != nil {
		_ = oldLn.Close()
	}
	if n.opts.Level != nil {
		n.opts.Level.Set(cfg.LogLevel)
	}
	if len(revoked) > 0 {
		changes = append(changes, fmt.Sprintf("closed %d inbound session(s) of keys no longer authorized", len(revoked)))
		for _, s := range revoked {
			n.log.Warn("closing the session of a key no longer authorized", "peer", s.Peer().String())
			go func() { _ = s.CloseWithError(pool.CodeAuthFail, "key no longer authorized") }()
		}
	}
	return ReloadResult{Changes: changes}, nil
}

// Shutdown stops accepting, closes every session with CLOSE NO_ERROR,
// waits (bounded by ctx) for them to end, and removes the control socket.
// It returns ctx's error if it gave up waiting.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		count := len(n.sessions)
		n.mu.Unlock()
		n.log.Info("node stopping: closing sessions", "sessions", count)
		if ln := n.ln.Load(); ln != nil {
			_ = ln.Close()
		}
		n.cancel()
		done := make(chan struct{})
		go func() {
			n.bridges.stop() // resets the connections they carry
			n.wg.Wait()
			<-n.mon.Done()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			n.shutdownErr = fmt.Errorf("gave up waiting for sessions to close: %w", ctx.Err())
		}
		n.ctl.Close()
		n.stopMetrics()
		n.closeConfigStore()
		stop := map[string]string{"reason": "shutdown", "sessions": strconv.Itoa(count)}
		if n.shutdownErr != nil {
			stop["error"] = n.shutdownErr.Error()
		}
		n.record(journal.TypeStop, stop)
		n.journal.close()
		n.log.Info("node stopped")
		close(n.stopped)
	})
	return n.shutdownErr
}

// Stopped is closed when Shutdown has finished.
func (n *Node) Stopped() <-chan struct{} { return n.stopped }

// Status reports the node's state.
func (n *Node) Status() Status {
	n.mu.Lock()
	cfg := n.cfg
	st := Status{
		Version: n.version, Identity: cfg.Identity.Public.String(),
		Address:  pool.NewAddress(cfg.Identity.Public, 0, 0).String(),
		UptimeS:  time.Since(n.started).Round(time.Millisecond).Seconds(),
		Sessions: len(n.sessions), PeersConfigured: len(n.peers),
		AllowAny: cfg.AllowAny, AuthorizedKeys: cfg.AuthorizedPeers.Len(),
		ConfigFile: cfg.File, Control: cfg.Control, LogLevel: levelName(cfg.LogLevel),
		Started: n.started.Truncate(time.Second), PID: os.Getpid(),
	}
	for _, d := range n.peers {
		if d.state == StateConnected {
			st.PeersConnected++
		}
	}
	st.Integrity.SelftestIntervalS = cfg.SelftestInterval.Seconds()
	n.mu.Unlock()
	st.Journal = n.journalStatus()
	st.Config = n.configStatus()
	if a := n.ListenAddr(); a != nil {
		st.Listen = a.String()
	}
	if ls, ok := n.listenerStats(); ok {
		st.Handshakes = HandshakeCounts{Accepted: ls.Sessions, Failed: ls.FailedHandshakes,
			Challenges: ls.Handshake.Challenges, RefusedPreauth: ls.RefusedPreAuth,
			RefusedCompromised: ls.RefusedUnhealthy}
	}
	n.health() // records a failure the monitor found but has not reported yet
	st.Integrity.State = IntegrityOK
	st.Integrity.SelftestRuns = n.mon.Runs()
	st.Integrity.ProofFailures = n.proofFailures.Load()
	if c := n.compromise.Load(); c != nil {
		st.Compromised = true
		st.Integrity.State = IntegrityCompromised
		st.Integrity.Cause = c.cause
		st.Integrity.Reason = c.err.text
		st.Integrity.Since = c.at.Truncate(time.Second)
		if c.cause == CauseSelftest {
			st.Integrity.Failures = 1
		}
	}
	return st
}

// listed returns the live sessions, oldest first, and the names of the
// configured peers' keys.
func (n *Node) listed() ([]*sessionEntry, map[pool.PublicKey]string) {
	n.mu.Lock()
	entries := make([]*sessionEntry, 0, len(n.sessions))
	for _, e := range n.sessions {
		entries = append(entries, e)
	}
	names := map[pool.PublicKey]string{}
	for k, d := range n.peers {
		names[k] = d.peer.Name
	}
	n.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].established.Before(entries[j].established) })
	return entries, names
}

// sessionInfo describes one session, with its counters st.
func sessionInfo(e *sessionEntry, names map[pool.PublicKey]string, st pool.SessionStats) SessionInfo {
	id, p := e.s.ID(), e.s.Path()
	remote, local := p.Client, p.Server
	dir := "inbound"
	if !e.inbound {
		dir = "outbound"
		remote, local = local, remote
	}
	return SessionInfo{ID: fmt.Sprintf("%x", id[:]), PeerKey: e.s.Peer().String(),
		PeerName: names[e.s.Peer()], Direction: dir, Remote: unmap(remote), Local: unmap(local),
		Established: e.established.Truncate(time.Second), PacketsSent: st.PacketsSent,
		PacketsReceived: st.PacketsReceived, BytesSent: st.BytesSent, BytesReceived: st.BytesReceived}
}

// Sessions lists the live sessions, oldest first.
func (n *Node) Sessions() []SessionInfo {
	entries, names := n.listed()
	out := make([]SessionInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, sessionInfo(e, names, e.s.Stats()))
	}
	return out
}

// Peers lists the configured peers in configuration order.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	out := make([]PeerInfo, 0, len(n.peers))
	for _, p := range n.cfg.Peers {
		d, ok := n.peers[p.Key]
		if !ok {
			continue
		}
		pi := PeerInfo{Name: d.peer.Name, Address: d.peer.Address, Key: d.key.String(), State: d.state,
			LastError: d.lastErr, Attempts: d.attempts, Disconnects: d.disconnects,
			LastDisconnect: d.lastDisconnect, LastDisconnectAt: d.lastDisconnectAt.Truncate(time.Second)}
		if d.state == StateBackoff {
			pi.RetryInS = max(d.retryAt.Sub(now), 0).Round(100 * time.Millisecond).Seconds()
		}
		if d.sess != nil {
			id := d.sess.ID()
			pi.ConnectedSince = d.since.Truncate(time.Second)
			pi.SessionID = fmt.Sprintf("%x", id[:])
		}
		out = append(out, pi)
	}
	return out
}

// handleControl answers one control request.
func (n *Node) handleControl(req Request) (any, error) {
	if req.Session != "" && req.Method != "telemetry" && !strings.HasPrefix(req.Method, "session.config.") {
		return nil, fmt.Errorf(`bad request: method %q takes no "session" (only "telemetry" and the session.config.* methods do)`, req.Method)
	}
	switch req.Method {
	case "ping":
		return "pong", nil
	case "status":
		return n.Status(), nil
	case "sessions":
		return n.Sessions(), nil
	case "telemetry":
		return n.Telemetry(req.Session)
	case "peers":
		return n.Peers(), nil
	case "reload":
		return n.Reload()
	case "bridge.status":
		if n.bridges == nil {
			return nil, errNoBridges
		}
		return n.BridgeStatus(), nil
	case "config.apply":
		if req.Config == nil {
			return nil, errors.New(`bad request: config.apply needs "config", the new file's bytes (base64)`)
		}
		if req.ConfirmWithin < 0 || math.IsNaN(req.ConfirmWithin) || req.ConfirmWithin > MaxConfirmWithin.Seconds() {
			return nil, fmt.Errorf(`bad request: "confirm_within" %v is outside (0, %v] seconds`, req.ConfirmWithin, MaxConfirmWithin.Seconds())
		}
		return n.ConfigApply(req.Config, time.Duration(req.ConfirmWithin*float64(time.Second)), ctlAuthor(req))
	case "config.confirm":
		return n.ConfigConfirm()
	case "config.rollback":
		return n.ConfigRollback(req.Version, ctlAuthor(req))
	case "config.history":
		return n.ConfigHistory()
	case "config.diff":
		return n.ConfigDiff(req.A, req.B)
	case "session.config.propose", "session.config.rollback", "session.config.lock":
		return n.handleSessionConfig(req)
	}
	return nil, fmt.Errorf("unknown method %q (want one of %s)", req.Method, strings.Join(Methods, ", "))
}

// Methods are the control protocol's methods.
var Methods = []string{"status", "sessions", "telemetry", "peers", "reload", "ping", "bridge.status",
	"config.apply", "config.confirm", "config.rollback", "config.history", "config.diff",
	"session.config.propose", "session.config.rollback", "session.config.lock"}

// ctlAuthor is who a change made over the control socket is recorded as.
func ctlAuthor(req Request) string {
	if req.Author != "" {
		return "control: " + req.Author
	}
	return "control"
}
