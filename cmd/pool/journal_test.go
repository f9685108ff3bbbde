package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool/internal/journal"
)

// journalFixture writes a journal of five entries and returns its path
// and the entries as written.
func journalFixture(t *testing.T) (string, []journal.Entry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var es []journal.Entry
	for _, e := range []journal.Entry{
		{Type: journal.TypeStart, Detail: map[string]string{"version": "devel"}},
		{Type: journal.TypeConnect, Detail: map[string]string{"session": "3f2a9c0100112233445566778899aabb", "direction": "inbound", "peer": "KEY"}},
		{Type: journal.TypeHandshakeFailure, Detail: map[string]string{"reason": "unauthorized", "source": "192.0.2.0/24"}},
		{Type: journal.TypeDisconnect, Detail: map[string]string{"session": "3f2a9c0100112233445566778899aabb", "reason": "closed by peer (NO_ERROR)"}},
		{Type: journal.TypeStop, Detail: map[string]string{"reason": "shutdown"}},
	} {
		w, err := j.Append(e)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, w)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return path, es
}

func TestJournalShow(t *testing.T) {
	path, es := journalFixture(t)
	code, out, errs := runCmd(t, "journal", "show", path)
	if code != 0 || !strings.HasPrefix(out, "SEQ ") || strings.Count(out, "\n") != 6 ||
		!strings.Contains(out, "handshake_failure") || !strings.Contains(out, "3f2a9c01") {
		t.Errorf("show: %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd(t, "journal", "show", "--type", "connect", "--type", "disconnect", "--session", "3f2a", path)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "connect") || strings.Contains(out, "start") {
		t.Errorf("show --type --session: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd(t, "journal", "show", "--since", es[4].Time.Add(time.Nanosecond).Format(time.RFC3339Nano), path)
	if code != 0 || strings.TrimSpace(out) != "no entries" {
		t.Errorf("show --since after the last: %d %q", code, out)
	}
	code, out, errs = runCmd(t, "journal", "show", "--json", "--until", es[1].Time.Add(time.Nanosecond).Format(time.RFC3339Nano), path)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[1]["type"] != "connect" ||
		list[1]["hash"] != fmt.Sprintf("%x", es[1].Hash) {
		t.Errorf("show --json --until: %d %v\n%s%s", code, err, out, errs)
	}
}

func TestJournalVerify(t *testing.T) {
	path, es := journalFixture(t)
	code, out, errs := runCmd(t, "journal", "verify", path)
	if want := fmt.Sprintf("5 entries verified\nhead 5 %x\n", es[4].Hash); code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("verify: %d %q %q, want suffix %q", code, out, errs, want)
	}
	// One byte changed in the middle of entry 3.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[es[2].Offset+60] ^= 0x20
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, "journal", "verify", path)
	want := fmt.Sprintf("2 entries verified, then entry 3 at byte offset %d is bad", es[2].Offset)
	if code != 1 || out != "" || !strings.Contains(errs, want) {
		t.Errorf("verify of a tampered journal: %d %q %q, want %q", code, out, errs, want)
	}
	// show and export stop there too.
	for _, cmd := range []string{"show", "export"} {
		code, _, errs = runCmd(t, "journal", cmd, path)
		if code != 1 || !strings.Contains(errs, fmt.Sprintf("entry 3 at byte offset %d is bad", es[2].Offset)) {
			t.Errorf("%s of a tampered journal: %d %q", cmd, code, errs)
		}
	}
}

func TestJournalExport(t *testing.T) {
	path, es := journalFixture(t)
	code, out, errs := runCmd(t, "journal", "export", "--json", path)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("export: %d\n%s%s", code, out, errs)
	}
	for i, l := range lines {
		var e journalJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq != es[i].Seq || e.Type != es[i].Type.String() ||
			e.Hash != fmt.Sprintf("%x", es[i].Hash) || e.Detail["reason"] != es[i].Detail["reason"] {
			t.Errorf("line %d: %s (%v)", i, l, err)
		}
	}
}

func TestJournalTail(t *testing.T) {
	path, _ := journalFixture(t)
	code, out, errs := runCmd(t, "journal", "tail", "-n", "2", path)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "stop") || strings.Contains(out, "handshake_failure") {
		t.Errorf("tail -n 2: %d\n%s%s", code, out, errs)
	}
	// --follow prints what is appended, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"journal", "tail", "-n", "0", "--follow", path}, strings.NewReader(""), &stdout, &stderr)
	}()
	time.Sleep(100 * time.Millisecond)
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(journal.Entry{Type: journal.TypeAlert, Detail: map[string]string{"alert": "followed"}}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stdout.String(), "alert=followed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || !strings.Contains(stdout.String(), "alert=followed") {
		t.Errorf("tail --follow: %d %q %q", code, stdout.String(), stderr.String())
	}

	// Following reads only new bytes but still checks the chain: a file
	// replaced by another journal (longer, so it looks grown) is refused.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr = syncBuffer{}, syncBuffer{}
	go func() {
		done <- run(ctx, []string{"journal", "tail", "-n", "0", "--follow", path}, strings.NewReader(""), &stdout, &stderr)
	}()
	time.Sleep(100 * time.Millisecond)
	other := filepath.Join(t.TempDir(), "other")
	oj, err := journal.Open(other, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := oj.Append(journal.Entry{Type: journal.TypeAlert, Detail: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	oj.Close()
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "journal") || strings.Contains(stdout.String(), "i=") {
			t.Errorf("follow of a replaced journal: %d %q %q", code, stdout.String(), stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("follow did not notice the replaced journal: %q", stdout.String())
	}
}

// TestJournalFileFromConfig: without FILE, the journal of --config.
func TestJournalFileFromConfig(t *testing.T) {
	path, _ := journalFixture(t)
	dir := t.TempDir()
	cfg := nodeWrite(t, filepath.Join(dir, "node.toml"), fmt.Sprintf("identity = \"id.key\"\njournal = %q\n", path))
	if code, out, errs := runCmd(t, "journal", "verify", "--config", cfg); code != 0 || !strings.Contains(out, "5 entries verified") {
		t.Errorf("verify --config: %d %q %q", code, out, errs)
	}
	// The default: next to the identity file.
	cfg = nodeWrite(t, filepath.Join(dir, "node2.toml"), "identity = \"id.key\"\n")
	code, _, errs := runCmd(t, "journal", "show", "--config", cfg)
	if code != 1 || !strings.Contains(errs, filepath.Join(dir, "id.journal")) {
		t.Errorf("show of a missing default journal: %d %q", code, errs)
	}
	cfg = nodeWrite(t, filepath.Join(dir, "node3.toml"), "identity = \"id.key\"\njournal = \"\"\n")
	if code, _, errs := runCmd(t, "journal", "show", "--config", cfg); code != 1 || !strings.Contains(errs, "disables the journal") {
		t.Errorf("show with the journal disabled: %d %q", code, errs)
	}
}

func TestJournalUsage(t *testing.T) {
	path, _ := journalFixture(t)
	for _, args := range [][]string{
		{"journal", "show", "--bogus", path},
		{"journal", "show", "--type", "nonsense", path},
		{"journal", "show", "--since", "yesterday-ish", path},
		{"journal", "show", "--session", "xyz", path},
		{"journal", "tail", "-n", "-1", path},
		{"journal", "verify", path, path},
		{"journal", "nonsense"},
	} {
		if code, _, errs := runCmd(t, args...); code != 2 || !strings.Contains(errs, "--help") {
			t.Errorf("%q: exit %d %q, want 2", args, code, errs)
		}
	}
}
