package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/metrics"
)

// The Prometheus endpoint (docs/OPERATIONS.md, METRICS): the node is the
// metrics.Source; every figure is read from where the node keeps it
// already, at scrape time.

// failCounts counts failed inbound handshakes by reason (handshakeReason);
// the zero value is ready.
type failCounts struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (f *failCounts) add(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]uint64{}
	}
	f.m[reason]++
}

func (f *failCounts) snapshot() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.m))
	for k, v := range f.m {
		out[k] = v
	}
	return out
}

// checkMetricsListen validates metrics_listen: host:port with a numeric
// port ("127.0.0.1:9254", "[::1]:9254"; ":9254" listens on every address).
func checkMetricsListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \"127.0.0.1:%d\")", s, DefaultMetricsPort)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" {
		return fmt.Errorf("bad port %q in %q (want a number from 0 to 65535)", port, s)
	} else if p == 0 && host == "" {
		return fmt.Errorf("%q: name a host and a port (e.g. \"127.0.0.1:%d\")", s, DefaultMetricsPort)
	}
	return nil
}

// startMetrics serves /metrics and /healthz when metrics_listen is set.
func (n *Node) startMetrics(cfg *Config) error {
	if cfg.MetricsListen == "" {
		return nil
	}
	srv, err := metrics.Listen(cfg.MetricsListen, n, n.healthz, n.log)
	if err != nil {
		return err
	}
	n.metrics = srv
	n.log.Info("metrics endpoint listening", "address", srv.Addr().String(), "paths", "/metrics /healthz")
	return nil
}

// stopMetrics stops the metrics server, if any.
func (n *Node) stopMetrics() {
	if n.metrics == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = n.metrics.Close(ctx)
}

// MetricsAddr returns the metrics server's address, or nil when
// metrics_listen is not set.
func (n *Node) MetricsAddr() net.Addr {
	if n.metrics == nil {
		return nil
	}
	return n.metrics.Addr()
}

// healthz is /healthz's verdict: nil while the node runs and is not
// compromised.
func (n *Node) healthz() error {
	if n.ctx.Err() != nil {
		return errors.New("the node is shutting down")
	}
	if err := n.health(); err != nil {
		return fmt.Errorf("node compromised, refusing every new session until restarted: %v", err)
	}
	return nil
}

// Snapshot is metrics.Source: the node's live figures.
func (n *Node) Snapshot() metrics.Snapshot {
	n.health() // records a failure the monitor found but has not reported yet
	s := metrics.Snapshot{Version: n.version, Started: n.started, Compromised: n.compromise.Load() != nil,
		SelftestRuns: n.mon.Runs(), ProofFailures: n.proofFailures.Load()}
	if ls, ok := n.listenerStats(); ok {
		s.Listening = true
		s.Handshakes = metrics.Handshakes{Accepted: ls.Sessions, Failed: ls.FailedHandshakes,
			RefusedPreauth: ls.RefusedPreAuth, RefusedCompromised: ls.RefusedUnhealthy,
			Challenges: ls.Handshake.Challenges, FailedBy: n.hsFailed.snapshot()}
	}
	if cs := n.configStatus(); cs.Enabled && cs.Version > 0 {
		s.ConfigVersion = uint64(cs.Version)
	}
	if n.journal != nil {
		s.Journal = func() metrics.Journal {
			js := n.journalStatus()
			j := metrics.Journal{Entries: js.Entries}
			_, _ = hex.Decode(j.Head[:], []byte(js.Head))
			return j
		}
	}
	for _, b := range n.BridgeStatus() {
		s.Bridges = append(s.Bridges, metrics.BridgeRoute{Side: b.Side, Route: b.Route, Conns: b.Conns,
			Refused: b.Refused, Errors: b.Errors, Active: b.Active, BytesUp: b.BytesUp, BytesDown: b.BytesDown})
	}
	entries, names := n.listed()
	s.Sessions = make([]metrics.Session, 0, len(entries))
	for _, e := range entries {
		st := e.s.Stats()
		tm := e.s.Telemetry()
		ov := e.s.Overload()
		ig := e.s.Integrity()
		l := tm.Local
		ms := metrics.Session{Peer: names[e.s.Peer()], PeerKey: e.s.Peer().String(), Inbound: e.inbound,
			Packets: metrics.Pair{Sent: st.PacketsSent, Received: st.PacketsReceived},
			Bytes:   metrics.Pair{Sent: st.BytesSent, Received: st.BytesReceived},
			Rekeys:  st.Rekeys, Dropped: st.Dropped,
			RTT: l.RTT, Jitter: l.Jitter, Samples: l.RTTSamples, LossIn: l.LossPPM, LossOut: l.OutLossPPM, MTU: l.MTU,
			Overload: metrics.Pair{Sent: ov.Sent, Received: ov.Received}, Paused: ov.Paused,
			IntegrityVerified: ig.Verified, IntegrityFailed: ig.Failed, IntegrityTimeouts: ig.Timeouts,
			Channels: make([]metrics.Channel, 0, len(tm.ChannelsStats))}
		for _, c := range tm.ChannelsStats {
			ms.Channels = append(ms.Channels, metrics.Channel{ID: c.ID,
				Bytes: metrics.Pair{Sent: c.BytesSent, Received: c.BytesReceived}})
		}
		s.Sessions = append(s.Sessions, ms)
	}
	return s
}
