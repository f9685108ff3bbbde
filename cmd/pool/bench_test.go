package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// pool bench --quick --json: stdout is exactly one JSON object holding the
// suites asked for and no others; progress goes to stderr.
func TestBenchJSON(t *testing.T) {
	code, out, errOut := runCmd(t, "bench", "--quick", "--suite", "latency,handshake", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Errorf("more than one JSON value on stdout:\n%s", out)
	}
	for _, k := range []string{"machine", "latency", "handshake"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("key %q missing:\n%s", k, out)
		}
	}
	for _, k := range []string{"bulk", "memory", "flood"} {
		if _, ok := obj[k]; ok {
			t.Errorf("suite %q was not asked for but is in the output", k)
		}
	}
	if !strings.Contains(errOut, "bench: latency: done") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--suite", "bulk,speed"},
		{"bench", "--size", "10"},
		{"bench", "--duration", "-1s"},
		{"bench", "extra"},
	} {
		code, _, errOut := runCmd(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "pool: ") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
