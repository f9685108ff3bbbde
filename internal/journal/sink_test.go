package journal

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testHead = [32]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28}

func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	s := &FileSink{Path: filepath.Join(dir, "head")}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.Publish(context.Background(), seq, testHead); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(s.Path)
	if want := "3 " + hex.EncodeToString(testHead[:]) + "\n"; string(b) != want {
		t.Fatalf("file sink wrote %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

var syslogRE = regexp.MustCompile(`^<109>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ pool \d+ journal-head ` +
	`\[pool-journal@32473 seq="7" head="([0-9a-f]{64})"\] journal head 7 ([0-9a-f]{64})$`)

func checkSyslog(t *testing.T, msg string) {
	t.Helper()
	m := syslogRE.FindStringSubmatch(msg)
	if m == nil || m[1] != hex.EncodeToString(testHead[:]) || m[2] != m[1] {
		t.Fatalf("syslog message %q", msg)
	}
}

func TestSyslogSinkUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := &SyslogSink{Network: "udp", Addr: pc.LocalAddr().String()}
	defer s.Close()
	if err := s.Publish(context.Background(), 7, testHead); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkSyslog(t, string(buf[:n]))
}

func TestSyslogSinkUnixStream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for range 2 {
			lenStr, err := br.ReadString(' ')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(lenStr))
			msg := make([]byte, n)
			if _, err := io.ReadFull(br, msg); err != nil {
				return
			}
			got <- string(msg)
		}
	}()
	s := &SyslogSink{Network: "unix", Addr: sock}
	defer s.Close()
	for range 2 {
		if err := s.Publish(context.Background(), 7, testHead); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case m := <-got:
			checkSyslog(t, m)
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
	}
}

func TestHTTPSink(t *testing.T) {
	got := make(chan HeadMessage, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var m HeadMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- m
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := &HTTPSink{URL: srv.URL, Node: "node-a"}
	if err := s.Publish(context.Background(), 9, testHead); err != nil {
		t.Fatal(err)
	}
	m := <-got
	if m.Node != "node-a" || m.Seq != 9 || m.Head != hex.EncodeToString(testHead[:]) || m.Time.IsZero() {
		t.Fatalf("posted %+v", m)
	}

	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer fail.Close()
	if err := (&HTTPSink{URL: fail.URL}).Publish(context.Background(), 9, testHead); err == nil {
		t.Fatal("a 500 answer was accepted")
	}
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	start := time.Now()
	if err := (&HTTPSink{URL: slow.URL, Timeout: 50 * time.Millisecond}).Publish(context.Background(), 9, testHead); err == nil {
		t.Fatal("a hanging server did not time out")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not applied")
	}
}

func TestRunPublisher(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, filepath.Join(dir, "journal"), Options{})
	defer j.Close()
	fill(t, j, 3)
	sink := &FileSink{Path: filepath.Join(dir, "head")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.RunPublisher(ctx, time.Hour, sink); close(done) }()
	cancel()
	<-done
	seq, head := j.Head()
	b, _ := os.ReadFile(sink.Path)
	if want := fmt.Sprintf("%d %x\n", seq, head); string(b) != want {
		t.Fatalf("published %q, want %q", b, want)
	}
}
