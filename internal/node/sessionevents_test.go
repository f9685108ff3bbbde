package node

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
	"github.com/pool-go/pool/internal/session"
)

// entriesOfType reads the entries of type typ of a running node's journal
// (a read error, such as a record being written, ends the list).
func entriesOfType(path string, typ journal.Type) []journal.Entry {
	var out []journal.Entry
	for e, err := range journal.Entries(path, journal.Filter{}) {
		if err != nil {
			break
		}
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// waitEntries waits until path holds n entries of type typ and returns them.
func waitEntries(t *testing.T, path string, typ journal.Type, n int) []journal.Entry {
	t.Helper()
	var es []journal.Entry
	waitFor(t, 20*time.Second, "journal "+filepath.Base(path)+": "+typ.String()+" entries", func() bool {
		es = entriesOfType(path, typ)
		return len(es) >= n
	})
	return es
}

// TestNodeJournalsSessionEvents: a rekey, an INTEGRITY check, path MTU
// and OVERLOAD changes, and the peer configuration events of a session
// (applied then rolled back; applied then kept at the deadline; applied
// with every confirmation request lost, then kept: P07) are journaled on
// both nodes, with the session and the peer.
func TestNodeJournalsSessionEvents(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	aDown := false
	defer func() {
		if !aDown {
			shutdown(t, a)
		}
	}()
	bPath := writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", a.ListenAddr().String(), aID.Public}))
	b := startNode(t, bPath, Options{})
	defer shutdown(t, b)
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	sid := peerByName(b, "a").SessionID
	var bs *pool.Session
	waitFor(t, 10*time.Second, "A lists the session", func() bool { return nodeSession(a, bID.Public) != nil })
	bs = nodeSession(b, aID.Public)
	aJ, bJ := filepath.Join(dir, "a.journal"), filepath.Join(dir, "b.journal")

	check := func(who string, e journal.Entry, peer pool.PublicKey, want map[string]string) {
		t.Helper()
		if e.Session() != sid || e.Detail["peer"] != peer.String() {
			t.Errorf("%s: %s entry %d names session %s peer %s, want %s %s", who, e.Type, e.Seq,
				e.Session(), e.Detail["peer"], sid, peer)
		}
		for k, v := range want {
			if e.Detail[k] != v {
				t.Errorf("%s: %s entry %d: %s = %q, want %q (%v)", who, e.Type, e.Seq, k, e.Detail[k], v, e.Detail)
			}
		}
	}

	// A rekey B starts: both journal it, B as the initiator.
	if err := bs.Rekey(); err != nil {
		t.Fatal(err)
	}
	check("A", waitEntries(t, aJ, journal.TypeRekey, 1)[0], bID.Public, map[string]string{"epoch": "1", "initiated": "false", "direction": "inbound"})
	check("B", waitEntries(t, bJ, journal.TypeRekey, 1)[0], aID.Public, map[string]string{"epoch": "1", "initiated": "true", "direction": "outbound", "peer_name": "a"})

	// B challenges A's crypto path: the first correct proof is an entry.
	ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer icancel()
	for range 2 {
		if err := bs.VerifyIntegrity(ictx); err != nil {
			t.Fatal(err)
		}
	}
	check("B", waitEntries(t, bJ, journal.TypeIntegrity, 1)[0], aID.Public, map[string]string{"event": "integrity-verified"})

	// Path MTU and OVERLOAD changes (a TCP session has neither by itself:
	// its MTU is the transport's and the node reads no channel data, so
	// A is told of them as its session would tell it).
	as := nodeSession(a, bID.Public)
	a.sessionEvent(as, pool.SessionEvent{Kind: pool.EventMTU, MTU: 1400, PrevMTU: 512})
	check("A", waitEntries(t, aJ, journal.TypeState, 1)[0], bID.Public, map[string]string{"event": "mtu", "mtu": "1400", "prev_mtu": "512"})
	for range 3 { // a flapping receiver: aggregated
		a.sessionEvent(as, pool.SessionEvent{Kind: pool.EventOverloadStart, Local: true, Pause: time.Second})
		a.sessionEvent(as, pool.SessionEvent{Kind: pool.EventOverloadEnd, Local: true})
	}
	// Dropped datagrams (a datagram transport's; the session reports them
	// in batches): aggregated, counted in packets.
	for range 2 {
		a.sessionEvent(as, pool.SessionEvent{Kind: pool.EventDropped, Reason: session.DropReplay, Count: 40})
	}

	// B proposes new parameters for A's side, then rejects them explicitly
	// before the deadline: A rolls back.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	params := pool.ConfigParams{HeartbeatMs: 2000, RekeyIntervalS: 1800, RekeyPackets: 1 << 20}
	res, err := bs.ProposeConfig(ctx, params, 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hash := hex.EncodeToString(res.Hash[:])
	applied := map[string]string{"event": "applied", "version": "1", "prev_version": "0", "hash": hash}
	check("A", waitEntries(t, aJ, journal.TypeConfig, 2)[1], bID.Public, merge(applied, map[string]string{"side": "local"}))
	check("B", waitEntries(t, bJ, journal.TypeConfig, 2)[1], aID.Public, merge(applied, map[string]string{"side": "remote"}))
	if _, err := bs.RollbackConfig(ctx); err != nil {
		t.Fatal(err)
	}
	rolled := map[string]string{"event": "rolled-back", "version": "0", "prev_version": "1", "prev_hash": hash}
	check("A", waitEntries(t, aJ, journal.TypeRollback, 1)[0], bID.Public, merge(rolled, map[string]string{"side": "local"}))
	check("B", waitEntries(t, bJ, journal.TypeRollback, 1)[0], aID.Public, merge(rolled, map[string]string{"side": "remote"}))
	if v, _ := nodeSession(a, bID.Public).Config(); v != 0 {
		t.Errorf("A's configuration after the rollback is version %d, want 0", v)
	}

	// A second proposal left alone: at the deadline both sides keep it and
	// journal the confirmation (P07).
	res, err = bs.ProposeConfig(ctx, params, 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hash = hex.EncodeToString(res.Hash[:])
	es := waitEntries(t, aJ, journal.TypeConfig, 4)
	check("A", es[2], bID.Public, map[string]string{"event": "applied", "side": "local", "version": "2", "hash": hash})
	check("A", es[3], bID.Public, map[string]string{"event": "confirmed", "side": "local", "version": "2", "hash": hash})
	es = waitEntries(t, bJ, journal.TypeConfig, 4)
	check("B", es[2], aID.Public, map[string]string{"event": "applied", "side": "remote", "version": "2", "hash": hash})
	check("B", es[3], aID.Public, map[string]string{"event": "confirmed", "side": "remote", "version": "2", "hash": hash})
	if v, p := nodeSession(a, bID.Public).Config(); v != 2 || p != params {
		t.Errorf("A's configuration after the deadline: version %d %+v, want 2 %+v", v, p, params)
	}

	// A third proposal whose confirmation requests are all lost on the
	// way: A hears nothing after applying it and keeps it at the deadline
	// (P07: silence is confirmation); both nodes journal that.
	session.LoseConfirmRequestsForTest(bs)
	params3 := pool.ConfigParams{HeartbeatMs: 3000, RekeyIntervalS: 1800, RekeyPackets: 1 << 20}
	res, err = bs.ProposeConfig(ctx, params3, 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hash = hex.EncodeToString(res.Hash[:])
	es = waitEntries(t, aJ, journal.TypeConfig, 6)
	check("A", es[4], bID.Public, map[string]string{"event": "applied", "side": "local", "version": "3", "hash": hash})
	check("A", es[5], bID.Public, map[string]string{"event": "confirmed-by-silence", "side": "local", "version": "3", "hash": hash})
	es = waitEntries(t, bJ, journal.TypeConfig, 6)
	check("B", es[4], aID.Public, map[string]string{"event": "applied", "side": "remote", "version": "3", "hash": hash})
	check("B", es[5], aID.Public, map[string]string{"event": "confirmed", "side": "remote", "version": "3", "hash": hash})
	if v, p := nodeSession(a, bID.Public).Config(); v != 3 || p != params3 {
		t.Errorf("A's configuration after a silent deadline: version %d %+v, want 3 %+v", v, p, params3)
	}

	// The aggregated OVERLOAD entries are written by the shutdown at the
	// latest: one start and one end, each counted three times.
	shutdown(t, a)
	aDown = true
	es = entriesOfType(aJ, journal.TypeState)
	if len(es) != 3 {
		t.Fatalf("A's state entries: %+v", es)
	}
	for i, ev := range []string{"overload-start", "overload-end"} {
		e := es[1+i]
		check("A", e, bID.Public, map[string]string{"event": ev, "side": "local"})
		if e.Count != 3 {
			t.Errorf("A's %s entry counts %d, want 3", ev, e.Count)
		}
	}
	var drops []journal.Entry
	for _, e := range entriesOfType(aJ, journal.TypeError) {
		if e.Detail["what"] == "dropped" {
			drops = append(drops, e)
		}
	}
	if len(drops) != 1 || drops[0].Count != 80 || drops[0].Detail["reason"] != "replay" {
		t.Errorf("A's dropped-datagram entries: %+v", drops)
	}
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}
