package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

type fakeSource struct {
	mu sync.Mutex
	s  Snapshot
}

func (f *fakeSource) Snapshot() Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func fakeSnapshot() Snapshot {
	return Snapshot{
		Version: "v1.2.3", Started: time.Now().Add(-time.Minute), Listening: true,
		SelftestRuns: 3, ConfigVersion: 7,
		Handshakes: Handshakes{Accepted: 5, Failed: 4, RefusedPreauth: 2, RefusedCompromised: 1, Challenges: 9,
			FailedBy: map[string]uint64{ReasonUnauthorized: 3, ReasonOther: 1}},
		Sessions: []Session{
			{Peer: "db1", PeerKey: "BUggFsiZI3tHl3dBIfNgXyvou8FbDjNgeVP6jhXVzGY=", Packets: Pair{10, 20}, Bytes: Pair{1000, 2000},
				Rekeys: 1, Dropped: 2, RTT: 1500 * time.Microsecond, Jitter: 250 * time.Microsecond, Samples: 4,
				LossIn: 5000, LossOut: 0, MTU: 1400, Overload: Pair{1, 2}, IntegrityVerified: 3,
				Channels: []Channel{{ID: 3, Bytes: Pair{100, 200}}, {ID: 1, Bytes: Pair{10, 20}}}},
			{PeerKey: "0YLntEl+aAZCnnfUXO6a22wTCpRcpjul7wP4VZ+X+jY=", Inbound: true, Packets: Pair{1, 2}, Bytes: Pair{3, 4}},
			{PeerKey: "0YLntEl+aAZCnnfUXO6a22wTCpRcpjul7wP4VZ+X+jY=", Inbound: true, Packets: Pair{5, 6}, Bytes: Pair{7, 8},
				RTT: time.Millisecond, Samples: 1, MTU: 1200},
		},
	}
}

// TestCollector: the figures of a fake snapshot come out under the
// documented names and labels, and the exposition passes the linter.
func TestCollector(t *testing.T) {
	src := &fakeSource{s: fakeSnapshot()}
	c := NewCollector(src)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := map[string]float64{
		`pool_build_info{goversion="*",version="v1.2.3"}`:                                              1,
		`pool_config_version`:                                                                          7,
		`pool_node_compromised`:                                                                        0,
		`pool_handshakes_total{outcome="accepted"}`:                                                    5,
		`pool_handshakes_total{outcome="refused_compromised"}`:                                         1,
		`pool_handshake_failures_total{reason="unauthorized"}`:                                         3,
		`pool_handshake_failures_total{reason="clock_skew"}`:                                           0,
		`pool_sessions{origin="inbound"}`:                                                              2,
		`pool_sessions{origin="outbound"}`:                                                             1,
		`pool_peer_sessions{origin="inbound",peer="0YLntEl+aAZC"}`:                                     2,
		`pool_peer_bytes_total{direction="sent",origin="outbound",peer="db1"}`:                         1000,
		`pool_peer_bytes_total{direction="received",origin="inbound",peer="0YLntEl+aAZC"}`:             12,
		`pool_peer_packets_total{direction="received",origin="outbound",peer="db1"}`:                   20,
		`pool_peer_rtt_seconds{origin="outbound",peer="db1"}`:                                          0.0015,
		`pool_peer_rtt_seconds{origin="inbound",peer="0YLntEl+aAZC"}`:                                  0.001,
		`pool_peer_jitter_seconds{origin="outbound",peer="db1"}`:                                       0.00025,
		`pool_peer_loss_ratio{direction="received",origin="outbound",peer="db1"}`:                      0.005,
		`pool_peer_mtu_bytes{origin="outbound",peer="db1"}`:                                            1400,
		`pool_peer_mtu_bytes{origin="inbound",peer="0YLntEl+aAZC"}`:                                    1200,
		`pool_peer_rekeys_total{origin="outbound",peer="db1"}`:                                         1,
		`pool_peer_dropped_packets_total{origin="outbound",peer="db1"}`:                                2,
		`pool_peer_overload_notices_total{direction="received",origin="outbound",peer="db1"}`:          2,
		`pool_peer_integrity_checks_total{origin="outbound",peer="db1",result="verified"}`:             3,
		`pool_peer_channel_bytes_total{channel="3",direction="received",origin="outbound",peer="db1"}`: 200,
		`pool_selftest_runs_total`:                                                                     3,
	}
	got := gather(t, reg)
	for k, v := range want {
		g, ok := lookup(got, k)
		if !ok {
			t.Errorf("no series %s", k)
		} else if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	if u, _ := lookup(got, "pool_node_uptime_seconds"); u < 59 || u > 120 {
		t.Errorf("uptime %v", u)
	}
	for _, absent := range []string{"pool_journal_entries", "pool_journal_head", `pool_peer_rtt_seconds{origin="inbound",peer="0YLntEl+aAZC"}x`} {
		if _, ok := lookup(got, absent); ok {
			t.Errorf("series %s present", absent)
		}
	}

	// Once the journal is there, its series are.
	src.mu.Lock()
	src.s.Journal = func() Journal { return Journal{Entries: 42, Head: [32]byte{0, 0, 0, 0, 1, 2, 0xff}} }
	src.s.Compromised = true
	src.mu.Unlock()
	got = gather(t, reg)
	for k, v := range map[string]float64{"pool_journal_entries": 42, "pool_journal_head": 0x0102, "pool_node_compromised": 1} {
		if g, _ := lookup(got, k); g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}

	// The exposition passes the linter.
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestCaps: peers over MaxPeerSeries are folded into "_other", channels
// over MaxChannelSeries are left out.
func TestCaps(t *testing.T) {
	var s Snapshot
	for i := range MaxPeerSeries + 10 {
		ss := Session{Peer: fmt.Sprintf("p%03d", i), Bytes: Pair{Sent: 1}}
		if i == 0 {
			for id := range 40 {
				ss.Channels = append(ss.Channels, Channel{ID: uint8(id), Bytes: Pair{Sent: 1}})
			}
		}
		s.Sessions = append(s.Sessions, ss)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(&fakeSource{s: s}))
	got := gather(t, reg)
	if v, _ := lookup(got, `pool_peer_bytes_total{direction="sent",origin="outbound",peer="_other"}`); v != 10 {
		t.Errorf("_other bytes = %v, want 10", v)
	}
	peers, chans := map[string]bool{}, 0
	for k := range got {
		if strings.HasPrefix(k, "pool_peer_sessions{") {
			peers[k] = true
		}
		if strings.HasPrefix(k, "pool_peer_channel_bytes_total{") && strings.Contains(k, `direction="sent"`) {
			chans++
		}
	}
	if len(peers) != MaxPeerSeries+1 || chans != MaxChannelSeries {
		t.Errorf("%d peer series, %d channel series; want %d, %d", len(peers), chans, MaxPeerSeries+1, MaxChannelSeries)
	}
}

// TestServer: /metrics and /healthz, and a clear error for a port in use.
func TestServer(t *testing.T) {
	var healthErr error
	var mu sync.Mutex
	health := func() error { mu.Lock(); defer mu.Unlock(); return healthErr }
	srv, err := Listen("127.0.0.1:0", &fakeSource{s: fakeSnapshot()}, health, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	base := "http://" + srv.Addr().String()
	code, body := get(t, base+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body = get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `pool_peer_bytes_total{direction="sent",origin="outbound",peer="db1"} 1000`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mu.Lock()
	healthErr = errors.New("node compromised: bad proof")
	mu.Unlock()
	if code, body = get(t, base+"/healthz"); code != 503 || !strings.Contains(body, "bad proof") {
		t.Errorf("/healthz when compromised: %d %q", code, body)
	}

	_, err = Listen(srv.Addr().String(), &fakeSource{}, health, nil)
	if err == nil || !strings.Contains(err.Error(), "metrics_listen") || !strings.Contains(err.Error(), "is using that port") {
		t.Errorf("second server on the same port: %v", err)
	}
	if err := srv.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the server still accepts after Close")
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gather returns the registry's series as `name{label="value",...}` (labels
// sorted, as the registry gives them) to their values.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				k += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[k] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[k] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// lookup finds key in got; a label value "*" matches any value.
func lookup(got map[string]float64, key string) (float64, bool) {
	if v, ok := got[key]; ok {
		return v, true
	}
	if !strings.Contains(key, `"*"`) {
		return 0, false
	}
	pre, post, _ := strings.Cut(key, `"*"`)
	for k, v := range got {
		if strings.HasPrefix(k, pre) && strings.HasSuffix(k, post) {
			return v, true
		}
	}
	return 0, false
}
