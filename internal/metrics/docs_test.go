package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDocs: docs/grafana-dashboard.json queries only metrics the
// collector exports, and docs/OPERATIONS.md documents every one.
func TestDocs(t *testing.T) {
	ch := make(chan *prometheus.Desc, 64)
	NewCollector(&fakeSource{}).Describe(ch)
	close(ch)
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		names[fq.FindStringSubmatch(d.String())[1]] = true
	}
	dash, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\bpool_[a-z_]+`).FindAllString(string(dash), -1) {
		if !names[m] {
			t.Errorf("docs/grafana-dashboard.json uses %s, which is not exported", m)
		}
	}
	ops, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range names {
		if !strings.Contains(string(ops), "| `"+n+"` |") {
			t.Errorf("docs/OPERATIONS.md has no row for %s", n)
		}
	}
}
