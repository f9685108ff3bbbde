package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/pool-go/pool"
	"github.com/pool-go/pool/internal/selftest"
)

// TestMetricsEndpoint: a node with metrics_listen serves /metrics, whose
// byte counters move during a transfer and which passes the linter, and
// /healthz, 200 while the node is sound and 503 once it is compromised.
func TestMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	_, cID := newKeyFile(t, dir, "c.key")
	allow := writeFile(t, filepath.Join(dir, "allow_c"), cID.Public.String()+"\n")
	key, aID := newKeyFile(t, dir, "a.key")
	path := writeFile(t, filepath.Join(dir, "a.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nauthorized_peers = %q\ncontrol = %q\nselftest_interval = \"1s\"\nheartbeat_interval = \"100ms\"\nmetrics_listen = \"127.0.0.1:0\"\n",
		key, allow, filepath.Join(dir, "a.sock")))
	var alert syncBuffer
	a := startNode(t, path, Options{Alert: &alert, Version: "v9.9.9-test"})
	if a.MetricsAddr() == nil {
		t.Fatal("metrics_listen set, but no metrics server")
	}
	base := "http://" + a.MetricsAddr().String()
	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz of a sound node: %d %q", code, body)
	}

	// C dials A; A opens a channel to C and sends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := pool.Dial(ctx, a.ListenAddr().String(), aID.Public, &pool.Config{Identity: cID})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	waitFor(t, 5*time.Second, "A lists C's session", func() bool { return len(a.Sessions()) == 1 })
	var as *pool.Session
	a.mu.Lock()
	for s := range a.sessions {
		as = s
	}
	a.mu.Unlock()
	ch, err := as.OpenChannel(7)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		c, err := cs.AcceptChannel(ctx)
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	chunk := make([]byte, 64<<10)
	send := func() {
		t.Helper()
		if _, err := ch.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	sent := `pool_peer_bytes_total{direction="sent",origin="inbound",peer="` + cID.Public.String()[:12] + `"}`
	send()
	var first float64
	waitFor(t, 5*time.Second, "the first chunk counted", func() bool {
		first = metricValue(t, scrape(t, base), sent)
		return first >= float64(len(chunk))
	})
	send()
	send()
	var body string
	waitFor(t, 5*time.Second, "the byte counter moving", func() bool {
		body = scrape(t, base)
		return metricValue(t, body, sent) >= first+2*float64(len(chunk))
	})
	_ = ch.CloseWrite()
	select {
	case n := <-got:
		if n != 3*int64(len(chunk)) {
			t.Errorf("C received %d bytes, want %d", n, 3*len(chunk))
		}
	case <-ctx.Done():
		t.Fatal("C did not receive the transfer")
	}
	for _, s := range []string{
		`pool_sessions{origin="inbound"} 1`,
		`pool_handshakes_total{outcome="accepted"} 1`,
		`pool_node_compromised 0`,
		`pool_build_info{goversion="`,
		`version="v9.9.9-test"} 1`,
		`pool_peer_channel_bytes_total{channel="7",direction="sent",origin="inbound"`,
		`pool_peer_packets_total{direction="received",origin="inbound"`,
		`pool_peer_mtu_bytes{origin="inbound"`,
		`pool_journal_entries `,
		`pool_config_version 1`, // the file as the node started: version 1 of its history
	} {
		if !strings.Contains(body, s) {
			t.Errorf("/metrics lacks %q:\n%s", s, body)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	// A's self-test fails: /healthz says so.
	restore := selftest.CorruptForTest(selftest.PrimHMAC)
	waitFor(t, 5*time.Second, "A compromised", func() bool { return a.Status().Compromised })
	restore()
	code, hz := httpGet(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(hz, "compromised") || !strings.Contains(hz, "HMAC-SHA256") {
		t.Errorf("/healthz of a compromised node: %d %q", code, hz)
	}
	if v := metricValue(t, scrape(t, base), "pool_node_compromised"); v != 1 {
		t.Errorf("pool_node_compromised = %v", v)
	}

	// Shutdown stops the server.
	addr := a.MetricsAddr().String()
	shutdown(t, a)
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the metrics server answers after Shutdown")
	}
}

// TestMetricsListenConfig: metrics_listen is off by default, validated,
// cannot change on reload, and a port in use is a clear start error.
func TestMetricsListenConfig(t *testing.T) {
	dir := t.TempDir()
	key, _ := newKeyFile(t, dir, "n.key")
	base := fmt.Sprintf("identity = %q\nlisten = \"off\"\ncontrol = %q\n", key, filepath.Join(dir, "n.sock"))
	path := filepath.Join(dir, "n.toml")
	cfg, err := LoadConfig(writeFile(t, path, base))
	if err != nil || cfg.MetricsListen != "" {
		t.Fatalf("default metrics_listen: %q, %v", cfg.MetricsListen, err)
	}
	for _, bad := range []string{"localhost", "127.0.0.1:http", "127.0.0.1:70000", ":0", "::1:9254"} {
		_, err := LoadConfig(writeFile(t, path, base+fmt.Sprintf("metrics_listen = %q\n", bad)))
		if err == nil || !strings.Contains(err.Error(), ":4: metrics_listen: ") {
			t.Errorf("metrics_listen = %q: %v", bad, err)
		}
	}
	for _, good := range []string{"127.0.0.1:9254", "[::1]:9254", ":9254", "localhost:9254"} {
		if cfg, err := LoadConfig(writeFile(t, path, base+fmt.Sprintf("metrics_listen = %q\n", good))); err != nil || cfg.MetricsListen != good {
			t.Errorf("metrics_listen = %q: %v", good, err)
		}
	}

	// Two nodes, one port.
	n := startNode(t, writeFile(t, path, base+"metrics_listen = \"127.0.0.1:0\"\n"), Options{})
	taken := n.MetricsAddr().String()
	key2, _ := newKeyFile(t, dir, "m.key")
	cfg2, err := LoadConfig(writeFile(t, filepath.Join(dir, "m.toml"), fmt.Sprintf(
		"identity = %q\nlisten = \"127.0.0.1:0\"\nallow_any = true\ncontrol = %q\nmetrics_listen = %q\n",
		key2, filepath.Join(dir, "m.sock"), taken)))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Start(cfg2, Options{Logger: testLogger()}); err == nil {
		shutdown(t, m)
		t.Error("a second node started on a metrics port in use")
	} else if !strings.Contains(err.Error(), "cannot listen for metrics on "+taken) || !strings.Contains(err.Error(), "is using that port") {
		t.Errorf("port in use: %v", err)
	}

	// metrics_listen needs a restart.
	writeFile(t, path, base+"metrics_listen = \"127.0.0.1:9\"\n")
	if _, err := n.Reload(); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Errorf("reload changing metrics_listen: %v", err)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return body
}

// metricValue is the value of the series named exactly so in body, or -1.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
