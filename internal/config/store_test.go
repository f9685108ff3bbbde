package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func openT(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readLive(t *testing.T, s *Store) []byte {
	t.Helper()
	b, err := os.ReadFile(s.LiveFile())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot is every file under dir with its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func equalSnap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// Bytes a round trip must keep exactly: CRLF, trailing blanks, no final newline.
var (
	cfgA = []byte("listen = \":9253\"\r\nlog_level = \"info\"   \n# comment\t\n\n")
	cfgB = []byte("listen = \":9254\"\nlog_level = \"debug\"\nidle_timeout = \"45s\"")
	cfgC = []byte("listen = \"\"\n")
)

func TestApplyRollbackRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := s.Current(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Current on an empty store: %v, want ErrEmpty", err)
	}
	v1, err := s.Apply(cfgA, ApplyOptions{Author: "alice", Comment: "first"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.Apply(cfgB, ApplyOptions{Author: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Number != 1 || v2.Number != 2 || v2.Prev != v1.SHA256 || v1.Prev != ([32]byte{}) {
		t.Fatalf("versions %+v %+v: numbers or chain wrong", v1, v2)
	}
	if v1.SHA256 != sha256.Sum256(cfgA) || v1.Author != "alice" || v1.Comment != "first" || v1.Kind != KindApply {
		t.Fatalf("version 1 = %+v", v1)
	}
	if !bytes.Equal(readLive(t, s), cfgB) {
		t.Fatal("live file is not version 2")
	}

	v3, err := s.Rollback(0, ApplyOptions{Author: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readLive(t, s); !bytes.Equal(got, cfgA) {
		t.Fatalf("after rollback live = %q, want exactly %q", got, cfgA)
	}
	if v3.Number != 3 || v3.RollbackOf != 1 || v3.SHA256 != v1.SHA256 || v3.Prev != v2.SHA256 || v3.Kind != KindRollback {
		t.Fatalf("rollback version = %+v", v3)
	}
	if !strings.Contains(v3.Comment, "version 2 to version 1") {
		t.Fatalf("rollback comment %q", v3.Comment)
	}
	// Rollback(0) again undoes the rollback.
	if _, err := s.Rollback(0, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readLive(t, s), cfgB) {
		t.Fatal("second Rollback(0) did not restore version 2")
	}
	if _, err := s.Rollback(4, ApplyOptions{}); err == nil {
		t.Fatal("rollback to the live version accepted")
	}
	if _, err := s.Rollback(9, ApplyOptions{}); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("rollback to an unknown version: %v", err)
	}

	h := s.History()
	if len(h) != 4 || h[0].Number != 1 || h[3].Number != 4 {
		t.Fatalf("history %+v", h)
	}
	_, b, err := s.Get(1)
	if err != nil || !bytes.Equal(b, cfgA) {
		t.Fatalf("Get(1) = %q, %v", b, err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}

	// A reopened store sees the same history and current version.
	s.Close()
	s2 := openT(t, dir, Options{})
	cur, err := s2.Current()
	if err != nil || cur.Number != 4 || cur.RollbackOf != 2 {
		t.Fatalf("after reopen Current = %+v, %v", cur, err)
	}
	if !slices.EqualFunc(s2.History(), h, func(a, b Version) bool {
		return a.Number == b.Number && a.SHA256 == b.SHA256 && a.Prev == b.Prev && a.Time.Equal(b.Time) &&
			a.Author == b.Author && a.Comment == b.Comment && a.Kind == b.Kind && a.RollbackOf == b.RollbackOf
	}) {
		t.Fatalf("history after reopen differs:\n%+v\n%+v", s2.History(), h)
	}
	if _, err := s2.Apply(cfgC, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s2.Current(); cur.Number != 5 {
		t.Fatalf("next version after reopen = %d, want 5", cur.Number)
	}
}

func TestTamperedHistoryRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		file   string
	}{
		{"bytes", func(t *testing.T, s *Store) {
			p := s.bytesPath(1)
			b, _ := os.ReadFile(p)
			b[3] ^= 1
			os.WriteFile(p, b, 0o600)
		}, "000001.toml"},
		{"bytes and their hash", func(t *testing.T, s *Store) {
			// Rewrite both the bytes and the hash in 000001.json: the
			// successor's previous-version hash still catches it.
			evil := []byte("allow_any = true\n")
			os.WriteFile(s.bytesPath(1), evil, 0o600)
			m, _ := os.ReadFile(s.metaPath(1))
			old := sha256.Sum256(cfgA)
			bad := sha256.Sum256(evil)
			m = bytes.Replace(m, []byte(hexs(old[:])), []byte(hexs(bad[:])), 1)
			os.WriteFile(s.metaPath(1), m, 0o600)
		}, "000001.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			s.Apply(cfgA, ApplyOptions{})
			s.Apply(cfgB, ApplyOptions{})
			s.Close()
			tc.tamper(t, s)
			s = openT(t, dir, Options{})
			before := snapshot(t, dir)

			_, err := s.Rollback(1, ApplyOptions{})
			var ie *IntegrityError
			if !errors.As(err, &ie) || ie.Version != 1 || filepath.Base(ie.File) != tc.file {
				t.Fatalf("Rollback(1) on tampered history: %v, want an IntegrityError naming %s", err, tc.file)
			}
			if !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), "version 1") {
				t.Fatalf("error does not name the file and version: %v", err)
			}
			if !equalSnap(before, snapshot(t, dir)) {
				t.Fatal("a refused rollback changed files")
			}
			if !bytes.Equal(readLive(t, s), cfgB) {
				t.Fatal("live file changed")
			}
			if _, _, err := s.Get(1); !errors.As(err, &ie) {
				t.Fatalf("Get(1): %v", err)
			}
			if _, err := s.Diff(1, 2); !errors.As(err, &ie) {
				t.Fatalf("Diff(1, 2): %v", err)
			}
			if err := s.Verify(); !errors.As(err, &ie) {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return string(out)
}

type lineError struct {
	line   int
	reason string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.reason) }

func TestInvalidConfigRefusedWithoutChange(t *testing.T) {
	dir := t.TempDir()
	validate := func(b []byte) error {
		if bytes.Contains(b, []byte("bogus")) {
			return &lineError{2, `unknown key "bogus"`}
		}
		return nil
	}
	s := openT(t, dir, Options{Validate: validate})
	if _, err := s.Apply(cfgA, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	bad := []byte("listen = \":1\"\nbogus = 1\n")
	for name, apply := range map[string]func() error{
		"Apply":          func() error { _, err := s.Apply(bad, ApplyOptions{}); return err },
		"ApplyConfirmed": func() error { _, err := s.ApplyConfirmed(bad, 60e9, ApplyOptions{}); return err },
	} {
		err := apply()
		var le *lineError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &le) || le.line != 2 {
			t.Fatalf("%s of an invalid config: %v, want ErrInvalid wrapping the validator's error", name, err)
		}
		if !equalSnap(before, snapshot(t, dir)) {
			t.Fatalf("%s of an invalid config changed files", name)
		}
	}
	if _, ok := s.Pending(); ok {
		t.Fatal("refused ApplyConfirmed left a pending change")
	}
	if cur, _ := s.Current(); cur.Number != 1 {
		t.Fatalf("Current = %d", cur.Number)
	}
	small := openT(t, t.TempDir(), Options{MaxSize: 8})
	if _, err := small.Apply(cfgA, ApplyOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized config: %v", err)
	}
}

// A crash between writing the temporary file and renaming it over the live
// file (simulated by a failing rename) leaves the live file as it was and
// records nothing; a temporary file a real crash left is removed by Open.
func TestCrashBeforeRenameLeavesLiveIntact(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := s.Apply(cfgA, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	crash := errors.New("simulated crash")
	var tmpSeen string
	s.rename = func(oldpath, newpath string) error {
		if newpath == s.LiveFile() {
			tmpSeen = oldpath
			if b, err := os.ReadFile(oldpath); err != nil || !bytes.Equal(b, cfgB) {
				t.Errorf("temporary file %s holds %q, %v", oldpath, b, err)
			}
			return crash
		}
		return os.Rename(oldpath, newpath)
	}
	_, err := s.Apply(cfgB, ApplyOptions{})
	if !errors.Is(err, crash) || !strings.Contains(err.Error(), s.LiveFile()) {
		t.Fatalf("Apply with a failing rename: %v", err)
	}
	if tmpSeen == "" {
		t.Fatal("the rename hook never saw the live file")
	}
	if !equalSnap(before, snapshot(t, dir)) {
		t.Fatalf("a failed apply left changes:\nbefore %v\nafter  %v", before, snapshot(t, dir))
	}
	if cur, _ := s.Current(); cur.Number != 1 || len(s.History()) != 1 {
		t.Fatalf("Current %d, history %d after a failed apply", cur.Number, len(s.History()))
	}
	// ApplyConfirmed fails the same way and leaves nothing pending.
	if _, err := s.ApplyConfirmed(cfgB, 60e9, ApplyOptions{}); !errors.Is(err, crash) {
		t.Fatalf("ApplyConfirmed with a failing rename: %v", err)
	}
	if _, ok := s.Pending(); ok || !equalSnap(before, snapshot(t, dir)) {
		t.Fatal("a failed ApplyConfirmed left changes")
	}
	s.rename = os.Rename
	if v, err := s.Apply(cfgB, ApplyOptions{}); err != nil || v.Number != 2 {
		t.Fatalf("Apply after the failure: %+v, %v", v, err)
	}

	// A real crash leaves the temporary file behind; Open removes it and
	// leaves other dot-files alone.
	s.Close()
	stale := filepath.Join(dir, ".node.toml"+tempMark+"123")
	os.WriteFile(stale, cfgC, 0o600)
	other := filepath.Join(dir, ".keep.tmp-1")
	os.WriteFile(other, nil, 0o600)
	s = openT(t, dir, Options{})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("Open left a stale temporary file")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("Open removed a file that is not its own")
	}
	if !bytes.Equal(readLive(t, s), cfgB) {
		t.Fatal("live file changed")
	}
}

func TestOpenReconciles(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "node.toml")
	os.WriteFile(live, cfgA, 0o640)
	var events []Event
	opts := Options{OnEvent: func(e Event) { events = append(events, e) }}

	// An existing file and no history: version 1.
	s := openT(t, dir, opts)
	if cur, err := s.Current(); err != nil || cur.Number != 1 || cur.Kind != KindRecovered || cur.SHA256 != sha256.Sum256(cfgA) {
		t.Fatalf("adopted = %+v, %v", cur, err)
	}
	if len(events) != 1 || events[0].Kind != EventRecovered {
		t.Fatalf("events %+v", events)
	}
	s.Close()

	// Edited by hand: recorded as a new version, old one still there.
	os.WriteFile(live, cfgB, 0o640)
	s = openT(t, dir, opts)
	if cur, _ := s.Current(); cur.Number != 2 || cur.Kind != KindRecovered || !strings.Contains(cur.Comment, "did not match version 1") {
		t.Fatalf("after a hand edit Current = %+v", cur)
	}
	if len(events) != 2 {
		t.Fatalf("events %+v", events)
	}
	// Applying keeps the file's mode.
	if _, err := s.Apply(cfgC, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(live); fi.Mode().Perm() != 0o640 {
		t.Fatalf("live file mode %v, want 0640", fi.Mode().Perm())
	}
	s.Close()

	// Deleted: restored from the latest version.
	os.Remove(live)
	s = openT(t, dir, opts)
	if !bytes.Equal(readLive(t, s), cfgC) || len(events) != 3 || events[2].Kind != EventRecovered {
		t.Fatalf("missing live file not restored; events %+v", events)
	}
	s.Close()

	// Unchanged: nothing to report.
	s = openT(t, dir, opts)
	if len(events) != 3 {
		t.Fatalf("an unchanged store reported %+v", events[3:])
	}
	s.Close()

	// A history file that does not parse stops Open, naming it.
	os.WriteFile(filepath.Join(dir, DefaultHistoryDir, "000002.json"), []byte("{"), 0o600)
	if _, err := Open(dir, opts); err == nil || !strings.Contains(err.Error(), "000002.json") {
		t.Fatalf("Open with a broken history file: %v", err)
	}
}

func TestBoundedHistory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Keep: 3})
	for i := range 5 {
		if _, err := s.Apply([]byte{byte('a' + i), '\n'}, ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h := s.History()
	if len(h) != 3 || h[0].Number != 3 || h[2].Number != 5 {
		t.Fatalf("history %+v", h)
	}
	for _, n := range []int{1, 2} {
		if _, err := os.Stat(s.metaPath(n)); !os.IsNotExist(err) {
			t.Fatalf("version %d's metadata still there", n)
		}
		if _, err := os.Stat(s.bytesPath(n)); !os.IsNotExist(err) {
			t.Fatalf("version %d's bytes still there", n)
		}
	}
	if _, err := s.Rollback(1, ApplyOptions{}); !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "kept: 3 to 5") {
		t.Fatalf("rollback to a pruned version: %v", err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, dir, Options{Keep: 3})
	if _, err := s.Rollback(3, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if h := s.History(); len(h) != 3 || h[0].Number != 4 {
		t.Fatalf("history after reopen and rollback %+v", h)
	}
	if _, err := Open(t.TempDir(), Options{Keep: 1}); err == nil {
		t.Fatal("Keep 1 accepted")
	}
}

func TestDiff(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	a := "identity = \"id.key\"\nlisten = \":9253\"\nlog_level = \"info\"\nidle_timeout = \"30s\"\nreconnect_min = \"1s\"\nreconnect_max = \"1m\"\ncontrol = \"/run/pool/control.sock\"\nallow_any = false\n"
	b := "identity = \"id.key\"\nlisten = \":9253\"\nlog_level = \"debug\"\nidle_timeout = \"30s\"\nreconnect_min = \"1s\"\nreconnect_max = \"1m\"\ncontrol = \"/run/pool/control.sock\"\nallow_any = false\nheartbeat_interval = \"2s\""
	v1, _ := s.Apply([]byte(a), ApplyOptions{})
	v2, _ := s.Apply([]byte(b), ApplyOptions{})
	got, err := s.Diff(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := "--- version 1 (sha256 " + v1.ShortHash() + ")\n" +
		"+++ version 2 (sha256 " + v2.ShortHash() + ")\n" +
		"@@ -1,8 +1,9 @@\n" +
		" identity = \"id.key\"\n" +
		" listen = \":9253\"\n" +
		"-log_level = \"info\"\n" +
		"+log_level = \"debug\"\n" +
		" idle_timeout = \"30s\"\n" +
		" reconnect_min = \"1s\"\n" +
		" reconnect_max = \"1m\"\n" +
		" control = \"/run/pool/control.sock\"\n" +
		" allow_any = false\n" +
		"+heartbeat_interval = \"2s\"\n" +
		"\\ No newline at end of file\n"
	if got != want {
		t.Fatalf("Diff(1, 2) =\n%s\nwant\n%s", got, want)
	}
	if d, _ := s.Diff(2, 2); d != "" {
		t.Fatalf("Diff of a version with itself = %q", d)
	}
}

func TestUnifiedDiffCases(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"", "x\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"},
		{"x\n", "", "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n"},
		{"a\nb\nc\n", "a\nc\n", "--- a\n+++ b\n@@ -1,3 +1,2 @@\n a\n-b\n c\n"},
		{"a\n", "a", "--- a\n+++ b\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n"},
		{"1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\nX\n4\n5\n6\nY\n8\n",
			"--- a\n+++ b\n@@ -1,8 +1,8 @@\n 1\n 2\n-3\n+X\n 4\n 5\n 6\n-7\n+Y\n 8\n"},
		// Two hunks, checked against GNU diff -u.
		{"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\n12\n13",
			"--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n 12\n+13\n\\ No newline at end of file\n"},
	} {
		if got := UnifiedDiff("a", "b", []byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("UnifiedDiff(%q, %q) =\n%s\nwant\n%s", tc.a, tc.b, got, tc.want)
		}
	}
}
