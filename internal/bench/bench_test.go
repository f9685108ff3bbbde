package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestQuickRunEverySuite runs every suite at the smoke-test scale over
// real loopback sockets and checks that the report carries every figure
// the issue names, in the table and in the JSON. Speed is not asserted.
func TestQuickRunEverySuite(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	o := Quick()
	o.Progress = &progress
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var obj map[string]map[string]any
	if err := json.Unmarshal(js.Bytes(), &obj); err != nil {
		t.Fatalf("JSON is not one object of objects: %v\n%s", err, js.String())
	}
	for _, key := range []string{"bulk.pool_mbps", "bulk.pool_8ch_mbps", "bulk.pool_8sess_mbps", "bulk.tcp_mbps",
		"bulk.tls13_mbps", "bulk.tls12_chacha_mbps", "bulk.ceiling_mbps",
		"handshake.server_cpu_us", "handshake.tls13_server_cpu_us", "handshake.per_s",
		"latency.pool_p50_us", "latency.pool_p99_us", "latency.tls_p50_us", "latency.tcp_p50_us",
		"memory.heap_per_session_bytes", "flood.inits_per_s", "flood.heap_growth_bytes",
		"flood.client_connect_ms", "machine.cores",
		"bridge.direct_mbps", "bridge.pool_mbps", "bridge.pool_over_direct", "bridge.direct_p50_us", "bridge.pool_p50_us",
		"bridge.direct_parallel_rps", "bridge.pool_parallel_rps"} {
		suite, name, _ := strings.Cut(key, ".")
		v, ok := obj[suite][name].(float64)
		if !ok {
			t.Errorf("%s missing or not a number in\n%s", key, js.String())
			continue
		}
		// Every figure here is a measured positive quantity, except the
		// heap growth, which may be negative.
		if v <= 0 && key != "flood.heap_growth_bytes" {
			t.Errorf("%s = %v, want > 0", key, v)
		}
	}
	if f := r.Flood; f.Answered != int64(f.Inits) || !f.Limited.ClientOK {
		t.Errorf("flood: %d of %d INITs answered; client of another prefix ok=%v", f.Answered, f.Inits, f.Limited.ClientOK)
	}
	// The bridge suite runs whether or not curl and stunnel are installed,
	// and says which way it went.
	if _, err := exec.LookPath("curl"); (err == nil) != (r.Bridge.Client == "curl") || (err != nil && r.Bridge.Client != "go") {
		t.Errorf("bridge.client = %q; curl installed: %v", r.Bridge.Client, err == nil)
	}
	if _, ok := stunnelBinary(); ok {
		for _, key := range []string{"stunnel_mbps", "pool_over_stunnel", "stunnel_p50_us", "stunnel_parallel_rps"} {
			if v, _ := obj["bridge"][key].(float64); v <= 0 {
				t.Errorf("stunnel is installed but bridge.%s = %v", key, obj["bridge"][key])
			}
		}
		if !strings.HasPrefix(r.Bridge.StunnelTLS, "TLSv1.") || !strings.Contains(r.Bridge.Stunnel, "stunnel ") {
			t.Errorf("stunnel's version %q or TLS %q not recorded", r.Bridge.Stunnel, r.Bridge.StunnelTLS)
		}
	} else if _, ok := obj["bridge"]["stunnel_mbps"]; ok || r.Bridge.StunnelNote == "" {
		t.Errorf("stunnel is not installed, yet a figure (%v) or no note (%q)", obj["bridge"]["stunnel_mbps"], r.Bridge.StunnelNote)
	}
	if r.Handshake.Difficulty < 16 {
		t.Errorf("handshake difficulty %d below 16", r.Handshake.Difficulty)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POOL/TLS1.2-ChaCha", "POOL/ceiling", "server CPU per handshake", "p50", "heap (after GC)", "CHALLENGEs answered", "POOL bridge (tcp2pool → pool2tcp)", "bridge/direct"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, s := range Suites {
		if !strings.Contains(progress.String(), "bench: "+s+": done") {
			t.Errorf("no progress line for %s:\n%s", s, progress.String())
		}
	}
	t.Logf("\n%s", table.String())
}

func TestParseSuites(t *testing.T) {
	if s, err := ParseSuites("latency, bulk,latency"); err != nil || strings.Join(s, ",") != "latency,bulk" {
		t.Errorf("ParseSuites = %v, %v", s, err)
	}
	if _, err := ParseSuites("bulk,speed"); err == nil || !strings.Contains(err.Error(), "speed") {
		t.Errorf("unknown suite accepted: %v", err)
	}
}
