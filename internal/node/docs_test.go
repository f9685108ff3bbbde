package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleConfig: docs/node.example.toml is valid and shows every key,
// and docs/OPERATIONS.md documents every key.
func TestExampleConfig(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "node.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "identity.key")
	allowed := writeFile(t, filepath.Join(dir, "authorized_peers"), "")
	text := strings.NewReplacer(`"/etc/pool/identity.key"`, `"`+key+`"`,
		`"/etc/pool/authorized_peers"`, `"`+allowed+`"`).Replace(string(example))
	cfg, err := LoadConfig(writeFile(t, filepath.Join(dir, "node.toml"), text))
	if err != nil {
		t.Fatalf("the example configuration: %v", err)
	}
	if cfg.Listen != DefaultListen || cfg.Control != DefaultControl || cfg.IdleTimeout != DefaultIdleTimeout ||
		cfg.ReconnectMin != DefaultReconnectMin || cfg.ReconnectMax != DefaultReconnectMax ||
		cfg.SelftestInterval != DefaultSelftestInterval || len(cfg.Peers) != 2 {
		t.Errorf("the example does not show the defaults: %+v", cfg)
	}
	ops, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range knownKeys {
		if !strings.Contains(string(example), "\n"+k+" = ") && !strings.Contains(string(example), "# "+k+" = ") &&
			!strings.Contains(string(example), "[["+k+"]]") && !strings.Contains(string(example), "\n["+k+"]\n") &&
			!strings.Contains(string(example), "\n[["+k+".") {
			t.Errorf("docs/node.example.toml does not show %q", k)
		}
		if !strings.Contains(string(ops), "| `"+k+"` |") && !strings.Contains(string(ops), "| `[["+k+"]]` |") &&
			!strings.Contains(string(ops), "| `["+k+"]` |") {
			t.Errorf("docs/OPERATIONS.md has no reference row for %q", k)
		}
	}
	for _, k := range knownPeerKeys {
		if !strings.Contains(string(ops), "| `peer."+k+"` |") {
			t.Errorf("docs/OPERATIONS.md has no reference row for peer.%s", k)
		}
	}
	for _, k := range knownTCP2PoolKeys {
		if !strings.Contains(string(ops), "| `bridge.tcp2pool."+k+"` |") {
			t.Errorf("docs/OPERATIONS.md has no reference row for bridge.tcp2pool.%s", k)
		}
	}
	for _, k := range knownPool2TCPKeys {
		if !strings.Contains(string(ops), "| `bridge.pool2tcp."+k+"` |") {
			t.Errorf("docs/OPERATIONS.md has no reference row for bridge.pool2tcp.%s", k)
		}
	}
	if len(cfg.Bridges.TCP2Pool) != 1 || cfg.Bridges.Pool2TCP == nil {
		t.Errorf("the example does not show the bridge sections: %+v", cfg.Bridges)
	}
	for _, k := range knownPublishKeys {
		if !strings.Contains(string(ops), "| `journal_publish."+k+"` |") {
			t.Errorf("docs/OPERATIONS.md has no reference row for journal_publish.%s", k)
		}
	}
	for _, m := range Methods {
		if !strings.Contains(string(ops), "| `"+m+"` |") {
			t.Errorf("docs/OPERATIONS.md does not document control method %q", m)
		}
	}
}
