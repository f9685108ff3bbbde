package node

import (
	"net"

	"github.com/pool-go/pool"
)

// The node's listener. `listen` is reloadable (and so under config apply's
// commit-confirmed rollback, the case an operator most needs it for: a
// listen address that cuts the node off comes back by itself at the
// deadline). The new address is bound before anything changes, so a bad
// one refuses the whole reload; sessions the old listener accepted stay.

// openListener binds cfg.Listen with the node's session settings.
func (n *Node) openListener(cfg *Config) (*pool.Listener, error) {
	ln, err := pool.Listen(cfg.Listen, &pool.Config{Identity: cfg.Identity, Authorize: n.authorized,
		IdleTimeout: cfg.IdleTimeout, HeartbeatInterval: cfg.HeartbeatInterval, Logger: n.log,
		OnHandshakeError: n.handshakeError, Health: n.health, OnIntegrityFailure: n.integrityFailure,
		Rand: n.rand, JournalHead: n.journalHead, OnRekey: n.rekeyed, OnConfigChange: n.configChanged,
		OnEvent: n.sessionEvent, OnJournal: n.onJournal})
	if err != nil {
		return nil, listenError(cfg.Listen, err)
	}
	return ln, nil
}

// serveListenerLocked makes ln the node's listener (nil: none), starts
// accepting on it and returns the one it replaces for the caller to close
// once n.mu is released. The retired listener's counters are kept, so the
// node's handshake figures (and Prometheus counters) never go backwards.
func (n *Node) serveListenerLocked(ln *pool.Listener) (old *pool.Listener) {
	old = n.ln.Swap(ln)
	if old != nil {
		n.retired = addListenerStats(n.retired, old.Stats())
	}
	if ln != nil {
		n.wg.Add(1)
		go n.acceptLoop(ln)
	}
	return old
}

// listenerStats are the counters of the current and every retired
// listener; ok is false when the node does not listen.
func (n *Node) listenerStats() (st pool.ListenerStats, ok bool) {
	n.mu.Lock()
	ln, st := n.ln.Load(), n.retired
	n.mu.Unlock()
	if ln == nil {
		return st, false
	}
	cur := ln.Stats()
	st = addListenerStats(st, cur)
	st.PreAuthInUse = cur.PreAuthInUse // a gauge, not a sum
	return st, true
}

func addListenerStats(a, b pool.ListenerStats) pool.ListenerStats {
	a.Handshake.Challenges += b.Handshake.Challenges
	a.Handshake.VersionCloses += b.Handshake.VersionCloses
	a.Handshake.Accepted += b.Handshake.Accepted
	a.Handshake.DroppedInits += b.Handshake.DroppedInits
	a.Handshake.DroppedResponses += b.Handshake.DroppedResponses
	a.Handshake.ReplayedAccepts += b.Handshake.ReplayedAccepts
	a.RefusedPreAuth += b.RefusedPreAuth
	a.RefusedUnhealthy += b.RefusedUnhealthy
	a.FailedHandshakes += b.FailedHandshakes
	a.Sessions += b.Sessions
	return a
}

// ListenAddr returns the listener's address, or nil when not listening.
func (n *Node) ListenAddr() net.Addr {
	if ln := n.ln.Load(); ln != nil {
		return ln.Addr()
	}
	return nil
}
