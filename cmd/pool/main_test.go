package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pool-go/pool"
)

// runCmd runs the pool command line args in-process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestDemo(t *testing.T) {
	code, out, errOut := runCmd(t, "demo", "--size", "262144", "--channels", "4")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"handshake", "session", "throughput", "MB/s", "Mbit/s",
		"packets sent", "challenges sent 1", "ok: all 4 channels verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "…  verified\n"); n != 4 {
		t.Errorf("%d channels verified, want 4:\n%s", n, out)
	}
	// Both node addresses are printed in their text form and parse.
	var addrs int
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "pool:") {
			if _, err := pool.ParseAddress(f); err != nil {
				t.Errorf("printed address %q: %v", f, err)
			}
			addrs++
		}
	}
	if addrs != 2 {
		t.Errorf("%d addresses printed, want 2", addrs)
	}
	if errOut != "" {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestDemoJSON(t *testing.T) {
	code, out, errOut := runCmd(t, "demo", "--json", "--size", "100000", "--channels", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep demoReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if !rep.OK || len(rep.Channels) != 3 || rep.TotalBytes != 300000 {
		t.Fatalf("report: %+v", rep)
	}
	for _, c := range rep.Channels {
		if !c.Verified || c.Sent != 100000 || c.Received != 100000 {
			t.Errorf("channel %+v", c)
		}
	}
	if rep.ClientStats.BytesSent != 300000 || rep.ServerStats.BytesReceived != 300000 {
		t.Errorf("session stats: client %+v, server %+v", rep.ClientStats, rep.ServerStats)
	}
	if rep.Listener.Accepted != 1 || rep.Listener.Sessions != 1 || len(rep.SessionID) != 32 {
		t.Errorf("listener %+v, session ID %q", rep.Listener, rep.SessionID)
	}
}

func TestDemoEmptyChannels(t *testing.T) {
	if code, out, errOut := runCmd(t, "demo", "--size", "0", "--channels", "2"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestDemoTimeout(t *testing.T) {
	code, out, errOut := runCmd(t, "demo", "--timeout", "1ns")
	if code != 1 || !strings.HasPrefix(errOut, "pool: ") || strings.HasPrefix(errOut, "pool: pool:") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one \"pool: \" prefix", code, out, errOut)
	}
}

func keygen(t *testing.T, path string, extra ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmd(t, append([]string{"keygen", "--out", path}, extra...)...)
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	code, out, errOut := keygen(t, path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	a, err := pool.ParseAddress(lastLine(out))
	if err != nil {
		t.Fatalf("last line is not an address: %v\n%s", err, out)
	}
	id, err := pool.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if a != pool.NewAddress(id.Public, 0, 0) {
		t.Errorf("address %v is not the saved key's", a)
	}
	if !strings.Contains(out, "public key: "+id.Public.String()+"\n") {
		t.Errorf("public key line missing:\n%s", out)
	}
}

func TestKeygenOrgSubnet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	code, out, errOut := keygen(t, path, "--org", "0x1234", "--subnet", "7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	a, err := pool.ParseAddress(lastLine(out))
	if err != nil || a.Org() != 0x1234 || a.Subnet() != 7 {
		t.Fatalf("address %q: %v", lastLine(out), err)
	}
}

func TestKeygenRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if code, _, errOut := keygen(t, path); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(path)
	code, out, errOut := keygen(t, path)
	if code != 1 || !strings.HasPrefix(errOut, "pool: ") || !strings.Contains(errOut, "--force") {
		t.Fatalf("second keygen: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("key file changed without --force")
	}
	if code, _, errOut := keygen(t, path, "--force"); code != 0 {
		t.Fatalf("keygen --force: exit %d: %s", code, errOut)
	}
	if after, _ := os.ReadFile(path); bytes.Equal(before, after) {
		t.Fatal("keygen --force did not replace the key")
	}
}

func TestAddrFileAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	_, kout, _ := keygen(t, path)
	code, out, errOut := runCmd(t, "addr", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if lastLine(out) != lastLine(kout) {
		t.Errorf("addr FILE says %q, keygen said %q", lastLine(out), lastLine(kout))
	}
	id, err := pool.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, "addr", "--key", id.Public.String())
	if code != 0 || lastLine(out) != lastLine(kout) {
		t.Errorf("addr --key: exit %d, %q (stderr %q), want %q", code, out, errOut, lastLine(kout))
	}
	if code, _, errOut := runCmd(t, "addr", filepath.Join(t.TempDir(), "missing.key")); code != 1 || !strings.Contains(errOut, "keygen") {
		t.Errorf("addr of a missing file: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd(t, "addr", "--key", "not-a-key"); code != 1 {
		t.Errorf("addr --key not-a-key: exit %d, want 1", code)
	}
}

func TestAddrCheck(t *testing.T) {
	id, err := pool.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	good := pool.NewAddress(id.Public, 3, 4).String()
	code, out, errOut := runCmd(t, "addr", "--check", good)
	if code != 0 || lastLine(out) != "ok" {
		t.Fatalf("good address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// One mistyped digit in the node ID.
	i := strings.LastIndex(good, "-") - 1
	d := byte('0')
	if good[i] == '0' {
		d = '1'
	}
	bad := good[:i] + string(d) + good[i+1:]
	code, out, errOut = runCmd(t, "addr", "--check", bad)
	if code != 1 || !strings.Contains(errOut, "checksum mismatch") || strings.Contains(out, "ok") {
		t.Fatalf("mistyped address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runCmd(t, "addr", "--check", "pool:1234"); code != 1 || !strings.HasPrefix(errOut, "pool: ") {
		t.Fatalf("malformed address: exit %d, stderr %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nosuch"},
		{"demo", "--bogus"},
		{"demo", "--size", "lots"},
		{"demo", "--size", "-1"},
		{"demo", "--channels", "0"},
		{"demo", "--channels", "129"},
		{"demo", "extra"},
		{"keygen"},
		{"keygen", "--out"},
		{"keygen", "--out", "x", "extra"},
		{"addr"},
		{"addr", "a.key", "b.key"},
		{"addr", "a.key", "--check", "pool:x"},
		{"addr", "--check", "pool:x", "--org", "1"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, "pool: ") || !strings.Contains(errOut, "--help") {
			t.Errorf("pool %s: exit %d, stdout %q, stderr %q; want exit 2 and a usage message",
				strings.Join(args, " "), code, out, errOut)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {}, {"demo", "--help"}, {"keygen", "--help"}, {"addr", "-h"}, {"help", "addr"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "pool ") || errOut != "" {
			t.Errorf("pool %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, errOut, out)
		}
	}
	for _, sub := range newRootCmd().Commands() {
		if sub.Short == "" || !strings.Contains(sub.Long, "pool "+sub.Name()) {
			t.Errorf("%s: help needs a Short and a Long with an example", sub.Name())
		}
	}
}
