package node

// The session.config.* control methods (docs/OPERATIONS.md, CONTROL
// PROTOCOL): an operator proposes new parameters for a peer's side of a
// session, rolls an accepted proposal back before its deadline, or locks
// this node's own side against the peer's proposals (PROTOCOL.md §7.15).
// The events themselves are journaled by configChanged.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pool-go/pool"
)

// peerConfigTimeout bounds the wait for the peer's answer to a proposal
// or a rollback (one round trip; under the client's 10 s).
const peerConfigTimeout = 8 * time.Second

// Defaults of an omitted parameter of session.config.propose: the
// protocol's defaults (heartbeat 5 s, rekey every hour or 2^28 packets,
// no MTU cap).
const (
	DefaultPeerHeartbeat     = 5 * time.Second
	DefaultPeerRekeyInterval = time.Hour
	DefaultPeerRekeyPackets  = 1 << 28
)

// PeerConfigParams are a session's peer-set parameters as the control
// protocol shows them.
type PeerConfigParams struct {
	HeartbeatMs    uint32 `json:"heartbeat_ms"`
	RekeyIntervalS uint32 `json:"rekey_interval_s"`
	RekeyPackets   uint64 `json:"rekey_packets"`
	MTUMax         uint16 `json:"mtu_max"`
}

// PeerConfigResult is the result of the session.config.* methods.
// State is "tentative" (the peer applied the proposal and keeps it at the
// deadline unless rolled back before), "rolled-back", "locked" or
// "unlocked". For propose and rollback, Version, Hash and Params are the
// peer's configuration now in force; for lock, this node's own.
type PeerConfigResult struct {
	Session     string           `json:"session"`
	State       string           `json:"state"`
	Version     uint32           `json:"version"`
	Hash        string           `json:"hash"`
	PrevVersion uint32           `json:"prev_version"`
	PrevHash    string           `json:"prev_hash,omitempty"`
	Params      PeerConfigParams `json:"params"`
	DeadlineS   float64          `json:"deadline_s,omitempty"`
}

// sessionByPrefix finds the one live session whose ID starts with prefix.
func (n *Node) sessionByPrefix(prefix string) (*pool.Session, string, error) {
	if prefix == "" {
		return nil, "", errors.New(`bad request: this method needs "session", a session ID prefix`)
	}
	if err := CheckSessionPrefix(prefix); err != nil {
		return nil, "", err
	}
	prefix = strings.ToLower(prefix)
	entries, _ := n.listed()
	var found []*pool.Session
	var ids []string
	for _, e := range entries {
		id := e.s.ID()
		if h := hex.EncodeToString(id[:]); strings.HasPrefix(h, prefix) {
			found = append(found, e.s)
			ids = append(ids, h)
		}
	}
	switch len(found) {
	case 0:
		return nil, "", fmt.Errorf("no session ID starts with %q (the node has %d live sessions; \"pool sessions\" lists them)",
			prefix, len(entries))
	case 1:
		return found[0], ids[0], nil
	}
	return nil, "", fmt.Errorf("session ID prefix %q is ambiguous: %d live sessions start with it (%s); give more digits",
		prefix, len(found), strings.Join(ids, ", "))
}

func paramsOf(p pool.ConfigParams) PeerConfigParams {
	return PeerConfigParams{HeartbeatMs: p.HeartbeatMs, RekeyIntervalS: p.RekeyIntervalS,
		RekeyPackets: p.RekeyPackets, MTUMax: p.MTUMax}
}

func resultOf(id, state string, r pool.ConfigResult) *PeerConfigResult {
	out := &PeerConfigResult{Session: id, State: state, Version: r.Version, Hash: hex.EncodeToString(r.Hash[:]),
		PrevVersion: r.PrevVersion, Params: paramsOf(r.Params), DeadlineS: seconds(r.Deadline)}
	if r.PrevHash != ([32]byte{}) {
		out.PrevHash = hex.EncodeToString(r.PrevHash[:])
	}
	return out
}

// configErr words a session's configuration error for the operator.
func configErr(err error) error {
	var rej *pool.ConfigRejectedError
	switch {
	case errors.As(err, &rej):
		return fmt.Errorf("the peer refused: %s (reason %s; its configuration is version %d)", err, rejectReason(rej.Detail), rej.CurrentVersion)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from the peer within %v", peerConfigTimeout)
	}
	return err
}

// ProposeConfig proposes params for the peer's side of the session whose
// ID starts with prefix, with a rollback deadline (0: the default, 60 s),
// and returns the peer's answer. Zero fields of params take the
// protocol's defaults, except MTUMax (0: no cap).
func (n *Node) ProposeConfig(prefix string, params pool.ConfigParams, deadline time.Duration) (*PeerConfigResult, error) {
	s, id, err := n.sessionByPrefix(prefix)
	if err != nil {
		return nil, err
	}
	if params.HeartbeatMs == 0 {
		params.HeartbeatMs = uint32(DefaultPeerHeartbeat / time.Millisecond)
	}
	if params.RekeyIntervalS == 0 {
		params.RekeyIntervalS = uint32(DefaultPeerRekeyInterval / time.Second)
	}
	if params.RekeyPackets == 0 {
		params.RekeyPackets = DefaultPeerRekeyPackets
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerConfigTimeout)
	defer cancel()
	r, err := s.ProposeConfig(ctx, params, deadline)
	if err != nil {
		return nil, configErr(err)
	}
	return resultOf(id, "tentative", r), nil
}

// RollbackConfig asks the peer of the session whose ID starts with prefix
// to restore the configuration before our accepted proposal; it must come
// before the proposal's deadline.
func (n *Node) RollbackConfig(prefix string) (*PeerConfigResult, error) {
	s, id, err := n.sessionByPrefix(prefix)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerConfigTimeout)
	defer cancel()
	r, err := s.RollbackConfig(ctx)
	if err != nil {
		return nil, configErr(err)
	}
	return resultOf(id, "rolled-back", r), nil
}

// LockConfig freezes (or unfreezes) this node's side of the session whose
// ID starts with prefix: while locked, the peer's proposals and rollbacks
// are refused.
func (n *Node) LockConfig(prefix string, locked bool) (*PeerConfigResult, error) {
	s, id, err := n.sessionByPrefix(prefix)
	if err != nil {
		return nil, err
	}
	s.LockConfig(locked)
	v, p := s.Config()
	h := s.ConfigHash()
	state := "unlocked"
	if locked {
		state = "locked"
	}
	return &PeerConfigResult{Session: id, State: state, Version: v, Hash: hex.EncodeToString(h[:]), Params: paramsOf(p)}, nil
}

// handleSessionConfig answers the session.config.* methods.
func (n *Node) handleSessionConfig(req Request) (any, error) {
	switch req.Method {
	case "session.config.propose":
		if req.Deadline < 0 || math.IsNaN(req.Deadline) || req.Deadline > math.MaxInt32 {
			return nil, fmt.Errorf(`bad request: "deadline" %v is not a number of seconds`, req.Deadline)
		}
		p := pool.ConfigParams{HeartbeatMs: req.HeartbeatMs, RekeyIntervalS: req.RekeyIntervalS,
			RekeyPackets: req.RekeyPackets, MTUMax: req.MTUMax}
		return n.ProposeConfig(req.Session, p, time.Duration(req.Deadline*float64(time.Second)))
	case "session.config.rollback":
		return n.RollbackConfig(req.Session)
	case "session.config.lock":
		if req.Locked == nil {
			return nil, errors.New(`bad request: session.config.lock needs "locked", true or false`)
		}
		return n.LockConfig(req.Session, *req.Locked)
	}
	return nil, fmt.Errorf("unknown method %q", req.Method)
}
