package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The bridge suite's HTTP download: an in-process net/http server sends a
// body of a given size from memory, and curl — the real program an
// operator would run, started with exec — fetches it to /dev/null. Without
// curl, Go's HTTP client stands in, and the report says so.

// blobServer serves random bytes: Size of them at /blob, 1 KiB at /small
// (the warm-up), from memory.
type blobServer struct {
	Addr string
	srv  *http.Server
	done chan struct{}
}

func startBlobServer(size int64) (*blobServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size := size
		if r.URL.Path == "/small" {
			size = 1 << 10
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for n := size; n > 0; {
			k := min(n, int64(len(payload)))
			if _, err := w.Write(payload[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	b := &blobServer{Addr: ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}}
	go func() { b.srv.Serve(ln); close(b.done) }()
	return b, nil
}

func (b *blobServer) Close() {
	b.srv.Close()
	<-b.done
}

// downloader fetches a URL's body and discards it.
type downloader struct {
	curl string // path of curl, or "" for Go's client
}

func newDownloader() downloader {
	p, _ := exec.LookPath("curl")
	return downloader{curl: p}
}

// Name is "curl" or "go".
func (d downloader) Name() string {
	if d.curl != "" {
		return "curl"
	}
	return "go"
}

// fetched is one download: its time from curl's point of view (connect to
// last byte, not counting curl's own start-up), and the CPU time the
// client spent (curl's user + system; zero for Go's client, whose CPU is
// this process's).
type fetched struct {
	Elapsed   time.Duration
	ClientCPU time.Duration
}

// get fetches url, which must return want bytes, within timeout.
func (d downloader) get(ctx context.Context, url string, want int64, timeout time.Duration) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if d.curl == "" {
		return goGet(ctx, url, want)
	}
	// --noproxy: the URL is on loopback whatever http_proxy says.
	cmd := exec.CommandContext(ctx, d.curl, "--silent", "--show-error", "--fail", "--noproxy", "*",
		"--max-time", strconv.Itoa(int(timeout/time.Second)+1), "--output", "/dev/null",
		"--write-out", "%{size_download} %{time_total}", url)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return fetched{}, fmt.Errorf("curl %s: %v: %s", url, err, strings.TrimSpace(errOut.String()))
	}
	var got int64
	var secs float64
	if _, err := fmt.Sscan(out.String(), &got, &secs); err != nil {
		return fetched{}, fmt.Errorf("curl %s: unreadable --write-out %q", url, out.String())
	}
	if got != want {
		return fetched{}, fmt.Errorf("curl %s: received %d bytes, the body has %d", url, got, want)
	}
	return fetched{Elapsed: time.Duration(secs * float64(time.Second)),
		ClientCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// goGet is the stand-in for curl: one connection, no keep-alive, the body
// read to EOF.
func goGet(ctx context.Context, url string, want int64) (fetched, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetched{}, err
	}
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fetched{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, make([]byte, ioChunk))
	if err != nil && !errors.Is(err, io.EOF) {
		return fetched{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if n != want {
		return fetched{}, fmt.Errorf("GET %s: received %d bytes, the body has %d", url, n, want)
	}
	return fetched{Elapsed: time.Since(start)}, nil
}
