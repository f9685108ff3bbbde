// Package metrics exports a POOL node's figures to Prometheus
// (docs/OPERATIONS.md, METRICS).
//
// The Collector keeps no counters of its own: on each scrape it asks its
// Source for a Snapshot of the node's live figures (the listener's
// counters, every live session's Stats, Telemetry, Overload and Integrity
// counters) and turns them into constant metrics, so nothing is counted
// twice or kept in two places.
//
// Labels are kept to low cardinality. A session's series are labelled by
// peer (the configured peer's name, or the first 12 characters of its
// key) and origin (inbound, outbound); sessions sharing both labels are
// summed (their gauges are the newest session's). At most MaxPeerSeries
// peer labels are exported; sessions of further peers are folded into
// peer="_other". Per-channel series exist only for open channels, at most
// MaxChannelSeries per peer and origin (the lowest channel IDs).
//
// Session counters are the sessions' own: when a session ends its series
// falls back (a counter reset, which rate() and increase() handle) or
// disappears.
package metrics

import (
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Caps on the label values of one scrape.
const (
	// MaxPeerSeries is how many distinct peer labels are exported; the
	// sessions of further peers are summed under OtherPeer.
	MaxPeerSeries = 64
	// MaxChannelSeries is how many open channels of one peer and origin
	// get their own series (the lowest IDs).
	MaxChannelSeries = 16
	// OtherPeer is the peer label of the sessions over MaxPeerSeries.
	OtherPeer = "_other"
	// peerKeyPrefix is how much of an unnamed peer's key labels it.
	peerKeyPrefix = 12
)

// Handshake failure reasons (pool_handshake_failures_total{reason}), as the
// node classifies the errors of pool.Config.OnHandshakeError.
const (
	ReasonUnauthorized   = "unauthorized"
	ReasonClockSkew      = "clock_skew"
	ReasonWrongServer    = "wrong_server"
	ReasonSelfConnection = "self_connection"
	ReasonCompromised    = "compromised"
	ReasonTimeout        = "timeout"
	ReasonClosed         = "connection_closed"
	ReasonOther          = "other"
)

// Reasons are the handshake failure reasons, always exported (0 until
// seen); a reason not listed here is exported once seen.
var Reasons = []string{ReasonUnauthorized, ReasonClockSkew, ReasonWrongServer, ReasonSelfConnection,
	ReasonCompromised, ReasonTimeout, ReasonClosed, ReasonOther}

// Source is what the Collector reads: the node.
type Source interface {
	Snapshot() Snapshot
}

// Snapshot is a node's figures at one instant.
type Snapshot struct {
	Version     string    // the node's version (pool_build_info)
	Started     time.Time // when the node started
	Compromised bool      // the node refuses new sessions (draft §17.3)

	// Listening: the node has a listener, and Handshakes are its counters.
	Listening  bool
	Handshakes Handshakes

	SelftestRuns  uint64
	ProofFailures uint64 // sessions whose peer sent a wrong INTEGRITY proof

	// ConfigVersion is the running configuration's version; 0 until
	// versioned configuration is wired into the node.
	ConfigVersion uint64
	// Journal reports the change journal; nil (no series) until the
	// journal is wired into the node.
	Journal func() Journal

	Sessions []Session // oldest first

	// Bridges are the counters of the node's bridge routes.
	Bridges []BridgeRoute
}

// BridgeRoute is one bridge route's counters (internal/bridge).
type BridgeRoute struct {
	Side                   string // "tcp2pool" or "pool2tcp"
	Route                  string
	Conns, Refused, Errors uint64
	Active                 int64
	BytesUp, BytesDown     uint64 // client → target, and back
}

// Handshakes are the listener's counters (pool.ListenerStats) and the
// node's classification of failed handshakes.
type Handshakes struct {
	Accepted           uint64
	Failed             uint64
	RefusedPreauth     uint64
	RefusedCompromised uint64
	Challenges         uint64
	// FailedBy counts failed handshakes by reason (Reasons); unknown
	// reasons are exported as they are.
	FailedBy map[string]uint64
}

// Journal is the change journal's state.
type Journal struct {
	Entries uint64
	Head    [32]byte // the chain head (its first 6 bytes are exported)
}

// Session is one live session's figures.
type Session struct {
	Peer     string // the configured peer's name, or ""
	PeerKey  string // the peer's key, text form
	Inbound  bool
	Packets  Pair // whole packets sent and received
	Bytes    Pair // application bytes on channels
	Rekeys   uint64
	Dropped  uint64 // datagram packets dropped: failed authentication or replayed
	RTT      time.Duration
	Jitter   time.Duration
	Samples  uint64 // RTT samples; RTT and jitter are unknown while 0
	LossIn   uint32 // ppm, the peer's packets toward this node, measured here
	LossOut  uint32 // ppm, this node's packets toward the peer, from the peer's counters
	MTU      int
	Overload Pair // OVERLOAD notices sent and received
	Paused   bool // holding DATA because the peer asked

	IntegrityVerified, IntegrityFailed, IntegrityTimeouts uint64

	Channels []Channel // the open channels
}

// Pair is a figure in each direction.
type Pair struct{ Sent, Received uint64 }

// Channel is an open channel's counters.
type Channel struct {
	ID    uint8
	Bytes Pair
}

// PeerLabel is the peer label of a session: its name, or the start of its
// key.
func (s *Session) PeerLabel() string {
	if s.Peer != "" {
		return s.Peer
	}
	if len(s.PeerKey) > peerKeyPrefix {
		return s.PeerKey[:peerKeyPrefix]
	}
	return s.PeerKey
}

func origin(inbound bool) string {
	if inbound {
		return "inbound"
	}
	return "outbound"
}

// Collector is a prometheus.Collector of a Source's figures.
type Collector struct {
	src Source

	buildInfo, startTime, uptime, compromised, configVersion *prometheus.Desc
	journalEntries, journalHead                              *prometheus.Desc
	selftestRuns, proofFailures                              *prometheus.Desc
	handshakes, handshakeFailures, challenges                *prometheus.Desc
	sessions, peerSessions                                   *prometheus.Desc
	bytes, packets, channelBytes                             *prometheus.Desc
	rtt, jitter, loss, mtu, paused                           *prometheus.Desc
	rekeys, dropped, overload, integrity                     *prometheus.Desc
	bridgeConns, bridgeFailures, bridgeOpen, bridgeBytes     *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector reading src at every scrape.
func NewCollector(src Source) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pool_"+name, help, labels, nil)
	}
	pl := []string{"peer", "origin"}
	with := func(extra ...string) []string { return append(append([]string{}, pl...), extra...) }
	return &Collector{src: src,
		buildInfo:         d("build_info", "Always 1; the labels say which build of the node runs.", "version", "goversion"),
		startTime:         d("node_start_time_seconds", "When the node started, in seconds since the Unix epoch."),
		uptime:            d("node_uptime_seconds", "How long the node has been running."),
		compromised:       d("node_compromised", "1 when the node is compromised (a runtime integrity check failed) and refuses every new session until restarted, else 0."),
		configVersion:     d("config_version", "The version of the running configuration file (0 when versioning is off)."),
		journalEntries:    d("journal_entries", "Entries in the node's change journal."),
		journalHead:       d("journal_head", "The change journal's chain head: its first 6 bytes as an integer, to compare with a peer's replica."),
		selftestRuns:      d("selftest_runs_total", "Rounds of runtime integrity self-tests run since the node started."),
		proofFailures:     d("integrity_proof_failures_total", "Sessions whose peer answered an INTEGRITY challenge with a wrong proof, since the node started."),
		handshakes:        d("handshakes_total", "Inbound handshakes by outcome: accepted, failed, refused_preauth (over the pre-authentication caps), refused_compromised.", "outcome"),
		handshakeFailures: d("handshake_failures_total", "Failed inbound handshakes by reason.", "reason"),
		challenges:        d("handshake_challenges_total", "CHALLENGEs the listener sent."),
		sessions:          d("sessions", "Live sessions by origin (inbound: accepted by this node's listener; outbound: dialed to a configured peer).", "origin"),
		peerSessions:      d("peer_sessions", "Live sessions by peer and origin.", pl...),
		bytes:             d("peer_bytes_total", "Application bytes on channels, by direction, of the live sessions.", with("direction")...),
		packets:           d("peer_packets_total", "Packets, by direction, of the live sessions.", with("direction")...),
		channelBytes:      d("peer_channel_bytes_total", "Application bytes by open channel and direction.", with("channel", "direction")...),
		rtt:               d("peer_rtt_seconds", "Smoothed round-trip time, as this node measured it.", pl...),
		jitter:            d("peer_jitter_seconds", "Smoothed round-trip time variation, as this node measured it.", pl...),
		loss:              d("peer_loss_ratio", "Packet loss over the last heartbeat interval: received (the peer's packets, measured here), sent (this node's packets, from the peer's counters).", with("direction")...),
		mtu:               d("peer_mtu_bytes", "Path MTU toward the peer, in POOL packet bytes.", pl...),
		paused:            d("peer_paused", "1 while this node holds DATA because the peer sent OVERLOAD, else 0.", pl...),
		rekeys:            d("peer_rekeys_total", "Rekeys completed.", pl...),
		dropped:           d("peer_dropped_packets_total", "Datagram packets dropped because they failed authentication or the replay window.", pl...),
		overload:          d("peer_overload_notices_total", "OVERLOAD notices, by direction.", with("direction")...),
		integrity:         d("peer_integrity_checks_total", "INTEGRITY checks of the peer by result: verified, failed, timeout.", with("result")...),
		bridgeConns:       d("bridge_connections_total", "Bridged TCP connections requested so far, by side and route.", "side", "route"),
		bridgeFailures:    d("bridge_failures_total", "Bridged connections that failed, by side, route and kind: refused (the far side's policy or target said no), error (reset mid-transfer, or the peer unreachable).", "side", "route", "kind"),
		bridgeOpen:        d("bridge_connections_open", "Bridged TCP connections open now, by side and route.", "side", "route"),
		bridgeBytes:       d("bridge_bytes_total", "Bytes carried by the bridge, by side, route and direction (up: client to target; down: back).", "side", "route", "direction"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.startTime, c.uptime, c.compromised, c.configVersion,
		c.journalEntries, c.journalHead, c.selftestRuns, c.proofFailures, c.handshakes, c.handshakeFailures,
		c.challenges, c.sessions, c.peerSessions, c.bytes, c.packets, c.channelBytes, c.rtt, c.jitter, c.loss,
		c.mtu, c.paused, c.rekeys, c.dropped, c.overload, c.integrity, c.bridgeConns, c.bridgeFailures, c.bridgeOpen, c.bridgeBytes} {
		ch <- d
	}
}

// group is the sessions of one peer label and origin.
type group struct {
	peer, origin string
	n            int
	sum          Session // counters summed
	last         *Session
	channels     map[uint8]Pair
}

// Collect reads a Snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	version := s.Version
	if version == "" {
		version = "unknown"
	}
	gauge(c.buildInfo, 1, version, runtime.Version())
	if !s.Started.IsZero() {
		gauge(c.startTime, float64(s.Started.UnixNano())/1e9)
		gauge(c.uptime, time.Since(s.Started).Seconds())
	}
	gauge(c.compromised, b2f(s.Compromised))
	gauge(c.configVersion, float64(s.ConfigVersion))
	if s.Journal != nil {
		j := s.Journal()
		gauge(c.journalEntries, float64(j.Entries))
		var h uint64
		for _, b := range j.Head[:6] {
			h = h<<8 | uint64(b)
		}
		gauge(c.journalHead, float64(h))
	}
	counter(c.selftestRuns, s.SelftestRuns)
	counter(c.proofFailures, s.ProofFailures)
	for _, b := range s.Bridges {
		counter(c.bridgeConns, b.Conns, b.Side, b.Route)
		counter(c.bridgeFailures, b.Refused, b.Side, b.Route, "refused")
		counter(c.bridgeFailures, b.Errors, b.Side, b.Route, "error")
		gauge(c.bridgeOpen, float64(b.Active), b.Side, b.Route)
		counter(c.bridgeBytes, b.BytesUp, b.Side, b.Route, "up")
		counter(c.bridgeBytes, b.BytesDown, b.Side, b.Route, "down")
	}

	if s.Listening {
		h := s.Handshakes
		counter(c.handshakes, h.Accepted, "accepted")
		counter(c.handshakes, h.Failed, "failed")
		counter(c.handshakes, h.RefusedPreauth, "refused_preauth")
		counter(c.handshakes, h.RefusedCompromised, "refused_compromised")
		counter(c.challenges, h.Challenges)
		seen := map[string]bool{}
		for _, r := range Reasons {
			seen[r] = true
			counter(c.handshakeFailures, h.FailedBy[r], r)
		}
		extra := make([]string, 0)
		for r := range h.FailedBy {
			if !seen[r] {
				extra = append(extra, r)
			}
		}
		sort.Strings(extra)
		for _, r := range extra {
			counter(c.handshakeFailures, h.FailedBy[r], r)
		}
	}

	// Sessions, grouped by peer label and origin.
	var in, out int
	groups := map[[2]string]*group{}
	var order []*group
	peers := map[string]bool{}
	for i := range s.Sessions {
		ss := &s.Sessions[i]
		if ss.Inbound {
			in++
		} else {
			out++
		}
		peer := ss.PeerLabel()
		if !peers[peer] {
			if len(peers) >= MaxPeerSeries {
				peer = OtherPeer
			} else {
				peers[peer] = true
			}
		}
		k := [2]string{peer, origin(ss.Inbound)}
		g := groups[k]
		if g == nil {
			g = &group{peer: k[0], origin: k[1], channels: map[uint8]Pair{}}
			groups[k] = g
			order = append(order, g)
		}
		g.add(ss)
	}
	gauge(c.sessions, float64(in), "inbound")
	gauge(c.sessions, float64(out), "outbound")
	for _, g := range order {
		p, o := g.peer, g.origin
		gauge(c.peerSessions, float64(g.n), p, o)
		counter(c.bytes, g.sum.Bytes.Sent, p, o, "sent")
		counter(c.bytes, g.sum.Bytes.Received, p, o, "received")
		counter(c.packets, g.sum.Packets.Sent, p, o, "sent")
		counter(c.packets, g.sum.Packets.Received, p, o, "received")
		counter(c.rekeys, g.sum.Rekeys, p, o)
		counter(c.dropped, g.sum.Dropped, p, o)
		counter(c.overload, g.sum.Overload.Sent, p, o, "sent")
		counter(c.overload, g.sum.Overload.Received, p, o, "received")
		counter(c.integrity, g.sum.IntegrityVerified, p, o, "verified")
		counter(c.integrity, g.sum.IntegrityFailed, p, o, "failed")
		counter(c.integrity, g.sum.IntegrityTimeouts, p, o, "timeout")
		l := g.last
		if l.Samples > 0 {
			gauge(c.rtt, l.RTT.Seconds(), p, o)
			gauge(c.jitter, l.Jitter.Seconds(), p, o)
		}
		gauge(c.loss, float64(l.LossIn)/1e6, p, o, "received")
		gauge(c.loss, float64(l.LossOut)/1e6, p, o, "sent")
		if l.MTU > 0 {
			gauge(c.mtu, float64(l.MTU), p, o)
		}
		gauge(c.paused, b2f(l.Paused), p, o)
		ids := make([]int, 0, len(g.channels))
		for id := range g.channels {
			ids = append(ids, int(id))
		}
		sort.Ints(ids)
		for _, id := range ids[:min(len(ids), MaxChannelSeries)] {
			cb := g.channels[uint8(id)]
			cs := strconv.Itoa(id)
			counter(c.channelBytes, cb.Sent, p, o, cs, "sent")
			counter(c.channelBytes, cb.Received, p, o, cs, "received")
		}
	}
}

func (g *group) add(s *Session) {
	g.n++
	g.last = s
	g.sum.Bytes.Sent += s.Bytes.Sent
	g.sum.Bytes.Received += s.Bytes.Received
	g.sum.Packets.Sent += s.Packets.Sent
	g.sum.Packets.Received += s.Packets.Received
	g.sum.Rekeys += s.Rekeys
	g.sum.Dropped += s.Dropped
	g.sum.Overload.Sent += s.Overload.Sent
	g.sum.Overload.Received += s.Overload.Received
	g.sum.IntegrityVerified += s.IntegrityVerified
	g.sum.IntegrityFailed += s.IntegrityFailed
	g.sum.IntegrityTimeouts += s.IntegrityTimeouts
	for _, ch := range s.Channels {
		p := g.channels[ch.ID]
		p.Sent += ch.Bytes.Sent
		p.Received += ch.Bytes.Received
		g.channels[ch.ID] = p
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
