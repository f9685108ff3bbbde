package journal

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Sink publishes the chain head outside the node (draft §10: "publish the
// chain head outside the node"), where whoever tampers with the journal
// file cannot also rewrite it.
type Sink interface {
	Publish(ctx context.Context, seq uint64, head [32]byte) error
}

// FileSink writes "SEQ HEAD\n" (decimal, then 64 lowercase hex digits) to
// Path atomically: a temporary file in the same directory, fsynced and
// renamed over Path, then the directory fsynced. Point it at storage the
// node's journal directory does not share (another mount, a log shipper's
// spool).
type FileSink struct {
	Path string
}

// Publish implements Sink.
func (s *FileSink) Publish(ctx context.Context, seq uint64, head [32]byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(s.Path), "."+filepath.Base(s.Path)+".*")
	if err != nil {
		return fmt.Errorf("journal: file sink: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d %x\n", seq, head)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.Path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.Path))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("journal: file sink: %w", err)
	}
	return nil
}

// SyslogSink sends one RFC 5424 message per head to a collector:
// Network "udp" (RFC 5426, one message per datagram), "unixgram" (a local
// socket such as /dev/log), or "tcp"/"unix" (stream, octet-counting framing
// of RFC 6587 §3.4.1: "LEN SP MSG"). The message is
//
//	<PRI>1 TIMESTAMP HOSTNAME pool PID journal-head [pool-journal@32473 seq="SEQ" head="HEX"] journal head SEQ HEX
//
// PRI = Facility*8 + Severity (default 13*8+5: log audit, notice), and
// 32473 is the private enterprise number RFC 5612 reserves for
// documentation: replace it with your own through SDID if you have one.
type SyslogSink struct {
	Network, Addr string
	Facility      int           // default 13 (log audit); set Severity too
	Severity      int           // default 5 (notice) when Facility is 0
	Hostname      string        // default os.Hostname(), "-" if unknown
	AppName       string        // default "pool"
	SDID          string        // default "pool-journal@32473"
	Timeout       time.Duration // dial and write; default 5 s

	mu   sync.Mutex
	conn net.Conn
}

// Message returns the RFC 5424 message Publish sends (without framing).
func (s *SyslogSink) Message(now time.Time, seq uint64, head [32]byte) []byte {
	fac, sev := s.Facility, s.Severity
	if fac == 0 && sev == 0 {
		fac, sev = 13, 5
	}
	host := s.Hostname
	if host == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "-"
		}
	}
	app := s.AppName
	if app == "" {
		app = "pool"
	}
	sdid := s.SDID
	if sdid == "" {
		sdid = "pool-journal@32473"
	}
	h := hex.EncodeToString(head[:])
	// Header fields are PRINTUSASCII without spaces (RFC 5424 §6.2);
	// the SD values are decimal and hex, which need no escaping.
	return fmt.Appendf(nil, "<%d>1 %s %s %s %d journal-head [%s seq=\"%d\" head=\"%s\"] journal head %d %s",
		fac*8+sev, now.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		header(host, 255), header(app, 48), os.Getpid(), sdid, seq, h, seq, h)
}

func header(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}

// Publish implements Sink. The connection is kept and redialled after an
// error.
func (s *SyslogSink) Publish(ctx context.Context, seq uint64, head [32]byte) error {
	msg := s.Message(time.Now(), seq, head)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, s.Network, s.Addr)
		if err != nil {
			return fmt.Errorf("journal: syslog sink: %w", err)
		}
		s.conn = c
	}
	if s.Network == "tcp" || s.Network == "unix" {
		msg = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(msg); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("journal: syslog sink: %w", err)
	}
	return nil
}

// Close closes the sink's connection.
func (s *SyslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// HTTPSink POSTs the head as JSON to URL:
//
//	{"node":"NODE","seq":SEQ,"head":"HEX","time":"RFC3339NANO"}
//
// with Content-Type application/json. Any status other than 2xx is an
// error. The request is bounded by Timeout (default 5 s) and by ctx.
type HTTPSink struct {
	URL     string
	Node    string // identifies the publishing node (e.g. its address)
	Timeout time.Duration
	Client  *http.Client // default http.DefaultClient
}

// HeadMessage is the JSON body HTTPSink sends.
type HeadMessage struct {
	Node string    `json:"node,omitempty"`
	Seq  uint64    `json:"seq"`
	Head string    `json:"head"`
	Time time.Time `json:"time"`
}

// Publish implements Sink.
func (s *HTTPSink) Publish(ctx context.Context, seq uint64, head [32]byte) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(HeadMessage{Node: s.Node, Seq: seq, Head: hex.EncodeToString(head[:]), Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("journal: http sink: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("journal: http sink: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("journal: http sink: %s answered %s", s.URL, resp.Status)
	}
	return nil
}

// Publish sends the journal's current durable head to every sink and
// returns the errors joined (one failing sink does not stop the others).
func (j *Journal) Publish(ctx context.Context, sinks ...Sink) error {
	seq, head := j.Head()
	var errs []error
	for _, s := range sinks {
		if err := s.Publish(ctx, seq, head); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunPublisher publishes the head to the sinks every interval while it
// has changed since the last successful publication, and once more when
// ctx ends. Failures are logged and retried at the next interval.
func (j *Journal) RunPublisher(ctx context.Context, every time.Duration, sinks ...Sink) {
	var last uint64
	published := false
	pub := func(ctx context.Context) {
		seq, _ := j.Head()
		if published && seq == last {
			return
		}
		if err := j.Publish(ctx, sinks...); err != nil {
			j.log.Warn("journal: publishing the chain head", "seq", seq, "err", err)
			return
		}
		last, published = seq, true
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			pub(fctx)
			cancel()
			return
		case <-t.C:
			pub(ctx)
		}
	}
}
