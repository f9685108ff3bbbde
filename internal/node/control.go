package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pool-go/pool/internal/unixsock"
)

// The control protocol (docs/OPERATIONS.md, "Control protocol"): a Unix
// stream socket, mode 0600; one JSON object per line each way. A request
// is {"method":"status"} (and {"method":"telemetry","session":"3f2a"}
// may name sessions by an ID prefix); the reply is
// {"ok":true,"result":...} or {"ok":false,"error":"..."}. A connection
// may carry several requests, one after the other.
const (
	// MaxRequest is the longest request line, newline included.
	MaxRequest = 64 << 10
	// RequestTimeout bounds the wait for each request line and the writing
	// of its reply, so a client that stalls cannot hold the node.
	RequestTimeout = 5 * time.Second
	// maxControlConns bounds the control connections served at once.
	maxControlConns = 32
)

// Request is a control request.
type Request struct {
	Method string `json:"method"`
	// Session, for "telemetry", keeps the sessions whose ID starts with
	// these hex digits ("" keeps all); the session.config.* methods
	// require it and it must name exactly one live session.
	Session string `json:"session,omitempty"`

	// The session.config.* methods (PROTOCOL.md §7.15): the parameters
	// session.config.propose proposes for the peer's side (0: the
	// protocol's default; mtu_max 0: no cap) and its rollback deadline in
	// seconds (0: 60); Locked is session.config.lock's setting.
	HeartbeatMs    uint32  `json:"heartbeat_ms,omitempty"`
	RekeyIntervalS uint32  `json:"rekey_interval_s,omitempty"`
	RekeyPackets   uint64  `json:"rekey_packets,omitempty"`
	MTUMax         uint16  `json:"mtu_max,omitempty"`
	Deadline       float64 `json:"deadline,omitempty"`
	Locked         *bool   `json:"locked,omitempty"`

	// The config.* methods (docs/OPERATIONS.md, CHANGING THE
	// CONFIGURATION). Config is the new file's exact bytes (base64 in
	// JSON), for config.apply; ConfirmWithin, in seconds, makes it
	// commit-confirmed. Version is config.rollback's target (0: the
	// version before the live one); A and B are config.diff's versions.
	// Author is recorded in the history and the journal.
	Config        []byte  `json:"config,omitempty"`
	ConfirmWithin float64 `json:"confirm_within,omitempty"`
	Version       int     `json:"version,omitempty"`
	A             int     `json:"a,omitempty"`
	B             int     `json:"b,omitempty"`
	Author        string  `json:"author,omitempty"`
}

// Response is a control reply.
type Response struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

type controlServer struct {
	path    string
	ln      *net.UnixListener
	handle  func(Request) (any, error)
	log     *slog.Logger
	wg      sync.WaitGroup
	conns   unixsock.Conns
	closeMu sync.Once
}

// listenControl creates the control socket at path with mode 0600 (its
// directory with 0700 if missing). It refuses if another node answers on
// path, and removes a stale socket a dead node left behind.
func listenControl(path string, handle func(Request) (any, error), log *slog.Logger) (*controlServer, error) {
	ln, err := unixsock.Listen(path, 0o600, func() { log.Info("removed a stale control socket", "path", path) })
	switch {
	case errors.Is(err, unixsock.ErrInUse):
		return nil, fmt.Errorf("control socket %s: another pool node is running (it answers on this socket); stop it first, or give this node another control path", path)
	case err != nil:
		return nil, fmt.Errorf("control socket %s: %v", path, err)
	}
	c := &controlServer{path: path, ln: ln, handle: handle, log: log}
	c.conns.Max = maxControlConns
	return c, nil
}

// ServeControl serves the control protocol on a new socket at path, as the
// node does, with handle answering each request. Programs that are not the
// node but answer some of its methods use it (the standalone bridge answers
// "bridge.status"). The returned function stops serving and removes the
// socket.
func ServeControl(path string, handle func(Request) (any, error), log *slog.Logger) (stop func(), err error) {
	c, err := listenControl(path, handle, log)
	if err != nil {
		return nil, err
	}
	c.start()
	return c.Close, nil
}

func unwrapPathErr(err error) error { return unixsock.UnwrapPathErr(err) }

func unwrapOpErr(err error) error { return unixsock.UnwrapOpErr(err) }

func (c *controlServer) start() {
	c.wg.Add(1)
	go c.serve()
}

func (c *controlServer) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("control socket: accept failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch err := c.conns.Add(conn); {
		case errors.Is(err, unixsock.ErrBusy):
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = writeResponse(conn, nil, errors.New("busy: too many control connections"))
			conn.Close()
			continue
		case err != nil:
			conn.Close()
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.conns.Remove(conn)
			c.serveConn(conn)
		}()
	}
}

// serveConn answers requests until the client closes, stalls, or sends a
// line longer than MaxRequest.
func (c *controlServer) serveConn(conn net.Conn) {
	r := bufio.NewReaderSize(conn, MaxRequest)
	for {
		_ = conn.SetDeadline(time.Now().Add(RequestTimeout))
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			_ = writeResponse(conn, nil, fmt.Errorf("request longer than %d bytes", MaxRequest))
			return
		case err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)):
			return // closed, or silent for RequestTimeout
		}
		result, herr := c.dispatch(line)
		_ = conn.SetWriteDeadline(time.Now().Add(RequestTimeout))
		if werr := writeResponse(conn, result, herr); werr != nil || err != nil {
			return
		}
	}
}

func (c *controlServer) dispatch(line []byte) (any, error) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, fmt.Errorf(`bad request: %v (want one JSON object per line, like {"method":"status"})`, err)
	}
	if req.Method == "" {
		return nil, errors.New(`bad request: no "method" (want one JSON object per line, like {"method":"status"})`)
	}
	c.log.Debug("control request", "method", req.Method)
	return c.handle(req)
}

func writeResponse(w io.Writer, result any, err error) error {
	resp := Response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else {
		b, merr := json.Marshal(result)
		if merr != nil {
			resp = Response{Error: "internal error: " + merr.Error()}
		} else {
			resp.Result = b
		}
	}
	b, _ := json.Marshal(resp)
	_, werr := w.Write(append(b, '\n'))
	return werr
}

// Close stops serving, ends the control connections and removes the
// socket.
func (c *controlServer) Close() {
	c.closeMu.Do(func() {
		c.conns.CloseAll()
		_ = c.ln.Close() // also unlinks the socket
		c.wg.Wait()
	})
}

// UnreachableError says that no node answers on a control socket.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	hint := "is `pool node` running?"
	switch {
	case errors.Is(e.Err, fs.ErrPermission):
		hint = "the socket has mode 0600: run this as the node's user, e.g. sudo -u pool"
	case errors.Is(e.Err, fs.ErrNotExist):
		hint = "is `pool node` running? --control or $POOL_CONTROL names the socket of its configuration"
	}
	return fmt.Sprintf("cannot reach the node's control socket %s: %v (%s)", e.Path, e.Err, hint)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// RemoteError is an error the node replied with.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Call sends one request to the node's control socket at path and decodes
// its result into out (if not nil).
func Call(ctx context.Context, path, method string, out any) error {
	return CallRequest(ctx, path, Request{Method: method}, out)
}

// CallRequest is Call with a whole request.
func CallRequest(ctx context.Context, path string, request Request, out any) error {
	method := request.Method
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return &UnreachableError{Path: path, Err: unwrapOpErr(err)}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, _ := json.Marshal(request)
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("control socket %s: sending the request: %w", path, err)
	}
	line, err := bufio.NewReaderSize(conn, 64<<10).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		if ctx.Err() != nil {
			return fmt.Errorf("control socket %s: no reply: %w", path, ctx.Err())
		}
		return fmt.Errorf("control socket %s: reading the reply: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control socket %s: bad reply: %v", path, err)
	}
	if !resp.OK {
		return &RemoteError{Msg: resp.Error}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], resp.Result...)
		return nil
	}
	if err := json.Unmarshal(resp.Result, out); err != nil {
		return fmt.Errorf("control socket %s: bad %s result: %v", path, method, err)
	}
	return nil
}
