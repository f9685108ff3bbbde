package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pool-go/pool/internal/transport"
	"github.com/pool-go/pool/internal/wire"
)

// eventLog records configuration events.
type eventLog struct {
	mu  sync.Mutex
	evs []ConfigEvent
}

func (l *eventLog) add(e ConfigEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
}

func (l *eventLog) kinds() []ConfigEventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var k []ConfigEventKind
	for _, e := range l.evs {
		k = append(k, e.Kind)
	}
	return k
}

func (l *eventLog) last() ConfigEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.evs) == 0 {
		return ConfigEvent{}
	}
	return l.evs[len(l.evs)-1]
}

func sameKinds(a, b []ConfigEventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dropConn is a test transport: it discards the packets drop selects, as
// a path that loses them would (over a datagram pipe, so the receiver's
// replay window tolerates the gaps).
type dropConn struct {
	transport.Conn
	drop    func(b []byte) bool
	dropped atomic.Int64
}

func (d *dropConn) WritePackets(pkts [][]byte) error {
	keep := pkts[:0:0]
	for _, p := range pkts {
		if d.drop(p) {
			d.dropped.Add(1)
			continue
		}
		keep = append(keep, p)
	}
	return d.Conn.WritePackets(keep)
}

// configPair starts a client (the proposer) and a server with event logs.
func configPair(t *testing.T, datagram bool, drop func([]byte) bool) (cli, srv *Session, cl, sl *eventLog, dc *dropConn) {
	ce, se := handshakePair(t)
	cc, sc := transport.Pipe(transport.PipeConfig{Datagram: datagram})
	cl, sl = &eventLog{}, &eventLog{}
	var conn transport.Conn = cc
	if drop != nil {
		dc = &dropConn{Conn: cc, drop: drop}
		conn = dc
	}
	cli = New(conn, ce, Config{OnConfigChange: cl.add})
	srv = New(sc, se, Config{OnConfigChange: sl.add})
	waitConfirmed(t, srv)
	synctest.Wait()
	return cli, srv, cl, sl, dc
}

var testParams = ConfigParams{HeartbeatMs: 1000, RekeyIntervalS: 1800, RekeyPackets: 1 << 20, MTUMax: 1400}

// TestPeerConfigApplied: a proposal is applied on the receiver at once —
// its heartbeat interval really changes and its telemetry reports the new
// version and ROLLBACK_READY — and with every confirmation request
// delivered it is confirmed at the deadline, on both sides.
func TestPeerConfigApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv, cl, sl, _ := configPair(t, false, nil)
		defer closeBoth(cli, srv)
		v0, p0 := srv.Config()
		if v0 != 0 || p0.HeartbeatMs != 5000 {
			t.Fatalf("initial config %d %+v", v0, p0)
		}
		res, err := cli.ProposeConfig(context.Background(), testParams, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != 1 || res.PrevVersion != 0 || res.PrevHash != wire.ConfigHash(0, &p0) || res.Deadline != 20*time.Second {
			t.Fatalf("result %+v", res)
		}
		if v, p := srv.Config(); v != 1 || p != testParams || srv.heartbeatInterval() != time.Second || srv.mtu() != 1400 {
			t.Fatalf("server config %d %+v, heartbeat %v, mtu %d", v, p, srv.heartbeatInterval(), srv.mtu())
		}
		if srv.configFlags() != wire.FlagRollbackReady {
			t.Errorf("flags %#x while tentative", srv.configFlags())
		}
		// The heartbeat interval really changed: ~10 telemetry HEARTBEATs
		// in 10 s instead of 2.
		before := cli.Telemetry().Local.HeartbeatsRecv
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := cli.Telemetry().Local.HeartbeatsRecv - before; n < 9 || n > 11 {
			t.Errorf("%d heartbeats from the server in 10 s at 1 s", n)
		}
		if got := cli.Telemetry().Peer.ConfigVersion; got != 1 {
			t.Errorf("telemetry config_version %d", got)
		}
		time.Sleep(11 * time.Second) // past the deadline
		synctest.Wait()
		if !sameKinds(sl.kinds(), []ConfigEventKind{ConfigApplied, ConfigConfirmed}) || sl.last().Confirms != 3 || !sl.last().Local {
			t.Errorf("server events %v, last %+v", sl.kinds(), sl.last())
		}
		if !sameKinds(cl.kinds(), []ConfigEventKind{ConfigApplied, ConfigConfirmed}) || cl.last().Local {
			t.Errorf("client events %v", cl.kinds())
		}
		if v, _ := srv.Config(); v != 1 || srv.configFlags() != 0 {
			t.Errorf("after the deadline: version %d flags %#x", v, srv.configFlags())
		}
		if _, err := cli.RollbackConfig(context.Background()); !errors.Is(err, ErrConfigNoPending) {
			t.Errorf("rollback after the deadline: %v", err)
		}
	})
}

// TestPeerConfigSilenceKeeps (P07): with every confirmation request
// suppressed by the transport, the new configuration stays after the
// deadline, and both sides say so.
func TestPeerConfigSilenceKeeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var configs atomic.Int64
		drop := func(b []byte) bool { // every CONFIG after the PROPOSE
			return wire.PacketType(b) == wire.TypeConfig && configs.Add(1) > 1
		}
		cli, srv, cl, sl, dc := configPair(t, true, drop)
		defer closeBoth(cli, srv)
		if _, err := cli.ProposeConfig(context.Background(), testParams, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if dc.dropped.Load() != 3 {
			t.Errorf("%d confirmation requests suppressed, want 3", dc.dropped.Load())
		}
		if v, p := srv.Config(); v != 1 || p != testParams || srv.heartbeatInterval() != time.Second {
			t.Errorf("after a silent deadline: version %d %+v", v, p)
		}
		if !sameKinds(sl.kinds(), []ConfigEventKind{ConfigApplied, ConfigConfirmedBySilence}) || sl.last().Confirms != 0 {
			t.Errorf("server events %v", sl.kinds())
		}
		if !sameKinds(cl.kinds(), []ConfigEventKind{ConfigApplied, ConfigConfirmed}) {
			t.Errorf("client events %v", cl.kinds())
		}
		if srv.Err() != nil || cli.Err() != nil {
			t.Fatal(srv.Err(), cli.Err())
		}
	})
}

// TestPeerConfigRollback: an explicit rollback before the deadline
// restores the exact previous parameters (hash verified), and the
// deadline then changes nothing.
func TestPeerConfigRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv, cl, sl, _ := configPair(t, false, nil)
		defer closeBoth(cli, srv)
		v0, p0 := srv.Config()
		h0, hb0, mtu0 := srv.ConfigHash(), srv.heartbeatInterval(), srv.mtu()
		if _, err := cli.ProposeConfig(context.Background(), testParams, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		res, err := cli.RollbackConfig(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != v0 || res.Hash != h0 || res.Params != p0 || res.PrevVersion != 1 {
			t.Errorf("rollback result %+v", res)
		}
		v, p := srv.Config()
		if v != v0 || p != p0 || srv.ConfigHash() != h0 || wire.ConfigHash(v, &p) != h0 ||
			srv.heartbeatInterval() != hb0 || srv.mtu() != mtu0 || srv.configFlags() != 0 {
			t.Errorf("after rollback: %d %+v hb %v mtu %d", v, p, srv.heartbeatInterval(), srv.mtu())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if !sameKinds(sl.kinds(), []ConfigEventKind{ConfigApplied, ConfigRolledBack}) ||
			!sameKinds(cl.kinds(), []ConfigEventKind{ConfigApplied, ConfigRolledBack}) {
			t.Errorf("events: server %v client %v", sl.kinds(), cl.kinds())
		}
		if e := sl.last(); e.Version != v0 || e.Hash != h0 || e.PrevVersion != 1 || e.PrevParams != testParams {
			t.Errorf("rollback event %+v", e)
		}
		// Versions only grow: the next proposal is version 2 over version 0.
		res, err = cli.ProposeConfig(context.Background(), testParams, 10*time.Second)
		if err != nil || res.Version != 2 || res.PrevVersion != 0 {
			t.Errorf("next proposal %+v, %v", res, err)
		}
		if _, err := cli.ProposeConfig(context.Background(), testParams, 10*time.Second); !errors.Is(err, ErrConfigBusy) {
			t.Errorf("second outstanding proposal: %v", err)
		}
	})
}

// TestPeerConfigLocked: CONFIG_LOCKED refuses a proposal with
// CONFIG_REJECT (locked), changes nothing, and both sides report it.
func TestPeerConfigLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv, cl, sl, _ := configPair(t, false, nil)
		defer closeBoth(cli, srv)
		srv.LockConfig(true)
		if srv.configFlags() != wire.FlagConfigLocked {
			t.Errorf("flags %#x", srv.configFlags())
		}
		_, err := cli.ProposeConfig(context.Background(), testParams, 10*time.Second)
		var re *ConfigRejectedError
		if !errors.As(err, &re) || re.Detail != wire.RejectLocked || re.CurrentVersion != 0 {
			t.Fatalf("proposal while locked: %v", err)
		}
		if v, _ := srv.Config(); v != 0 || srv.heartbeatInterval() != DefaultHeartbeatInterval {
			t.Error("a locked configuration changed")
		}
		if !sameKinds(sl.kinds(), []ConfigEventKind{ConfigRejected}) || !sameKinds(cl.kinds(), []ConfigEventKind{ConfigRejected}) ||
			sl.last().Detail != wire.RejectLocked {
			t.Errorf("events: server %v client %v", sl.kinds(), cl.kinds())
		}
		srv.LockConfig(false)
		if res, err := cli.ProposeConfig(context.Background(), testParams, 10*time.Second); err != nil || res.Version != 1 {
			t.Errorf("after unlock: %+v %v", res, err)
		}
	})
}

// TestPeerConfigInvalidRejected: out-of-range parameters are refused
// locally, and a receiver refuses them with RejectInvalid.
func TestPeerConfigInvalidRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv, _, sl, _ := configPair(t, false, nil)
		defer closeBoth(cli, srv)
		bad := testParams
		bad.Compression = 1
		if _, err := cli.ProposeConfig(context.Background(), bad, 10*time.Second); err == nil {
			t.Error("compression proposed")
		}
		m := wire.ConfigMsg{Kind: wire.ConfigPropose, Version: 1, Value: 10000, Params: bad}
		m.Hash = wire.ConfigHash(1, &bad)
		if err := srv.onConfigMessage(wire.TypeConfig, wire.AppendConfigMsg(nil, &m)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if e := sl.last(); e.Kind != ConfigRejected || e.Detail != wire.RejectInvalid {
			t.Errorf("server event %+v", e)
		}
	})
}

// TestPeerConfigMalformed: a CONFIG of the wrong size, of an unknown kind
// or whose hash does not match its parameters is a protocol error.
func TestPeerConfigMalformed(t *testing.T) {
	good := wire.ConfigMsg{Kind: wire.ConfigPropose, Version: 1, Value: 10000, Params: testParams}
	good.Hash = wire.ConfigHash(1, &testParams)
	wrongHash := wire.AppendConfigMsg(nil, &good)
	wrongHash[20] ^= 1
	unknown := wire.AppendConfigMsg(nil, &good)
	unknown[0] = 9
	for name, pt := range map[string][]byte{
		"short":      make([]byte, 10),
		"wrong hash": wrongHash,
		"kind 9":     unknown,
	} {
		r, srv := rawPair(t, Config{})
		r.send(wire.TypeConfig, wire.FlagEncrypted, 0, pt)
		var ce *CloseError
		if err := waitDone(t, srv); !errors.As(err, &ce) || ce.Code != wire.CodeProtocolError {
			t.Errorf("%s: server ended with %v", name, err)
		}
	}
}
