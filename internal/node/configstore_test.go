package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/journal"
)

// configEntry finds the journal entry of type typ whose detail "what" is
// what and whose ConfigAfter is after.
func configEntry(t *testing.T, path string, typ journal.Type, what string, after uint64) (journal.Entry, bool) {
	t.Helper()
	for _, e := range journalEntries(t, path) {
		if e.Type == typ && e.Detail["what"] == what && e.ConfigAfter == after {
			return e, true
		}
	}
	return journal.Entry{}, false
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestConfigApplyConfirmRollback: apply makes version 2 (journaled with
// its hash); a commit-confirmed change not confirmed comes back by itself
// to the exact previous bytes, and the node reloads them; a confirmed
// one stays; an invalid file is refused with its line and changes nothing.
func TestConfigApplyConfirmRollback(t *testing.T) {
	dir := t.TempDir()
	allowed := writeFile(t, filepath.Join(dir, "allowed"), "")
	path, _ := listenerConfig(t, dir, "n", "127.0.0.1:0", allowed)
	n := startNode(t, path, Options{})
	jpath := filepath.Join(dir, "n.journal")

	st := n.Status().Config
	v1, _ := os.ReadFile(path)
	if !st.Enabled || st.Version != 1 || st.SHA256 != sha(v1) || st.Dir != path+HistorySuffix || st.Pending != nil {
		t.Fatalf("status at start: %+v", st)
	}

	// A plain apply: version 2, live, reloaded, journaled.
	v2 := append(append([]byte{}, v1...), "log_level = \"warn\"\n"...)
	res, err := n.ConfigApply(v2, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Version.Version != 2 || res.Previous != 1 || res.Version.SHA256 != sha(v2) || res.Pending != nil ||
		len(res.Changes) != 1 || res.Changes[0] != "log_level: info -> warn" {
		t.Errorf("apply: %+v", res)
	}
	if got, _ := os.ReadFile(path); string(got) != string(v2) || n.Status().LogLevel != "warn" {
		t.Errorf("after apply: file %q, log level %s", got, n.Status().LogLevel)
	}
	waitFor(t, 5*time.Second, "the apply's journal entry", func() bool {
		e, ok := configEntry(t, jpath, journal.TypeConfig, "apply", 2)
		return ok && e.ConfigBefore == 1 && e.Detail["sha256"] == sha(v2) && e.Detail["previous_sha256"] == sha(v1) &&
			e.Detail["outcome"] == "applied"
	})

	// Commit confirmed, not confirmed: version 4 restores version 2.
	v3 := []byte(strings.Replace(string(v2), `"warn"`, `"debug"`, 1))
	res, err = n.ConfigApply(v3, 2*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.Version.Version != 3 || res.Version.Kind != "apply-confirmed" || res.Pending == nil || res.Pending.Previous != 2 ||
		n.Status().LogLevel != "debug" || n.Status().Config.Pending == nil {
		t.Fatalf("apply confirmed: %+v, status %+v", res, n.Status().Config)
	}
	if _, err := n.ConfigApply(v1, 0, "test"); err == nil || !strings.Contains(err.Error(), "awaits confirmation") {
		t.Errorf("an apply while one is pending: %v", err)
	}
	// The store's version changes first, then the node reloads.
	waitFor(t, 10*time.Second, "the automatic rollback", func() bool {
		st := n.Status()
		return st.Config.Version == 4 && st.LogLevel == "warn"
	})
	got, _ := os.ReadFile(path)
	if st := n.Status(); string(got) != string(v2) || sha(got) != sha(v2) || st.Config.SHA256 != sha(v2) ||
		st.Config.Pending != nil || st.LogLevel != "warn" {
		t.Errorf("after the deadline: file %q (sha256 %s, want %s), status %+v", got, sha(got), sha(v2), st)
	}
	waitFor(t, 5*time.Second, "the rollback's journal entry", func() bool {
		e, ok := configEntry(t, jpath, journal.TypeRollback, "auto-rollback", 4)
		return ok && e.ConfigBefore == 3 && e.Detail["sha256"] == sha(v2) && e.Detail["restored"] == "2" &&
			e.Detail["changes"] == "log_level: debug -> warn"
	})

	// Commit confirmed and confirmed: it stays past the deadline.
	if _, err := n.ConfigApply(v3, 2*time.Second, "test"); err != nil {
		t.Fatal(err)
	}
	if res, err := n.ConfigConfirm(); err != nil || res.Version.Version != 5 {
		t.Fatalf("confirm: %+v, %v", res, err)
	}
	if _, err := n.ConfigConfirm(); err == nil || !strings.Contains(err.Error(), "no commit-confirmed change") {
		t.Errorf("a second confirm: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if st := n.Status(); st.Config.Version != 5 || st.LogLevel != "debug" || st.Config.Pending != nil {
		t.Errorf("a confirmed change did not stay: %+v", st)
	}

	// An invalid file: refused with its line and reason, nothing changes.
	_, err = n.ConfigApply(append(append([]byte{}, v3...), "bogus = 1\n"...), 0, "test")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 6 || !strings.Contains(err.Error(), path+`:6: unknown key "bogus"`) {
		t.Errorf("invalid file: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(v3) || n.Status().Config.Version != 5 {
		t.Errorf("an invalid file changed something: version %d, file %q", n.Status().Config.Version, got)
	}

	// Rollback, history, diff.
	res, err = n.ConfigRollback(1, "test")
	if err != nil || res.Version.Version != 6 || res.Version.RollbackOf != 1 || res.Version.SHA256 != sha(v1) || n.Status().LogLevel != "info" {
		t.Errorf("rollback to 1: %+v, %v", res, err)
	}
	h, err := n.ConfigHistory()
	if err != nil || h.Current != 6 || len(h.Versions) != 6 || h.Versions[3].Kind != "auto-rollback" || h.Dir != path+HistorySuffix {
		t.Errorf("history: %+v, %v", h, err)
	}
	d, err := n.ConfigDiff(1, 2)
	if err != nil || !strings.Contains(d.Diff, "+log_level = \"warn\"") {
		t.Errorf("diff: %+v, %v", d, err)
	}
}

// TestConfigApplyBreaksListener is the issue's case, Junos' "commit
// confirmed": a new listen address that no peer knows cuts the node off
// from new sessions; applied with a deadline and not confirmed, the exact
// previous file comes back by itself (hash verified) and the node listens
// where it did. Confirmed, the change stays. A listen address that cannot
// be bound at all is rolled back at once. An authorized_peers file that
// locks the only peer out comes back by itself the same way.
func TestConfigApplyBreaksListener(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+" b\n")
	writeFile(t, filepath.Join(dir, "nobody"), "")
	home, moved := freeAddr(t), freeAddr(t)
	aPath, aID := listenerConfig(t, dir, "a", home, allowed)
	a := startNode(t, aPath, Options{})
	b := startNode(t, writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", home, aID.Public})), Options{})
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	v1, _ := os.ReadFile(aPath)
	reachable := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	withListen := func(addr string) []byte {
		return []byte(strings.Replace(string(v1), strconv.Quote(home), strconv.Quote(addr), 1))
	}

	// A listen address in use: the reload is refused, rolled back at once.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = a.ConfigApply(withListen(busy.Addr().String()), 2*time.Second, "test")
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+busy.Addr().String()) ||
		!strings.Contains(err.Error(), "version 2 was rolled back at once (version 3 restores version 1") {
		t.Errorf("apply of a listen address in use: %v", err)
	}
	got, _ := os.ReadFile(aPath)
	if st := a.Status(); string(got) != string(v1) || st.Config.Version != 3 || st.Config.SHA256 != sha(v1) ||
		st.Config.Pending != nil || st.Listen != home {
		t.Errorf("after a refused listen change: file %q, listen %s, config %+v", got, st.Listen, st.Config)
	}

	// A listen address no peer knows, not confirmed: the node moves, and
	// at the deadline comes back by itself.
	res, err := a.ConfigApply(withListen(moved), 2*time.Second, "test")
	if err != nil || res.Pending == nil {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if st := a.Status(); st.Listen != moved || reachable(home) || !reachable(moved) {
		t.Errorf("the new listen address is not live: listen %s, home reachable %v", st.Listen, reachable(home))
	}
	if peerByName(b, "a").State != StateConnected {
		t.Error("moving the listener dropped B's established session")
	}
	waitFor(t, 10*time.Second, "the automatic rollback", func() bool {
		st := a.Status()
		return st.Config.Version == 5 && st.Listen == home // recorded, then reloaded
	})
	got, _ = os.ReadFile(aPath)
	if st := a.Status(); string(got) != string(v1) || st.Config.SHA256 != sha(v1) || st.Listen != home {
		t.Errorf("after the deadline: file %q, listen %s, config %+v", got, st.Listen, st.Config)
	}
	if !reachable(home) || reachable(moved) {
		t.Errorf("after the rollback: home reachable %v, moved reachable %v", reachable(home), reachable(moved))
	}

	// The same change confirmed stays past its deadline.
	if _, err := a.ConfigApply(withListen(moved), 2*time.Second, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ConfigConfirm(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if st := a.Status(); st.Listen != moved || st.Config.Version != 6 || st.Config.Pending != nil || !reachable(moved) {
		t.Errorf("a confirmed listen change after its deadline: listen %s, config %+v", st.Listen, st.Config)
	}
	v6, _ := os.ReadFile(aPath)

	// authorized_peers = nobody: B is cut off until the deadline passes.
	locked := []byte(strings.Replace(string(v6), allowed, filepath.Join(dir, "nobody"), 1))
	res, err = a.ConfigApply(locked, 2*time.Second, "test")
	if err != nil || res.Pending == nil {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if a.Status().AuthorizedKeys != 0 {
		t.Errorf("the new allow-list is not live: %+v", a.Status())
	}
	waitFor(t, 5*time.Second, "B cut off", func() bool { return peerByName(b, "a").State != StateConnected })
	waitFor(t, 10*time.Second, "the automatic rollback", func() bool {
		st := a.Status()
		return st.Config.Version == 8 && st.AuthorizedKeys == 1
	})
	got, _ = os.ReadFile(aPath)
	if sha(got) != sha(v6) || string(got) != string(v6) || a.Status().AuthorizedKeys != 1 {
		t.Errorf("after the deadline: file %q, status %+v", got, a.Status())
	}
	// B knows A at home only: point it at the confirmed address.
	bText := dialerText(bKey, filepath.Join(dir, "b.sock"), testPeer{"a", moved, aID.Public})
	writeFile(t, filepath.Join(dir, "b.toml"), bText)
	if _, err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B back", func() bool { return peerByName(b, "a").State == StateConnected })
	shutdown(t, b)
	shutdown(t, a)
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestConfigHistoryAcrossRestart: a pending change whose deadline passes
// while the node is down is rolled back when it starts again, and the
// node runs the restored file.
func TestConfigHistoryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	allowed := writeFile(t, filepath.Join(dir, "allowed"), "")
	path, _ := listenerConfig(t, dir, "n", "127.0.0.1:0", allowed)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg, Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := os.ReadFile(path)
	if _, err := n.ConfigApply(append(append([]byte{}, v1...), "log_level = \"error\"\n"...), time.Second, "test"); err != nil {
		t.Fatal(err)
	}
	shutdown(t, n)
	time.Sleep(1100 * time.Millisecond)
	n = startNode(t, path, Options{})
	got, _ := os.ReadFile(path)
	if st := n.Status(); st.LogLevel != "info" || st.Config.Version != 3 || string(got) != string(v1) || st.Config.Pending != nil {
		t.Errorf("after a restart past the deadline: file %q, status %+v", got, st)
	}
}
