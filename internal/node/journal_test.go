package node

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/journal"
)

func journalEntries(t *testing.T, path string) []journal.Entry {
	t.Helper()
	var out []journal.Entry
	for e, err := range journal.Entries(path, journal.Filter{}) {
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		out = append(out, e)
	}
	return out
}

// TestNodeJournal: a node records its start, the connect and disconnect
// of a peer's session and its stop, and the journal verifies.
func TestNodeJournal(t *testing.T) {
	dir := t.TempDir()
	bKey, bID := newKeyFile(t, dir, "b.key")
	allowed := writeFile(t, filepath.Join(dir, "allowed"), bID.Public.String()+"\n")
	aPath, aID := listenerConfig(t, dir, "a", "127.0.0.1:0", allowed)
	a := startNode(t, aPath, Options{})
	aJournal := filepath.Join(dir, "a.journal") // the default: next to a.key
	if st := a.Status().Journal; !st.Enabled || st.Path != aJournal || st.Entries != 2 || len(st.Head) != 64 || st.Full {
		t.Fatalf("status journal after start: %+v", st)
	}
	bPath := writeFile(t, filepath.Join(dir, "b.toml"), dialerText(bKey, filepath.Join(dir, "b.sock"),
		testPeer{"a", a.ListenAddr().String(), aID.Public})+"")
	b := startNode(t, bPath, Options{})
	waitFor(t, 10*time.Second, "B connected to A", func() bool { return peerByName(b, "a").State == StateConnected })
	sid := peerByName(b, "a").SessionID
	waitFor(t, 10*time.Second, "A's connect entry", func() bool { return a.Status().Journal.Entries >= 3 })
	shutdown(t, b)
	waitFor(t, 10*time.Second, "A's disconnect entry", func() bool { return a.Status().Journal.Entries >= 4 })
	st := a.Status().Journal
	shutdown(t, a)

	n, err := journal.Verify(aJournal)
	if err != nil || n != 5 {
		t.Fatalf("verify: %d entries, %v", n, err)
	}
	es := journalEntries(t, aJournal)
	// Entry 2 records the configuration as version 1 of its history.
	want := []journal.Type{journal.TypeStart, journal.TypeConfig, journal.TypeConnect, journal.TypeDisconnect, journal.TypeStop}
	for i, e := range es {
		if e.Type != want[i] {
			t.Errorf("entry %d is %s, want %s (%v)", e.Seq, e.Type, want[i], e.Detail)
		}
	}
	if es[1].ConfigAfter != 1 || es[1].Detail["what"] != "recovered" || len(es[1].Detail["sha256"]) != 64 {
		t.Errorf("config entry: %+v", es[1])
	}
	for _, e := range es[2:4] {
		if e.Session() != sid || e.Detail["peer"] != bID.Public.String() || e.Detail["direction"] != "inbound" ||
			e.Detail["remote"] == "" {
			t.Errorf("%s entry: %v (session %s)", e.Type, e.Detail, sid)
		}
	}
	if es[3].Detail["reason"] == "" {
		t.Errorf("disconnect without a reason: %v", es[3].Detail)
	}
	if hex.EncodeToString(es[3].Hash[:]) != st.Head {
		t.Errorf("status head %s is not entry 4's hash %x", st.Head, es[3].Hash)
	}
	// B, the dialer, journaled its side too, as outbound.
	bes := journalEntries(t, filepath.Join(dir, "b.journal"))
	if len(bes) < 5 || bes[2].Type != journal.TypeConnect || bes[2].Detail["direction"] != "outbound" ||
		bes[2].Detail["peer_name"] != "a" || bes[2].Session() != sid {
		t.Errorf("B's journal: %+v", bes)
	}
}

// TestNodeJournalCorrupt: a node refuses to start on a journal with a
// modified entry, naming it and pointing to "pool journal verify".
func TestNodeJournalCorrupt(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	jpath := filepath.Join(dir, "custom", "j")
	if err := os.MkdirAll(filepath.Dir(jpath), 0o700); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(jpath, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var second journal.Entry
	for i := range 3 {
		e, err := j.Append(journal.Entry{Type: journal.TypeError, Detail: map[string]string{"reason": fmt.Sprint("r", i)}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			second = e
		}
	}
	j.Close()
	data, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	data[second.Offset+40] ^= 1
	writeFile(t, jpath, string(data))

	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\njournal = %q\n", key, filepath.Join(dir, "n.sock"), "custom/j")))
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg, Options{Logger: testLogger()})
	if err == nil {
		shutdown(t, n)
		t.Fatal("a node started on a corrupt journal")
	}
	for _, s := range []string{"corrupt", "entry 2 at byte offset " + fmt.Sprint(second.Offset), "pool journal verify " + jpath} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n.sock")); !os.IsNotExist(err) {
		t.Errorf("the refused node left its control socket: %v", err)
	}
}

// TestNodeJournalFull: a journal over its size cap is JOURNAL_FULL in
// status, and the node runs on.
func TestNodeJournalFull(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	path := writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\njournal_max_size = 100\n", key, filepath.Join(dir, "n.sock")))
	n := startNode(t, path, Options{})
	st := n.Status().Journal
	if !st.Enabled || !st.Full || st.FullEvents == 0 || st.Entries != 0 {
		t.Fatalf("status journal: %+v", st)
	}
	if _, err := n.Reload(); err != nil {
		t.Fatalf("reload with a full journal: %v", err)
	}
	if st2 := n.Status().Journal; st2.FullEvents <= st.FullEvents {
		t.Errorf("the reload's lost entry is not counted: %+v", st2)
	}
	shutdown(t, n)
	if c, err := journal.Verify(filepath.Join(dir, "n.journal")); err != nil || c != 0 {
		t.Errorf("the full journal: %d entries, %v", c, err)
	}
}

// TestJournalConfig: the journal keys and their errors.
func TestJournalConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "id.key")
	base := fmt.Sprintf("identity = %q\nlisten = \"off\"\n", key)
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "1.toml"), base))
	if err != nil || cfg.Journal != filepath.Join(dir, "id.journal") || cfg.JournalMaxSize != journal.DefaultMaxBytes {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if p, err := JournalPath(filepath.Join(dir, "1.toml")); err != nil || p != cfg.Journal {
		t.Errorf("JournalPath: %q %v", p, err)
	}
	cfg, err = LoadConfig(writeFile(t, filepath.Join(dir, "2.toml"), base+"journal = \"\"\n"))
	if err != nil || cfg.Journal != "" {
		t.Fatalf("journal = \"\": %+v %v", cfg, err)
	}
	cfg, err = LoadConfig(writeFile(t, filepath.Join(dir, "3.toml"), base+
		"[journal_publish]\nfile = \"head\"\nsyslog = \"udp://127.0.0.1:514\"\nhttp = \"https://x.example/h\"\ninterval = \"2s\"\n"))
	if err != nil || cfg.JournalPublish != (JournalPublish{File: filepath.Join(dir, "head"), Syslog: "udp://127.0.0.1:514",
		HTTP: "https://x.example/h", Interval: 2 * time.Second}) {
		t.Fatalf("journal_publish: %+v %v", cfg, err)
	}
	for _, c := range []struct{ text, want string }{
		{"journal_max_size = 0\n", ":3: journal_max_size: must be a positive"},
		{"[journal_publish]\nsyslog = \"ftp://x\"\n", ":4: journal_publish.syslog: "},
		{"[journal_publish]\nhttp = \"x\"\n", ":4: journal_publish.http: "},
		{"[journal_publish]\nfiel = \"x\"\n", `unknown key "fiel" (did you mean "file"?)`},
		{"journal = \"\"\n[journal_publish]\nfile = \"x\"\n", "journal_publish: journal = \"\" disables"},
	} {
		_, err := LoadConfig(writeFile(t, filepath.Join(dir, "bad.toml"), base+c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// TestJournalPublishFile: the head reaches a file sink, at the latest at
// shutdown.
func TestJournalPublishFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	path := writeFile(t, filepath.Join(dir, "n.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"off\"\ncontrol = %q\n[journal_publish]\nfile = \"head\"\n", key, filepath.Join(dir, "n.sock")))
	n := startNode(t, path, Options{})
	shutdown(t, n)
	es := journalEntries(t, filepath.Join(dir, "n.journal"))
	last := es[len(es)-1]
	got := readFile(t, filepath.Join(dir, "head"))
	if want := fmt.Sprintf("%d %x\n", last.Seq, last.Hash); got != want {
		t.Errorf("published head %q, want %q", got, want)
	}
}
