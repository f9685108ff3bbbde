package node

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pool-go/pool"
)

// newKeyFile saves a new identity in dir and returns its path and identity.
func newKeyFile(t *testing.T, dir, name string) (string, *pool.Identity) {
	t.Helper()
	id, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := id.Save(path, false); err != nil {
		t.Fatal(err)
	}
	return path, id
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	_, id := newKeyFile(t, dir, "node.key")
	_, peerID := newKeyFile(t, dir, "peer.key")
	writeFile(t, filepath.Join(dir, "authorized_peers"), "# allowed\n"+peerID.Public.String()+" peer\n")
	// Relative paths are relative to the configuration file's directory.
	path := writeFile(t, filepath.Join(dir, "node.toml"), fmt.Sprintf(`
identity = "node.key"
authorized_peers = "authorized_peers"

[[peer]]
address = "10.0.0.5"
key = %q
`, peerID.Public))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.IdentityFile != filepath.Join(dir, "node.key") || cfg.Identity.Public != id.Public {
		t.Errorf("file %q identity %q %v", cfg.File, cfg.IdentityFile, cfg.Identity)
	}
	if cfg.Listen != DefaultListen || cfg.Control != DefaultControl || cfg.LogLevel != slog.LevelInfo ||
		cfg.IdleTimeout != 30*time.Second || cfg.ReconnectMin != time.Second || cfg.ReconnectMax != time.Minute ||
		cfg.SelftestInterval != time.Minute {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.AllowAny || cfg.AuthorizedPeers.Len() != 1 || !cfg.AuthorizedPeers.Allowed(peerID.Public) {
		t.Errorf("authorization: allow_any %v, %d keys", cfg.AllowAny, cfg.AuthorizedPeers.Len())
	}
	if len(cfg.Peers) != 1 || cfg.Peers[0].Address != "10.0.0.5" || cfg.Peers[0].Key != peerID.Public || cfg.Peers[0].Name != "" {
		t.Errorf("peers %+v", cfg.Peers)
	}
}

func TestConfigAllKeys(t *testing.T) {
	dir := t.TempDir()
	keyPath, _ := newKeyFile(t, dir, "node.key")
	_, p1 := newKeyFile(t, dir, "p1.key")
	_, p2 := newKeyFile(t, dir, "p2.key")
	path := writeFile(t, filepath.Join(dir, "node.toml"), fmt.Sprintf(`# every key
identity = %q
listen = "off"
control = "ctl/control.sock"
log_level = "debug"
idle_timeout = "45s"
reconnect_min = "100ms"
reconnect_max = "5s"
selftest_interval = "10s"

[[peer]]
name = "db1"
address = "db1.example:9999"
key = %q

[[peer]]
name = "db2"
address = "[2001:db8::1]:9253"
key = "%x"   # hex works too
`, keyPath, p1.Public, p2.Public[:]))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "" || cfg.Control != filepath.Join(dir, "ctl/control.sock") || cfg.LogLevel != slog.LevelDebug ||
		cfg.IdleTimeout != 45*time.Second || cfg.ReconnectMin != 100*time.Millisecond || cfg.ReconnectMax != 5*time.Second ||
		cfg.SelftestInterval != 10*time.Second {
		t.Errorf("%+v", cfg)
	}
	if len(cfg.Peers) != 2 || cfg.Peers[1].Name != "db2" || cfg.Peers[1].Key != p2.Public {
		t.Errorf("peers %+v", cfg.Peers)
	}
}

// TestConfigErrors: every refusal names the file, the line and the reason.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	keyPath, self := newKeyFile(t, dir, "node.key")
	_, peer := newKeyFile(t, dir, "peer.key")
	open := filepath.Join(dir, "open.key")
	data, _ := os.ReadFile(keyPath)
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	allowed := writeFile(t, filepath.Join(dir, "allowed"), peer.Public.String()+"\n")
	badAllowed := writeFile(t, filepath.Join(dir, "bad_allowed"), "# ok\nnot-a-key\n")
	head := fmt.Sprintf("identity = %q\nlisten = \"off\"\n", keyPath) // lines 1-2
	peerTable := func(extra string) string {
		return fmt.Sprintf("[[peer]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\nkey = %q\n%s", peer.Public, extra)
	}
	for _, tc := range []struct {
		name, text string
		line       int
		want       []string
	}{
		{"syntax", head + "log_level = \"info\n", 3, []string{"syntax error"}},
		{"syntax bare value", head + "control = /run/x\n", 3, []string{"syntax error"}},
		{"unknown key", head + "idle_timout = \"3s\"\n", 3, []string{`unknown key "idle_timout"`, `did you mean "idle_timeout"`}},
		{"unknown peer key", head + peerTable("adress = \"x\"\n"), 7, []string{"peer[0]", `unknown key "adress"`, `did you mean "address"`}},
		{"unknown table", head + "[server]\nport = 1\n", 3, []string{`unknown key "server"`}},
		{"wrong type", head + "allow_any = \"yes\"\n", 3, []string{"allow_any", "want true or false"}},
		{"bad duration", head + "\nidle_timeout = \"30\"\n", 4, []string{"idle_timeout", `bad duration "30"`}},
		{"negative duration", head + "reconnect_max = \"-1s\"\n", 3, []string{"reconnect_max", "must be positive"}},
		{"min above max", head + "reconnect_min = \"2m\"\n", 3, []string{"reconnect_min", "more than reconnect_max"}},
		{"selftest_interval too short", head + "selftest_interval = \"500ms\"\n", 3, []string{"selftest_interval", "between 1s and 1h0m0s", `"500ms"`}},
		{"selftest_interval too long", head + "selftest_interval = \"2h\"\n", 3, []string{"selftest_interval", "between 1s and 1h0m0s"}},
		{"selftest_interval zero", head + "selftest_interval = \"0s\"\n", 3, []string{"selftest_interval", "must be positive"}},
		{"selftest_interval bad", head + "selftest_interval = \"1 minute\"\n", 3, []string{"selftest_interval", "bad duration"}},
		{"selftest_interval typo", head + "selftest_intervall = \"1m\"\n", 3, []string{`did you mean "selftest_interval"`}},
		{"bad level", head + "log_level = \"loud\"\n", 3, []string{"log_level", `unknown level "loud"`}},
		{"missing identity", "listen = \"off\"\n", 0, []string{"identity", "required", "pool keygen"}},
		{"identity missing file", "listen = \"off\"\n\nidentity = \"nope.key\"\n", 3, []string{"identity", "does not exist"}},
		{"identity mode 0644", fmt.Sprintf("listen = \"off\"\nidentity = %q\n", open), 2, []string{"identity", "accessible by group/others", "chmod 600"}},
		{"neither allow_any nor authorized_peers", fmt.Sprintf("identity = %q\nlisten = \":0\"\n", keyPath), 2, []string{"listen", "authorized_peers", "allow_any"}},
		{"both", fmt.Sprintf("identity = %q\nauthorized_peers = %q\nallow_any = true\n", keyPath, allowed), 3, []string{"allow_any", "choose one"}},
		{"authorized_peers unreadable", fmt.Sprintf("identity = %q\nauthorized_peers = \"missing\"\n", keyPath), 2, []string{"authorized_peers", "cannot read", "no such file"}},
		{"authorized_peers malformed", fmt.Sprintf("identity = %q\nauthorized_peers = %q\n", keyPath, badAllowed), 2, []string{"authorized_peers", badAllowed + ":2", "not a public key"}},
		{"bad listen", head[:len(head)-len("listen = \"off\"\n")] + "listen = \"host:http\"\n", 2, []string{"listen", "bad port"}},
		{"bad peer key", head + "[[peer]]\naddress = \"h\"\nkey = \"abc\"\n", 5, []string{"peer[0].key", "not a public key"}},
		{"peer key missing", head + "[[peer]]\naddress = \"h\"\n", 3, []string{"peer[0].key", "required"}},
		{"peer address missing", head + "[[peer]]\nkey = \"" + peer.Public.String() + "\"\n", 3, []string{"peer[0].address", "required"}},
		{"peer bad address", head + "[[peer]]\naddress = \"h:99999\"\nkey = \"" + peer.Public.String() + "\"\n", 4, []string{"peer[0].address", "bad port"}},
		{"duplicate peer", head + peerTable("") + "\n" + strings.Replace(peerTable(""), `"a"`, `"b"`, 1), 11, []string{"peer[1].key", "duplicate peer", "peer[0]"}},
		{"duplicate name", head + peerTable("") + "[[peer]]\nname = \"a\"\naddress = \"h\"\nkey = \"" + self.Public.String() + "\"\n", 8, []string{"peer[1].name", `duplicate peer name "a"`}},
		{"own key", head + "[[peer]]\naddress = \"h\"\nkey = \"" + self.Public.String() + "\"\n", 5, []string{"peer[0].key", "own key"}},
		{"wrong type in second peer", head + peerTable("") + "[[peer]]\naddress = 5\n", 8, []string{"peer[1].address", "wrong type"}},
		{"control too long", head + "control = \"/" + strings.Repeat("x", 120) + "\"\n", 3, []string{"control", "Unix socket paths"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), "node.toml"), tc.text)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.text)
			}
			prefix := fmt.Sprintf("config %s:%d: ", path, tc.line)
			if tc.line == 0 {
				prefix = fmt.Sprintf("config %s: ", path)
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	if _, err := LoadConfig(missing); err == nil || err.Error() != "config "+missing+": cannot read: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if os.Geteuid() != 0 {
		p := writeFile(t, filepath.Join(dir, "secret.toml"), "listen = \"off\"\n")
		os.Chmod(p, 0)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable file: %v", err)
		}
	}
}

func TestKeyLines(t *testing.T) {
	kl := indexKeys(`# comment
a = 1
"quoted key" = 2
s = """
b = "not a key"
"""
[tbl]
c.d = 3
[[peer]]
x = 1
[[peer]]
x = 2 # comment
`)
	for key, line := range map[string]int{"a": 2, "quoted key": 3, "tbl": 7, "tbl.c.d": 8,
		"peer[0]": 9, "peer[0].x": 10, "peer[1].x": 12, "peer[1].y": 11, "b": 0, "peer[7].x": 0} {
		if got := kl.line(key); got != line {
			t.Errorf("line(%q) = %d, want %d", key, got, line)
		}
	}
}
