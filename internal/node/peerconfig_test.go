package node

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/journal"
)

// TestControlSessionConfig: over B's control socket an operator proposes
// parameters for A's side of their session, then rolls them back; both
// journals record it and A's configuration is back at version 0. Lock on
// A makes B's next proposal refused; bad requests get clear errors.
func TestControlSessionConfig(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	defer shutdown(t, a)
	bSock := filepath.Join(dir, "b.sock")
	aSock := filepath.Join(dir, "a.sock")
	bPath := writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, bSock,
		testPeer{"a", a.ListenAddr().String(), aID.Public}))
	b := startNode(t, bPath, Options{})
	defer shutdown(t, b)
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	waitFor(t, 10*time.Second, "A lists the session", func() bool { return nodeSession(a, bID.Public) != nil })
	sid := peerByName(b, "a").SessionID
	aJ, bJ := filepath.Join(dir, "a.journal"), filepath.Join(dir, "b.journal")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var res PeerConfigResult
	err := CallRequest(ctx, bSock, Request{Method: "session.config.propose", Session: strings.ToUpper(sid[:6]),
		HeartbeatMs: 2000, RekeyIntervalS: 1800, Deadline: 30}, &res)
	if err != nil {
		t.Fatal(err)
	}
	want := pool.ConfigParams{HeartbeatMs: 2000, RekeyIntervalS: 1800, RekeyPackets: DefaultPeerRekeyPackets}
	if res.Session != sid || res.State != "tentative" || res.Version != 1 || res.PrevVersion != 0 || len(res.Hash) != 64 ||
		res.DeadlineS != 30 || res.Params != paramsOf(want) {
		t.Errorf("propose: %+v", res)
	}
	if v, p := nodeSession(a, bID.Public).Config(); v != 1 || p != want {
		t.Errorf("A's configuration after the proposal: %d %+v", v, p)
	}
	hash := res.Hash
	es := waitEntries(t, aJ, journal.TypeConfig, 2)
	if e := es[1]; e.Detail["event"] != "applied" || e.Detail["side"] != "local" || e.Detail["hash"] != hash || e.Session() != sid {
		t.Errorf("A's journal: %+v", e.Detail)
	}

	// A second proposal while the first is within its deadline is refused.
	if err := CallRequest(ctx, bSock, Request{Method: "session.config.propose", Session: sid, Deadline: 10}, nil); err == nil {
		t.Error("a second proposal within the deadline was accepted")
	}

	res = PeerConfigResult{}
	if err := CallRequest(ctx, bSock, Request{Method: "session.config.rollback", Session: sid[:4]}, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != "rolled-back" || res.Version != 0 || res.PrevVersion != 1 || res.PrevHash != hash {
		t.Errorf("rollback: %+v", res)
	}
	for _, j := range []string{aJ, bJ} {
		e := waitEntries(t, j, journal.TypeRollback, 1)[0]
		if e.Detail["event"] != "rolled-back" || e.Detail["prev_hash"] != hash || e.Session() != sid {
			t.Errorf("%s: %+v", filepath.Base(j), e.Detail)
		}
	}
	if v, _ := nodeSession(a, bID.Public).Config(); v != 0 {
		t.Errorf("A's configuration after the rollback is version %d, want 0", v)
	}
	// Nothing left to roll back.
	if err := CallRequest(ctx, bSock, Request{Method: "session.config.rollback", Session: sid}, nil); err == nil ||
		!strings.Contains(err.Error(), "no accepted proposal") {
		t.Errorf("second rollback: %v", err)
	}

	// A locks its side: B's proposal is refused (locked).
	locked := true
	res = PeerConfigResult{}
	if err := CallRequest(ctx, aSock, Request{Method: "session.config.lock", Session: sid, Locked: &locked}, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != "locked" || res.Version != 0 {
		t.Errorf("lock: %+v", res)
	}
	err = CallRequest(ctx, bSock, Request{Method: "session.config.propose", Session: sid, Deadline: 10}, nil)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("proposal to a locked side: %v", err)
	}
	locked = false
	if err := CallRequest(ctx, aSock, Request{Method: "session.config.lock", Session: sid, Locked: &locked}, &res); err != nil || res.State != "unlocked" {
		t.Errorf("unlock: %v %+v", err, res)
	}

	// Bad requests.
	other := "0"
	if sid[0] == '0' {
		other = "1"
	}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Method: "session.config.propose"}, `needs "session"`},
		{Request{Method: "session.config.rollback", Session: "xyz"}, "bad session ID prefix"},
		{Request{Method: "session.config.rollback", Session: other + sid[1:8]}, "no session ID starts with"},
		{Request{Method: "session.config.lock", Session: sid}, `needs "locked"`},
		{Request{Method: "session.config.propose", Session: sid, Deadline: -1}, `"deadline"`},
		{Request{Method: "session.config.propose", Session: sid, HeartbeatMs: 50}, "out of range"},
		{Request{Method: "peers", Session: sid}, `takes no "session"`},
	} {
		if err := CallRequest(ctx, bSock, c.req, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.req, err, c.want)
		}
	}
}
