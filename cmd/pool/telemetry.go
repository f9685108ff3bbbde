package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pool-go/pool/internal/node"
	"github.com/spf13/cobra"
)

func newTelemetryCmd() *cobra.Command {
	var f ctlFlags
	cmd := &cobra.Command{
		Use:   "telemetry [--control PATH] [--json] [SESSION-ID-PREFIX]",
		Short: "Show the running node's per-session measurements and the peers' reports",
		Long: `telemetry shows, for each live session of the running node (oldest first),
what the session's heartbeats tell: one block per session with

  - the session: its ID, peer, direction, remote address and age, key
    epoch and rekeys, packet and data counters;
  - two views side by side, never merged: OURS, what this node measured
    itself (round-trip time, jitter, inbound loss and throughput, the
    outbound loss and throughput derived from the peer's counters, path
    MTU, heartbeats), and PEER'S REPORT, what the peer last reported about
    itself, as it sent it, with the report's age. "in" is toward the side
    that measured, so our "loss out" and the peer's "loss in" describe the
    same packets and should agree;
  - the cross-checks (state digests verified, anomalies, the last one),
    backpressure (OVERLOAD notices, whether this node is holding data for
    the peer), INTEGRITY checks (the peer's proofs verified or failed,
    challenges unanswered, the peer's challenges answered);
  - the open channels: bytes sent, received, and received but not read.

A SESSION-ID-PREFIX (hex digits, as "pool sessions" shows IDs) keeps the
sessions whose ID starts with it; it is an error if none does.

Sessions send their telemetry every heartbeat_interval (default 5s): until
the first report arrives the peer's column shows "-". --json prints the
node's answer, with durations in the unit their name ends with (_us
microseconds, _s seconds); docs/OPERATIONS.md describes every field.

` + ctlHelp + `

Examples:

  pool telemetry
  pool telemetry 3f2a
  pool telemetry --json | jq '.[] | {id, rtt_us: .local.rtt_us, peer_rtt_us: .peer_report.rtt_us}'`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := node.Request{Method: "telemetry"}
			if len(args) == 1 {
				if err := node.CheckSessionPrefix(args[0]); err != nil {
					return usageError{err}
				}
				req.Session = args[0]
			}
			var raw json.RawMessage
			if err := ctlRequest(cmd.Context(), &f, req, &raw); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.json {
				return ctlPrintJSON(w, raw)
			}
			var ts []node.TelemetryInfo
			if err := json.Unmarshal(raw, &ts); err != nil {
				return fmt.Errorf("the node's telemetry: %v", err)
			}
			if len(ts) == 0 {
				fmt.Fprintln(w, "no sessions")
				return nil
			}
			for i, t := range ts {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := printTelemetry(w, &t); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// printTelemetry writes one session's block.
func printTelemetry(w io.Writer, t *node.TelemetryInfo) error {
	peer := t.PeerKey
	if t.PeerName != "" {
		peer = t.PeerName + " (" + ctlShortKey(t.PeerKey) + ")"
	}
	fmt.Fprintf(w, "session %s  %s  %s  %s  up %s\n", t.ID, peer, t.Direction, t.Remote, ctlAge(t.Established))
	fmt.Fprintf(w, "  epoch %d (%d rekeys), packets out/in %d/%d, data out/in %s/%s\n\n", t.Epoch, t.Rekeys,
		t.PacketsSent, t.PacketsReceived, ctlBytes(t.BytesSent), ctlBytes(t.BytesReceived))

	l, p := &t.Local, t.PeerReport
	// theirs is the peer's cell, "-" until it reported.
	theirs := func(f func(*node.PeerReport) string) string {
		if p == nil {
			return "-"
		}
		return f(p)
	}
	rtt := func(us int64, samples bool) string {
		if !samples {
			return "-"
		}
		return (time.Duration(us) * time.Microsecond).String()
	}
	tw := ctlTable(w)
	row := func(k, ours, peers string) { fmt.Fprintf(tw, "  %s\t%s\t%s\n", k, ours, peers) }
	row("", "OURS", "PEER'S REPORT")
	row("rtt", rtt(l.RTTUs, l.RTTSamples > 0), theirs(func(p *node.PeerReport) string { return rtt(p.RTTUs, p.RTTUs > 0) }))
	row("jitter", rtt(l.JitterUs, l.RTTSamples > 0), theirs(func(p *node.PeerReport) string { return rtt(p.JitterUs, p.RTTUs > 0) }))
	row("loss in", fmt.Sprintf("%d ppm", l.LossInPPM), theirs(func(p *node.PeerReport) string { return fmt.Sprintf("%d ppm", p.LossInPPM) }))
	row("throughput in", ctlBits(l.ThroughputInBps), theirs(func(p *node.PeerReport) string { return ctlBits(uint64(p.ThroughputInBps)) }))
	row("loss out (derived)", fmt.Sprintf("%d ppm", l.LossOutPPM), "-")
	row("throughput out (derived)", ctlBits(l.ThroughputOutBps), "-")
	row("mtu", fmt.Sprint(l.MTU), theirs(func(p *node.PeerReport) string { return fmt.Sprint(p.MTU) }))
	row("heartbeats sent/received", fmt.Sprintf("%d/%d", l.HeartbeatsSent, l.HeartbeatsRecv), "-")
	row("packets received", fmt.Sprint(t.PacketsReceived), theirs(func(p *node.PeerReport) string { return fmt.Sprint(p.RxPackets) }))
	row("wire bytes received", "-", theirs(func(p *node.PeerReport) string { return ctlBytes(p.RxBytes) }))
	row("rekeys", fmt.Sprint(t.Rekeys), theirs(func(p *node.PeerReport) string { return fmt.Sprint(p.Rekeys) }))
	row("session age", ctlSeconds(l.UptimeS), theirs(func(p *node.PeerReport) string { return ctlSeconds(p.UptimeS) }))
	row("queue depth", "-", theirs(func(p *node.PeerReport) string { return fmt.Sprint(p.QueueDepth) }))
	row("journal head", "-", theirs(func(p *node.PeerReport) string { return p.JournalHead }))
	row("report age", "-", theirs(func(p *node.PeerReport) string { return ctlSeconds(p.AgeS) }))
	if err := tw.Flush(); err != nil {
		return err
	}
	if p == nil {
		fmt.Fprintln(w, "  (no report from the peer yet: it sends one every heartbeat interval)")
	}
	fmt.Fprintln(w)

	anomaly := ""
	if t.LastAnomaly != "" {
		anomaly = " (last: " + t.LastAnomaly + ")"
	}
	fmt.Fprintf(w, "  cross-checks: %d state digests verified, %d anomalies%s\n", t.DigestChecks, t.Anomalies, anomaly)
	o := t.Overload
	paused := "no"
	if o.Paused {
		paused = "yes, the peer asked this node to hold its data"
	}
	fmt.Fprintf(w, "  overload:     %d notices sent, %d received; paused: %s; unread %s\n",
		o.NoticesSent, o.NoticesReceived, paused, ctlBytes(uint64(max(o.UnreadBytes, 0))))
	ig := t.Integrity
	fmt.Fprintf(w, "  integrity:    %d proofs verified, %d failed, %d timeouts, %d unmatched; %d challenges answered\n",
		ig.Verified, ig.Failed, ig.Timeouts, ig.Unmatched, ig.Answered)
	fmt.Fprintln(w)

	if len(t.Channels) == 0 {
		fmt.Fprintln(w, "  no open channels")
		return nil
	}
	tw = ctlTable(w)
	fmt.Fprintln(tw, "  CHANNEL\tSENT\tRECEIVED\tBUFFERED")
	for _, c := range t.Channels {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", c.ID, ctlBytes(c.BytesSent), ctlBytes(c.BytesReceived), ctlBytes(uint64(max(c.Buffered, 0))))
	}
	return tw.Flush()
}

// ctlSeconds formats a number of seconds: "0.250s" under 10 s, else as
// ctlDuration does.
func ctlSeconds(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.3fs", s)
	}
	return ctlDuration(time.Duration(s * float64(time.Second)))
}
