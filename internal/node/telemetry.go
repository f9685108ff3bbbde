package node

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pool-go/pool"
)

// maxSessionPrefix is the length of a Session ID in hex digits.
const maxSessionPrefix = 32

// CheckSessionPrefix reports whether p can start a Session ID: 1 to 32
// hex digits, either case.
func CheckSessionPrefix(p string) error {
	ok := len(p) >= 1 && len(p) <= maxSessionPrefix
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
	if !ok {
		return fmt.Errorf("bad session ID prefix %q: want 1 to %d hex digits, the start of an ID as \"pool sessions\" shows it",
			p, maxSessionPrefix)
	}
	return nil
}

// Telemetry returns the figures of the live sessions, oldest first; a
// non-empty prefix keeps those whose ID starts with it, and it is an
// error if none does.
func (n *Node) Telemetry(prefix string) ([]TelemetryInfo, error) {
	if prefix != "" {
		if err := CheckSessionPrefix(prefix); err != nil {
			return nil, err
		}
		prefix = strings.ToLower(prefix)
	}
	entries, names := n.listed()
	out := make([]TelemetryInfo, 0, len(entries))
	for _, e := range entries {
		id := e.s.ID()
		if !strings.HasPrefix(fmt.Sprintf("%x", id[:]), prefix) {
			continue
		}
		out = append(out, telemetryOf(e, names))
	}
	if prefix != "" && len(out) == 0 {
		return nil, fmt.Errorf("no session ID starts with %q (the node has %d live sessions; \"pool sessions\" lists them)",
			prefix, len(entries))
	}
	return out, nil
}

// telemetryOf collects one session's figures. The peer report's age is
// measured from when the node took the session over, which is at most
// the handshake's last round trip after the session clock started, so it
// reads at most that much short.
func telemetryOf(e *sessionEntry, names map[pool.PublicKey]string) TelemetryInfo {
	st := e.s.Stats()
	si := sessionInfo(e, names, st)
	tm := e.s.Telemetry()
	ov := e.s.Overload()
	ig := e.s.Integrity()
	l := tm.Local
	ti := TelemetryInfo{ID: si.ID, PeerKey: si.PeerKey, PeerName: si.PeerName, Direction: si.Direction,
		Remote: si.Remote, Established: si.Established, Epoch: st.Epoch, Rekeys: st.Rekeys,
		PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived,
		BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		Local: Measurements{RTTUs: l.RTT.Microseconds(), JitterUs: l.Jitter.Microseconds(), RTTSamples: l.RTTSamples,
			LossInPPM: l.LossPPM, ThroughputInBps: l.ThroughputBps, LossOutPPM: l.OutLossPPM,
			ThroughputOutBps: l.OutThroughput, MTU: l.MTU, HeartbeatsSent: l.HeartbeatsSent,
			HeartbeatsRecv: l.HeartbeatsRecv, UptimeS: seconds(time.Since(e.established))},
		DigestChecks: tm.DigestChecks, Anomalies: tm.Anomalies, LastAnomaly: tm.LastAnomaly,
		Overload: OverloadInfo{NoticesSent: ov.Sent, NoticesReceived: ov.Received, Paused: ov.Paused,
			UnreadBytes: ov.Unread},
		Integrity: IntegrityChecks{Verified: ig.Verified, Failed: ig.Failed, Timeouts: ig.Timeouts,
			Unmatched: ig.Unmatched, Answered: ig.Answered},
		Channels: make([]ChannelInfo, 0, len(tm.ChannelsStats)),
	}
	if p := tm.Peer; p.At != 0 {
		age := max(time.Since(e.established)-p.At, 0)
		ti.PeerReport = &PeerReport{AgeS: seconds(age), RTTUs: p.RTT.Microseconds(), JitterUs: p.Jitter.Microseconds(),
			LossInPPM: p.LossPPM, ThroughputInBps: p.ThroughputBps, MTU: p.MTU, QueueDepth: p.QueueDepth,
			UptimeS: seconds(p.Uptime), Rekeys: p.RekeyCount, ConfigVersion: p.ConfigVersion,
			JournalHead: fmt.Sprintf("%016x", p.JournalHead), RxPackets: p.RxPackets, RxBytes: p.RxBytes}
	}
	for _, c := range tm.ChannelsStats {
		ti.Channels = append(ti.Channels, ChannelInfo{ID: c.ID, BytesSent: c.BytesSent,
			BytesReceived: c.BytesReceived, Buffered: c.Buffered})
	}
	sort.Slice(ti.Channels, func(i, j int) bool { return ti.Channels[i].ID < ti.Channels[j].ID })
	return ti
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }
