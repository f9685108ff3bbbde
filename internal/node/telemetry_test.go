package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// nodeSession returns n's live session with peer, or nil.
func nodeSession(n *Node, peer pool.PublicKey) *pool.Session {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.sessions {
		if s.Peer() == peer {
			return s
		}
	}
	return nil
}

// telemetryOfPeer returns n's telemetry for its session with peer.
func telemetryOfPeer(t *testing.T, n *Node, peer pool.PublicKey) (TelemetryInfo, bool) {
	t.Helper()
	ts, err := n.Telemetry("")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if x.PeerKey == peer.String() {
			return x, true
		}
	}
	return TelemetryInfo{}, false
}

// TestNodeTelemetry: with heartbeat_interval = "100ms" on both nodes, a
// short exchange fills both views of "telemetry" on both sides; a channel
// shows its counters; a session-ID prefix filters, and a bad or unknown
// one is refused.
func TestNodeTelemetry(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	writeFile(t, aPath, readFile(t, aPath)+"heartbeat_interval = \"100ms\"\n")
	a := startNode(t, aPath, Options{})

	// L is a plain listener that accepts channels, which a node does not
	// yet: it gives B's session a channel with data both ways.
	_, lID := newKeyFile(t, dir, "l.key")
	l, err := pool.Listen("127.0.0.1:0", &pool.Config{Identity: lID, AllowList: pool.NewAllowList(bID.Public),
		HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lDone := make(chan error, 1)
	go func() {
		s, err := l.AcceptContext(ctx)
		if err != nil {
			lDone <- err
			return
		}
		defer s.Close()
		ch, err := s.AcceptChannel(ctx)
		if err != nil {
			lDone <- err
			return
		}
		if _, err := io.ReadFull(ch, make([]byte, 1000)); err != nil {
			lDone <- err
			return
		}
		_, err = ch.Write(make([]byte, 500))
		lDone <- err
		<-ctx.Done()
	}()

	bText := dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", a.ListenAddr().String(), aID.Public}, testPeer{"l", l.Addr().String(), lID.Public})
	bText = strings.Replace(bText, `listen = "off"`, "listen = \"off\"\nheartbeat_interval = \"100ms\"", 1)
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), bText), Options{})
	if b.config().HeartbeatInterval != 100*time.Millisecond {
		t.Fatalf("heartbeat_interval %v", b.config().HeartbeatInterval)
	}
	waitFor(t, 10*time.Second, "B connected to A and L", func() bool {
		return peerByName(b, "a").State == StateConnected && peerByName(b, "l").State == StateConnected
	})

	// At 100 ms, both sides report within a second (at the default 5 s
	// it would take over 10).
	var ba, ab TelemetryInfo
	waitFor(t, 5*time.Second, "both views on both sides", func() bool {
		var ok1, ok2 bool
		ba, ok1 = telemetryOfPeer(t, b, aID.Public)
		ab, ok2 = telemetryOfPeer(t, a, bID.Public)
		return ok1 && ok2 && ba.PeerReport != nil && ab.PeerReport != nil &&
			ba.Local.HeartbeatsSent >= 3 && ba.Local.HeartbeatsRecv >= 3 && ba.Local.RTTSamples >= 1 &&
			ab.Local.HeartbeatsSent >= 3 && ab.Local.HeartbeatsRecv >= 3 && ab.Local.RTTSamples >= 1
	})
	if ba.ID != ab.ID || len(ba.ID) != 32 || ba.Direction != "outbound" || ab.Direction != "inbound" ||
		ba.PeerName != "a" || ba.Remote != a.ListenAddr().String() || ab.PeerKey != bID.Public.String() {
		t.Errorf("B's view %+v, A's view %+v", ba, ab)
	}
	for _, x := range []TelemetryInfo{ba, ab} {
		p := x.PeerReport
		if x.Local.MTU <= 0 || x.Local.RTTUs <= 0 || x.Local.UptimeS <= 0 || x.DigestChecks < 1 || x.Anomalies != 0 || x.LastAnomaly != "" ||
			x.PacketsSent == 0 || x.PacketsReceived == 0 || x.Epoch != 0 || x.Rekeys != 0 || x.Channels == nil {
			t.Errorf("session %s: %+v", x.Direction, x)
		}
		if p.MTU == 0 || p.UptimeS <= 0 || p.RxPackets == 0 || p.RxBytes == 0 || p.Rekeys != 0 ||
			len(p.JournalHead) != 16 || p.AgeS < 0 || p.AgeS > 5 {
			t.Errorf("session %s: the peer's report %+v", x.Direction, *p)
		}
		if x.Integrity != (IntegrityChecks{}) || x.Overload != (OverloadInfo{}) {
			t.Errorf("session %s: integrity %+v, overload %+v", x.Direction, x.Integrity, x.Overload)
		}
	}

	// A channel on B's session to L: 1000 bytes out, 500 back unread.
	ch, err := nodeSession(b, lID.Public).OpenChannel(7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lDone:
		if err != nil {
			t.Fatalf("L: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("L did not answer")
	}
	var bl TelemetryInfo
	waitFor(t, 5*time.Second, "the channel's counters", func() bool {
		bl, _ = telemetryOfPeer(t, b, lID.Public)
		return len(bl.Channels) == 1 && bl.Channels[0].Buffered == 500
	})
	if c := bl.Channels[0]; c != (ChannelInfo{ID: 7, BytesSent: 1000, BytesReceived: 500, Buffered: 500}) ||
		bl.BytesSent != 1000 || bl.BytesReceived != 500 || bl.Overload.UnreadBytes != 500 {
		t.Errorf("B's session to L: channels %+v, bytes %d/%d, overload %+v", bl.Channels, bl.BytesSent, bl.BytesReceived, bl.Overload)
	}

	// Over the control socket: a prefix (either case) filters.
	control := b.ControlPath()
	var got []TelemetryInfo
	if err := CallRequest(ctx, control, Request{Method: "telemetry", Session: strings.ToUpper(bl.ID[:6])}, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != bl.ID || got[0].PeerName != "l" {
		t.Errorf("telemetry of %s: %+v", bl.ID[:6], got)
	}
	if err := CallRequest(ctx, control, Request{Method: "telemetry"}, &got); err != nil || len(got) != 2 {
		t.Errorf("telemetry of every session: %d, %v", len(got), err)
	}
	var raw json.RawMessage
	if err := CallRequest(ctx, control, Request{Method: "telemetry", Session: ba.ID}, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"local":{"rtt_us":`, `"peer_report":{"age_s":`, `"heartbeats_received":`, `"journal_head":"`,
		`"overload":{"notices_sent":0,`, `"integrity":{"verified":0,`, `"channels":[]`, `"digest_checks":`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("telemetry JSON lacks %s:\n%s", k, raw)
		}
	}

	other := "0"
	if ba.ID[0] == '0' || bl.ID[0] == '0' {
		other = "f"
		if ba.ID[0] == 'f' || bl.ID[0] == 'f' {
			other = "7"
		}
	}
	for _, tc := range []struct{ prefix, want string }{
		{"xyz", `bad session ID prefix "xyz": want 1 to 32 hex digits`},
		{strings.Repeat("a", 33), "bad session ID prefix"},
		{other + ba.ID[1:4], fmt.Sprintf("no session ID starts with %q (the node has 2 live sessions", other+ba.ID[1:4])},
	} {
		err := CallRequest(ctx, control, Request{Method: "telemetry", Session: tc.prefix}, nil)
		var re *RemoteError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("prefix %q: %v, want %q", tc.prefix, err, tc.want)
		}
	}
	if err := CallRequest(ctx, control, Request{Method: "status", Session: "ab"}, nil); err == nil ||
		!strings.Contains(err.Error(), `method "status" takes no "session"`) {
		t.Errorf("status with a session: %v", err)
	}
	cancel()
}

// TestHeartbeatIntervalConfig: heartbeat_interval is bounded and needs a
// restart.
func TestHeartbeatIntervalConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	text := fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, filepath.Join(dir, "n.sock"))
	path := writeFile(t, filepath.Join(dir, "n.toml"), text)
	cfg, err := LoadConfig(path)
	if err != nil || cfg.HeartbeatInterval != DefaultHeartbeatInterval {
		t.Fatalf("default: %v, %v", cfg, err)
	}
	for _, tc := range []struct{ value, want string }{
		{"50ms", `:4: heartbeat_interval: must be between 100ms and 1m0s, got "50ms"`},
		{"2m", `:4: heartbeat_interval: must be between 100ms and 1m0s, got "2m"`},
		{"soon", `:4: heartbeat_interval: bad duration "soon"`},
		{"-1s", `:4: heartbeat_interval: must be positive`},
	} {
		bad := writeFile(t, filepath.Join(dir, "bad.toml"), text+fmt.Sprintf("heartbeat_interval = %q\n", tc.value))
		if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("heartbeat_interval = %q: %v, want %q", tc.value, err, tc.want)
		}
	}
	for _, v := range []string{"100ms", "1m", "2s"} {
		ok := writeFile(t, filepath.Join(dir, "ok.toml"), text+fmt.Sprintf("heartbeat_interval = %q\n", v))
		if _, err := LoadConfig(ok); err != nil {
			t.Errorf("heartbeat_interval = %q: %v", v, err)
		}
	}
	n := startNode(t, path, Options{})
	writeFile(t, path, text+"heartbeat_interval = \"1s\"\n")
	if _, err := n.Reload(); err == nil || !strings.Contains(err.Error(), "heartbeat_interval (5s -> 1s) cannot change") {
		t.Errorf("reload changing heartbeat_interval: %v", err)
	}
}
