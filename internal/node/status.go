package node

import "time"

// The results of the control methods (docs/OPERATIONS.md, "Control
// protocol"). Field names are the JSON names of the protocol; times are
// RFC 3339.

// Status is the result of "status".
type Status struct {
	// Compromised: a runtime integrity self-test failed, or a peer
	// answered an INTEGRITY challenge with a wrong proof; the node refuses
	// new sessions until restarted (Integrity says what and when).
	Compromised     bool            `json:"compromised"`
	Integrity       Integrity       `json:"integrity"`
	Version         string          `json:"version"`
	Identity        string          `json:"identity"` // public key, base64
	Address         string          `json:"address"`  // pool:... text form
	Listen          string          `json:"listen"`   // bound address; "" when not listening
	UptimeS         float64         `json:"uptime_s"`
	Sessions        int             `json:"sessions"`
	PeersConfigured int             `json:"peers_configured"`
	PeersConnected  int             `json:"peers_connected"`
	Handshakes      HandshakeCounts `json:"handshakes"`
	// Journal is the change journal's state (docs/OPERATIONS.md, THE
	// CHANGE JOURNAL).
	Journal JournalStatus `json:"journal"`
	// Config is the configuration's version and pending commit-confirmed
	// change (docs/OPERATIONS.md, CHANGING THE CONFIGURATION).
	Config         ConfigStatus `json:"config"`
	AllowAny       bool         `json:"allow_any"`
	AuthorizedKeys int          `json:"authorized_keys"` // keys in authorized_peers
	ConfigFile     string       `json:"config_file"`
	Control        string       `json:"control"`
	LogLevel       string       `json:"log_level"`
	Started        time.Time    `json:"started"`
	PID            int          `json:"pid"`
}

// Integrity states.
const (
	IntegrityOK          = "ok"          // every self-test so far passed
	IntegrityCompromised = "compromised" // one failed: new sessions are refused until restart
)

// Integrity is the node's runtime-integrity state (draft §17.3;
// docs/OPERATIONS.md, SELF-TESTS AND THE COMPROMISED STATE).
type Integrity struct {
	State string `json:"state"` // IntegrityOK or IntegrityCompromised
	// Cause is what made the node compromised: CauseSelftest or
	// CauseProof; "" while it is not.
	Cause string `json:"cause,omitempty"`
	// Reason says what failed: the primitive or randomness test, or the
	// peer whose INTEGRITY proof was wrong.
	Reason            string    `json:"reason,omitempty"`
	Since             time.Time `json:"since,omitzero"` // when the failure was found
	SelftestIntervalS float64   `json:"selftest_interval_s"`
	SelftestRuns      uint64    `json:"selftest_runs"` // rounds run since start, the failed one included
	// Failures counts failed self-test rounds: 0, or 1, since the first
	// failure latches and no round runs after it.
	Failures uint64 `json:"failures"`
	// ProofFailures counts the sessions whose peer answered an INTEGRITY
	// challenge with a wrong proof, since start (the first one made the
	// node compromised, unless a self-test had already).
	ProofFailures uint64 `json:"integrity_failures"`
}

// JournalStatus is the change journal's state in "status".
type JournalStatus struct {
	Enabled   bool   `json:"enabled"` // false: journal = "" (nothing is recorded)
	Path      string `json:"path,omitempty"`
	Entries   uint64 `json:"entries"`        // durable entries: the chain head's sequence number
	Head      string `json:"head,omitempty"` // chain head, 64 hex digits
	SizeBytes int64  `json:"size_bytes"`
	// Full: an entry could not be written for lack of space (JOURNAL_FULL,
	// the size cap journal_max_size or the file system); FullEvents
	// counts the entries lost so, WriteErrors those lost to other errors.
	Full        bool   `json:"journal_full"`
	FullEvents  uint64 `json:"full_events"`
	WriteErrors uint64 `json:"write_errors"`
	// Pending counts aggregated events not written yet (they are written
	// when their window closes, within about a minute).
	Pending uint64 `json:"pending"`
	// PeerDivergences counts peers' JOURNAL checkpoints that contradicted
	// the replica held of their journal (PROTOCOL.md §7.16).
	PeerDivergences uint64 `json:"peer_divergences"`
}

// HandshakeCounts are the listener's counters since the node started.
type HandshakeCounts struct {
	Accepted       uint64 `json:"accepted"`        // sessions established by the listener
	Failed         uint64 `json:"failed"`          // handshakes abandoned (see the log for why)
	Challenges     uint64 `json:"challenges"`      // CHALLENGEs sent
	RefusedPreauth uint64 `json:"refused_preauth"` // connections over the pre-auth caps
	// RefusedCompromised counts handshakes refused because the node is
	// compromised (draft §17.3).
	RefusedCompromised uint64 `json:"refused_compromised"`
}

// SessionInfo is one element of the result of "sessions".
type SessionInfo struct {
	ID              string    `json:"id"` // Session ID, 32 hex digits
	PeerKey         string    `json:"peer_key"`
	PeerName        string    `json:"peer_name,omitempty"` // when the key is a configured peer's
	Direction       string    `json:"direction"`           // "inbound" or "outbound"
	Remote          string    `json:"remote"`
	Local           string    `json:"local"`
	Established     time.Time `json:"established"`
	PacketsSent     uint64    `json:"packets_sent"`
	PacketsReceived uint64    `json:"packets_received"`
	BytesSent       uint64    `json:"bytes_sent"`
	BytesReceived   uint64    `json:"bytes_received"`
}

// Peer states.
const (
	StateConnected  = "connected"  // a session is up
	StateConnecting = "connecting" // dialing or in the handshake
	StateBackoff    = "backoff"    // waiting retry_in_s before the next attempt
	// StateCompromised: not dialing, because this node failed a runtime
	// integrity self-test; it stays so until the node is restarted.
	StateCompromised = "compromised"
)

// PeerInfo is one element of the result of "peers".
type PeerInfo struct {
	Name             string    `json:"name"`
	Address          string    `json:"address"`
	Key              string    `json:"key"`
	State            string    `json:"state"`
	LastError        string    `json:"last_error"`           // why the last attempt or session failed; "" once connected
	RetryInS         float64   `json:"retry_in_s,omitempty"` // in backoff: seconds to the next attempt
	ConnectedSince   time.Time `json:"connected_since,omitzero"`
	SessionID        string    `json:"session_id,omitempty"`
	Attempts         uint64    `json:"attempts"`        // connection attempts since the node started
	Disconnects      uint64    `json:"disconnects"`     // sessions to this peer that ended
	LastDisconnect   string    `json:"last_disconnect"` // why the last session ended
	LastDisconnectAt time.Time `json:"last_disconnect_at,omitzero"`
}

// ReloadResult is the result of "reload".
type ReloadResult struct {
	Changes []string `json:"changes"` // what changed, one line each; empty when nothing did
}

// TelemetryInfo is one element of the result of "telemetry": a live
// session's figures, with this node's own measurements (Local) and the
// peer's last report about itself (PeerReport) kept apart, never merged
// (draft §8: each side gets a view it can cross-check against the
// other's). Durations are in the unit their name ends with: _us integer
// microseconds, _s seconds (to the millisecond).
type TelemetryInfo struct {
	ID              string    `json:"id"` // Session ID, 32 hex digits
	PeerKey         string    `json:"peer_key"`
	PeerName        string    `json:"peer_name,omitempty"` // when the key is a configured peer's
	Direction       string    `json:"direction"`           // "inbound" or "outbound"
	Remote          string    `json:"remote"`
	Established     time.Time `json:"established"`
	Epoch           uint32    `json:"epoch"`  // the current key epoch (0 until the first rekey)
	Rekeys          uint64    `json:"rekeys"` // rekeys completed
	PacketsSent     uint64    `json:"packets_sent"`
	PacketsReceived uint64    `json:"packets_received"`
	BytesSent       uint64    `json:"bytes_sent"`     // application bytes on channels
	BytesReceived   uint64    `json:"bytes_received"` // application bytes on channels
	// Local is what this node measured itself.
	Local Measurements `json:"local"`
	// PeerReport is the peer's last telemetry, as it sent it; null until
	// the first one arrives.
	PeerReport   *PeerReport     `json:"peer_report"`
	DigestChecks uint64          `json:"digest_checks"` // the peer's state digests verified
	Anomalies    uint64          `json:"anomalies"`     // cross-check disagreements, counted, not fatal
	LastAnomaly  string          `json:"last_anomaly"`  // "" if none
	Overload     OverloadInfo    `json:"overload"`
	Integrity    IntegrityChecks `json:"integrity"`
	Channels     []ChannelInfo   `json:"channels"` // open channels by ID; [] if none
}

// Measurements are this node's own figures for a session.
type Measurements struct {
	RTTUs      int64  `json:"rtt_us"`    // smoothed round-trip time; 0 until rtt_samples > 0
	JitterUs   int64  `json:"jitter_us"` // smoothed RTT variation
	RTTSamples uint64 `json:"rtt_samples"`
	// Inbound: the peer's packets toward this node, over this node's
	// last heartbeat interval.
	LossInPPM       uint32 `json:"loss_in_ppm"`
	ThroughputInBps uint64 `json:"throughput_in_bps"` // bits/s of whole packets
	// Outbound, derived from the peer's counters in its last two
	// reports: this node's packets toward the peer.
	LossOutPPM       uint32 `json:"loss_out_ppm"`
	ThroughputOutBps uint64 `json:"throughput_out_bps"`
	MTU              int    `json:"mtu"` // path MTU toward the peer, POOL packet bytes
	HeartbeatsSent   uint64 `json:"heartbeats_sent"`
	HeartbeatsRecv   uint64 `json:"heartbeats_received"`
	// UptimeS is the session's age by this node's clock, from when the
	// node took the session over.
	UptimeS float64 `json:"uptime_s"`
}

// PeerReport is the peer's last telemetry HEARTBEAT, its figures as it
// sent them (PROTOCOL.md §7.9.3): "in" is toward the peer.
type PeerReport struct {
	AgeS            float64 `json:"age_s"` // how long ago it arrived
	RTTUs           int64   `json:"rtt_us"`
	JitterUs        int64   `json:"jitter_us"`
	LossInPPM       uint32  `json:"loss_in_ppm"`       // loss of this node's packets toward the peer
	ThroughputInBps uint32  `json:"throughput_in_bps"` // bits/s the peer received, saturating at 2^32-1
	MTU             uint16  `json:"mtu"`
	QueueDepth      uint16  `json:"queue_depth"` // packets waiting in the peer's send queue
	UptimeS         float64 `json:"uptime_s"`    // the session's age by the peer's clock
	Rekeys          uint32  `json:"rekeys"`
	ConfigVersion   uint32  `json:"config_version"`
	JournalHead     string  `json:"journal_head"` // 16 hex digits
	RxPackets       uint64  `json:"rx_packets"`   // packets the peer authenticated from this node
	RxBytes         uint64  `json:"rx_bytes"`     // their size on the wire
}

// OverloadInfo is a session's backpressure (PROTOCOL.md §7.13).
type OverloadInfo struct {
	NoticesSent     uint64 `json:"notices_sent"`     // OVERLOAD notices this node sent
	NoticesReceived uint64 `json:"notices_received"` // and received
	Paused          bool   `json:"paused"`           // holding DATA now because the peer asked
	UnreadBytes     int64  `json:"unread_bytes"`     // received, not yet read, all channels
}

// IntegrityChecks count a session's INTEGRITY exchanges (PROTOCOL.md
// §7.12).
type IntegrityChecks struct {
	Verified  uint64 `json:"verified"`  // the peer's proofs that verified
	Failed    uint64 `json:"failed"`    // and did not (the session then ends)
	Timeouts  uint64 `json:"timeouts"`  // challenges not answered within 10 s
	Unmatched uint64 `json:"unmatched"` // late or unknown answers, ignored
	Answered  uint64 `json:"answered"`  // the peer's challenges this node answered
}

// ChannelInfo is one open channel's counters.
type ChannelInfo struct {
	ID            uint8  `json:"id"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	Buffered      int    `json:"buffered"` // received, not yet read
}
