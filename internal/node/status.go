package node

import "time"

// The results of the control methods (docs/OPERATIONS.md, "Control
// protocol"). Field names are the JSON names of the protocol; times are
// RFC 3339.

// Status is the result of "status".
type Status struct {
	// Compromised: a runtime integrity self-test failed; the node
	// refuses new sessions until restarted (Integrity says what and when).
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
	AllowAny        bool            `json:"allow_any"`
	AuthorizedKeys  int             `json:"authorized_keys"` // keys in authorized_peers
	ConfigFile      string          `json:"config_file"`
	Control         string          `json:"control"`
	LogLevel        string          `json:"log_level"`
	Started         time.Time       `json:"started"`
	PID             int             `json:"pid"`
}

// Integrity states.
const (
	IntegrityOK          = "ok"          // every self-test so far passed
	IntegrityCompromised = "compromised" // one failed: new sessions are refused until restart
)

// Integrity is the node's runtime-integrity state (draft §17.3;
// docs/OPERATIONS.md, SELF-TESTS AND THE COMPROMISED STATE).
type Integrity struct {
	State             string    `json:"state"`            // IntegrityOK or IntegrityCompromised
	Reason            string    `json:"reason,omitempty"` // what failed: the primitive or randomness test
	Since             time.Time `json:"since,omitzero"`   // when the failure was found
	SelftestIntervalS float64   `json:"selftest_interval_s"`
	SelftestRuns      uint64    `json:"selftest_runs"` // rounds run since start, the failed one included
	// Failures counts failed rounds: 0, or 1, since the first failure
	// latches and no round runs after it.
	Failures uint64 `json:"failures"`
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
