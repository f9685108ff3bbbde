package bench

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Go's HTTP client, which stands in when curl is missing, fetches the
// whole body from the blob server, and a short body is an error.
func TestDownloadGoClient(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const size = 3<<20 + 17
	b, err := startBlobServer(size)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	d := downloader{}
	if d.Name() != "go" {
		t.Fatalf("Name = %q", d.Name())
	}
	if f, err := d.get(ctx, "http://"+b.Addr+"/blob", size, time.Minute); err != nil || f.Elapsed <= 0 {
		t.Fatalf("get: %+v, %v", f, err)
	}
	if _, err := d.get(ctx, "http://"+b.Addr+"/blob", size+1, time.Minute); err == nil || !strings.Contains(err.Error(), "received") {
		t.Errorf("a body one byte short was accepted: %v", err)
	}
	if _, err := d.get(ctx, "http://"+b.Addr+"/small", 1<<10, time.Minute); err != nil {
		t.Errorf("/small: %v", err)
	}
}

// curl, when installed, is what downloads, and its byte count is checked.
func TestDownloadCurl(t *testing.T) {
	d := newDownloader()
	if d.curl == "" {
		t.Skip("curl not installed (Debian package curl): the bench uses Go's client instead")
	}
	b, err := startBlobServer(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if f, err := d.get(ctx, "http://"+b.Addr+"/blob", 1<<20, time.Minute); err != nil || f.Elapsed <= 0 {
		t.Fatalf("get: %+v, %v", f, err)
	}
	if _, err := d.get(ctx, "http://"+b.Addr+"/blob", 2<<20, time.Minute); err == nil {
		t.Errorf("curl's short download was accepted")
	}
}

// A stunnel pair carries bytes both ways to its target over TLS, records
// the negotiated version, and leaves nothing running when closed.
func TestStunnelPair(t *testing.T) {
	bin, ok := stunnelBinary()
	if !ok {
		t.Skip("stunnel not installed (Debian package stunnel4)")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	es, err := startEchoServer()
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := startStunnel(ctx, bin, map[string]string{"echo": es.Addr})
	if err != nil {
		t.Fatal(err)
	}
	p50, _, err := roundTrips(ctx, st.Addr["echo"], 20)
	if err != nil || p50 <= 0 {
		t.Fatalf("round trips through stunnel: %v (p50 %v)", err, p50)
	}
	if tls := st.TLS(); !strings.HasPrefix(tls, "TLSv1.") {
		t.Errorf("TLS = %q, want the version and suite from stunnel's log", tls)
	}
	pids := []int{st.cli.cmd.Process.Pid, st.srv.cmd.Process.Pid}
	addr := st.Addr["echo"]
	st.Close()
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("stunnel process %d still exists after Close", pid)
		}
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
}

// A stunnel that cannot start (here: a configuration it refuses) is an
// error that quotes its log, not a hang.
func TestStunnelBadConfig(t *testing.T) {
	bin, ok := stunnelBinary()
	if !ok {
		t.Skip("stunnel not installed (Debian package stunnel4)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := startStunnelProc(ctx, bin, t.TempDir()+"/bad.conf", "foreground = yes\npid =\n[x]\naccept = 127.0.0.1:1\nno-such-option = 1\n")
	if err == nil || !strings.Contains(err.Error(), "log ends") {
		t.Errorf("err = %v, want a failure quoting stunnel's log", err)
	}
}
