package node

// Session events the node journals besides connect and disconnect
// (docs/OPERATIONS.md, THE CHANGE JOURNAL): completed rekeys and peer
// configuration changes (PROTOCOL.md §7.15). pool.Config's OnRekey and
// OnConfigChange name the session, so one Config serves every session.

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/wire"
)

// eventDetail is the session part of a rekey or config entry: the same
// keys as a connect entry's (direction and remote once the node lists the
// session).
func (n *Node) eventDetail(s *pool.Session) map[string]string {
	n.mu.Lock()
	e := n.sessions[s]
	n.mu.Unlock()
	if e != nil {
		return n.sessionDetail(e)
	}
	id := s.ID()
	d := map[string]string{"session": hex.EncodeToString(id[:]), "peer": s.Peer().String()}
	if name := n.peerName(s.Peer()); name != "" {
		d["peer_name"] = name
	}
	return d
}

// rekeyed is pool.Config.OnRekey: every completed rekey is an entry (they
// are rare: hourly or every 2^28 packets per session, so not aggregated).
func (n *Node) rekeyed(s *pool.Session, epoch uint32, initiated bool) {
	d := n.eventDetail(s)
	d["epoch"] = strconv.FormatUint(uint64(epoch), 10)
	d["initiated"] = strconv.FormatBool(initiated)
	n.record(journal.TypeRekey, d)
}

// configChanged is pool.Config.OnConfigChange: applied, confirmed and
// confirmed-by-silence are "config" entries; rolled-back and rejected are
// "rollback" entries. "side" is "local" for this node's own parameters
// (the peer proposed) and "remote" for the peer's (this node proposed).
func (n *Node) configChanged(s *pool.Session, ev pool.ConfigEvent) {
	d := n.eventDetail(s)
	d["event"] = ev.Kind.String()
	d["side"] = "remote"
	if ev.Local {
		d["side"] = "local"
	}
	d["version"] = strconv.FormatUint(uint64(ev.Version), 10)
	d["prev_version"] = strconv.FormatUint(uint64(ev.PrevVersion), 10)
	d["hash"] = hex.EncodeToString(ev.Hash[:])
	if ev.PrevHash != ([32]byte{}) {
		d["prev_hash"] = hex.EncodeToString(ev.PrevHash[:])
	}
	if ev.Params != (pool.ConfigParams{}) {
		d["params"] = paramsText(ev.Params)
	}
	if ev.PrevParams != (pool.ConfigParams{}) {
		d["prev_params"] = paramsText(ev.PrevParams)
	}
	if ev.Kind == pool.ConfigRejected {
		d["reason"] = rejectReason(ev.Detail)
	}
	if ev.Kind == pool.ConfigConfirmed && ev.Local {
		d["confirms"] = strconv.Itoa(ev.Confirms)
	}
	t := journal.TypeConfig
	if ev.Kind == pool.ConfigRolledBack || ev.Kind == pool.ConfigRejected {
		t = journal.TypeRollback
	}
	n.record(t, d)
}

// paramsText is a ConfigParams as the journal shows it.
func paramsText(p pool.ConfigParams) string {
	return fmt.Sprintf("heartbeat=%v rekey_interval=%v rekey_packets=%d mtu_max=%d compression=%d",
		time.Duration(p.HeartbeatMs)*time.Millisecond, time.Duration(p.RekeyIntervalS)*time.Second,
		p.RekeyPackets, p.MTUMax, p.Compression)
}

// rejectReason names a CONFIG_REJECT detail (PROTOCOL.md §7.15).
func rejectReason(detail uint8) string {
	switch detail {
	case wire.RejectLocked:
		return "locked"
	case wire.RejectStale:
		return "stale"
	case wire.RejectBusy:
		return "busy"
	case wire.RejectInvalid:
		return "invalid"
	case wire.RejectNotTentative:
		return "not_tentative"
	}
	return "detail " + strconv.Itoa(int(detail))
}

// sessionEvent is pool.Config.OnEvent: path MTU changes are "state"
// entries (rare: a search settles in about ten steps, then only a changed
// path moves it); OVERLOAD starts and ends are "state" entries through
// aggregation, since a receiver at its high-water mark may flap every
// second; INTEGRITY outcome changes (first verified, unanswered, verified
// again) are "integrity" entries. Every correct proof is not: those are
// counted in the session's telemetry. Datagrams a session dropped
// (forged, replayed, failing authentication: draft §11, never silently)
// are aggregated "error" entries whose count is the packets.
func (n *Node) sessionEvent(s *pool.Session, ev pool.SessionEvent) {
	d := n.eventDetail(s)
	d["event"] = ev.Kind.String()
	switch ev.Kind {
	case pool.EventMTU:
		d["mtu"] = strconv.Itoa(ev.MTU)
		d["prev_mtu"] = strconv.Itoa(ev.PrevMTU)
		n.record(journal.TypeState, d)
	case pool.EventOverloadStart, pool.EventOverloadEnd:
		d["side"] = "remote" // the peer is overloaded: this node holds its DATA
		if ev.Local {
			d["side"] = "local"
		}
		n.note(journal.TypeState, d)
	case pool.EventIntegrityVerified, pool.EventIntegrityTimeout:
		n.record(journal.TypeIntegrity, d)
	case pool.EventDropped:
		delete(d, "event")
		d["what"] = "dropped"
		d["reason"] = ev.Reason.String()
		n.noteCount(journal.TypeError, d, ev.Count)
	}
}
