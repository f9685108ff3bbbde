package main

// The transfer that "pool listen" and "pool connect" share: netcat over
// one channel of one POOL session.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pool-go/pool"
	"github.com/spf13/cobra"
)

const (
	// ncBufSize is how much of stdin (or of the channel) one copy step
	// moves: large, so a fast link is not held up by small writes.
	ncBufSize = 256 << 10
	// ncProgressEvery is how often --progress redraws its line.
	ncProgressEvery = 500 * time.Millisecond
	// ncCloseTimeout bounds the wait for the peer's answering CLOSE once
	// both directions are done (the session itself gives up after its 2 s
	// drain; this is a backstop).
	ncCloseTimeout = 10 * time.Second
	// ncAbortWait bounds how long an abort waits for its CLOSE to be
	// written before the command exits anyway.
	ncAbortWait = 2 * time.Second
	// ncCodeAbort is the CLOSE code sent when this side abandons a
	// transfer (interrupted, stdin or stdout failed, wrong channel): the
	// first application code (docs/PROTOCOL.md §7.5), shown to the peer
	// as APPLICATION(0x80) with the reason.
	ncCodeAbort = pool.CodeApplication
)

// ncFlags are the flags "pool listen" and "pool connect" share.
type ncFlags struct {
	identity string
	channel  int
	progress bool
	quiet    bool
}

func (f *ncFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.identity, "identity", "", "this node's identity file, made by \"pool keygen\" (required)")
	fs.IntVar(&f.channel, "channel", 0, "channel that carries the data (0-255); both sides must use the same")
	fs.BoolVar(&f.progress, "progress", false, "show bytes sent and received and the rate on stderr, updated twice a second")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing on stderr but warnings and errors")
}

// check validates the shared flags; name is the command ("listen").
func (f *ncFlags) check(name string) error {
	if f.identity == "" {
		return usagef("%s needs --identity FILE (this node's key, made by \"pool keygen\")", name)
	}
	if f.channel < 0 || f.channel > 255 {
		return usagef("--channel must be between 0 and 255, got %d", f.channel)
	}
	return nil
}

// ncStatus writes the informational lines and the progress line to
// stderr. It is used from one goroutine only.
type ncStatus struct {
	w       io.Writer
	quiet   bool
	midLine bool // a progress line without its newline is showing
}

func (st *ncStatus) line(s string) {
	if st.midLine {
		fmt.Fprintln(st.w)
		st.midLine = false
	}
	fmt.Fprintln(st.w, s)
}

// info prints an informational line unless --quiet.
func (st *ncStatus) info(format string, args ...any) {
	if !st.quiet {
		st.line(fmt.Sprintf(format, args...))
	}
}

// warn prints a warning, also with --quiet.
func (st *ncStatus) warn(format string, args ...any) {
	st.line("warning: " + fmt.Sprintf(format, args...))
}

// progress redraws the progress line; final ends it with a newline.
func (st *ncStatus) progress(s string, final bool) {
	fmt.Fprintf(st.w, "\r%-64s", s)
	st.midLine = !final
	if final {
		fmt.Fprintln(st.w)
	}
}

// ncBytes formats a byte count in SI units, as the rate is.
func ncBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// ncErrText is an error's message without the "pool: " and "handshake: "
// prefixes that wrapped library errors repeat inside it.
func ncErrText(err error) string {
	s := err.Error()
	for _, p := range []string{"pool: ", "handshake: "} {
		s = strings.ReplaceAll(s, ": "+p, ": ")
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// ncAddrPort shows an address the way it was dialed: IPv4 clients of a
// dual-stack listener appear as IPv4-mapped addresses.
func ncAddrPort(ap netip.AddrPort) string {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// ncInteractive reports whether stdin is a terminal (or another character
// device), where end of input is a person pressing Ctrl-D, not something
// a transfer can wait for.
func ncInteractive(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ncOpenChannel gets channel n of s. Both sides open it locally, so
// either may send first, and a side with nothing to say (stdin a terminal)
// does not keep the other from sending: neither waits for the other to
// announce the channel. If the peer's first packet on n arrived before we
// opened it, it is taken from the accept queue instead. Channels the peer
// opens other than n are reset by rejectOthers.
func ncOpenChannel(ctx context.Context, s *pool.Session, n int) (*pool.Channel, error) {
	ch, err := s.OpenChannel(n)
	if err == nil {
		return ch, nil
	}
	if !errors.Is(err, pool.ErrChannelInUse) {
		return nil, err
	}
	for {
		c, err := s.AcceptChannel(ctx)
		if err != nil {
			return nil, err
		}
		if c.ID() == n {
			return c, nil
		}
		ncReject(c, n)
	}
}

func ncReject(c *pool.Channel, n int) {
	_ = c.Reset(ncCodeAbort, fmt.Sprintf("it uses --channel %d, not %d (--channel must match on both sides)", n, c.ID()))
}

// ncRejectOthers resets every channel the peer opens until ctx ends, so a
// peer on another --channel learns so instead of waiting.
func ncRejectOthers(ctx context.Context, s *pool.Session, n int) {
	for {
		c, err := s.AcceptChannel(ctx)
		if err != nil {
			return
		}
		ncReject(c, n)
	}
}

// ncLocalError is a failure on this side (stdin or stdout), which the
// peer is told of with an abortive CLOSE.
type ncLocalError struct {
	what string
	err  error
}

func (e *ncLocalError) Error() string { return e.what + ": " + e.err.Error() }
func (e *ncLocalError) Unwrap() error { return e.err }

// ncTransfer copies stdin to the channel and the channel to stdout, then
// closes the session and decides whether everything was delivered.
type ncTransfer struct {
	s           *pool.Session
	ch          *pool.Channel
	in          io.Reader
	out         io.Writer
	st          *ncStatus
	showProg    bool
	interactive bool

	// mu serializes channel writes with ending the sending direction, so
	// no DATA can follow the FIN.
	mu        sync.Mutex
	sendEnded bool        // the sender has ended or must not report
	stop      bool        // the session ended: the sender reports and ends
	reading   atomic.Bool // the sender is blocked reading stdin

	sent, received atomic.Int64
	sendRes        chan error // one result: nil after the FIN
	recvRes        chan error // one result: nil at the peer's FIN
}

// ncRun runs the transfer on channel ch of s until both directions are
// done and the peer confirmed it, and returns nil only if everything read
// from stdin was delivered and everything the peer sent reached stdout.
func ncRun(ctx context.Context, s *pool.Session, ch *pool.Channel, in io.Reader, out io.Writer, st *ncStatus, showProgress bool) error {
	t := &ncTransfer{s: s, ch: ch, in: in, out: out, st: st, showProg: showProgress,
		interactive: ncInteractive(in), sendRes: make(chan error, 1), recvRes: make(chan error, 1)}
	return t.run(ctx)
}

func (t *ncTransfer) send() {
	buf := make([]byte, ncBufSize)
	for {
		t.reading.Store(true)
		n, rerr := t.in.Read(buf)
		t.reading.Store(false)
		t.mu.Lock()
		if t.sendEnded {
			// Sending was ended for us (the peer finished and stdin is a
			// terminal, or the session ended): what we read is dropped.
			t.mu.Unlock()
			return
		}
		if t.stop {
			// The session ended while we were reading: say whether we
			// hold data that can no longer go out.
			t.sendEnded = true
			t.mu.Unlock()
			if n > 0 {
				t.sendRes <- ncErrUnsent
			} else {
				t.sendRes <- ncErrStdinOpen
			}
			return
		}
		if n > 0 {
			w, werr := t.ch.Write(buf[:n])
			t.sent.Add(int64(w))
			if werr != nil {
				t.sendEnded = true
				t.mu.Unlock()
				t.sendRes <- fmt.Errorf("sending on channel %d: %w", t.ch.ID(), werr)
				return
			}
		}
		switch {
		case rerr == io.EOF:
			t.sendEnded = true
			err := t.ch.CloseWrite()
			t.mu.Unlock()
			if err != nil {
				err = fmt.Errorf("ending channel %d: %w", t.ch.ID(), err)
			}
			t.sendRes <- err
			return
		case rerr != nil:
			t.sendEnded = true
			t.mu.Unlock()
			t.sendRes <- &ncLocalError{"reading stdin", rerr}
			return
		}
		t.mu.Unlock()
	}
}

// endSend stops sending as if stdin had ended: used when the peer has
// finished and stdin is a terminal. It reports on sendRes unless the
// sender already ended.
func (t *ncTransfer) endSend() {
	t.mu.Lock()
	if t.sendEnded {
		t.mu.Unlock()
		return
	}
	t.sendEnded = true
	err := t.ch.CloseWrite()
	t.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("ending channel %d: %w", t.ch.ID(), err)
	}
	t.sendRes <- err
}

func (t *ncTransfer) recv() {
	buf := make([]byte, ncBufSize)
	for {
		n, rerr := t.ch.Read(buf)
		if n > 0 {
			if _, err := t.out.Write(buf[:n]); err != nil {
				t.recvRes <- &ncLocalError{"writing stdout", err}
				return
			}
			t.received.Add(int64(n))
		}
		if rerr == io.EOF {
			if f, ok := t.out.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					t.recvRes <- &ncLocalError{"writing stdout", err}
					return
				}
			}
			t.recvRes <- nil
			return
		}
		if rerr != nil {
			t.recvRes <- fmt.Errorf("receiving on channel %d: %w", t.ch.ID(), rerr)
			return
		}
	}
}

// abort tells the peer this side gave up, with reason, and returns err.
// It waits briefly for the CLOSE to be written: an interrupted command
// should not hang on a peer that stopped reading.
func (t *ncTransfer) abort(reason string, err error) error {
	done := make(chan struct{})
	go func() {
		_ = t.s.CloseWithError(ncCodeAbort, reason)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(ncAbortWait):
	}
	return err
}

// channelReset reports whether err, from a read or write of the channel,
// is a reset of the channel alone (the peer is on another --channel, say)
// rather than the session ending, which the main loop waits for.
func (t *ncTransfer) channelReset(err error) bool {
	var ce *pool.CloseError
	return errors.As(err, &ce) && ce.Channel
}

// channelFailed ends the session after the peer reset our channel.
func (t *ncTransfer) channelFailed(err error) error {
	id := t.ch.ID()
	var ce *pool.CloseError
	errors.As(err, &ce)
	if ce.Remote {
		return t.abort(fmt.Sprintf("channel %d failed: %s", id, ce.Reason),
			fmt.Errorf("the peer reset channel %d: %s", id, ce.Reason))
	}
	return t.abort(fmt.Sprintf("channel %d failed: %s", id, ncErrText(err)), errors.New(ncErrText(err)))
}

func (t *ncTransfer) run(ctx context.Context) error {
	start := time.Now()
	rctx, stopReject := context.WithCancel(ctx)
	defer stopReject()
	go ncRejectOthers(rctx, t.s, t.ch.ID())
	go t.send()
	go t.recv()

	var tick <-chan time.Time
	if t.showProg {
		tk := time.NewTicker(ncProgressEvery)
		defer tk.Stop()
		tick = tk.C
	}
	lastAt, lastN := start, int64(0)
	defer func() {
		if t.showProg {
			d := time.Since(start)
			n := t.sent.Load() + t.received.Load()
			t.st.progress(fmt.Sprintf("sent %s, received %s in %.2f s (%.1f MB/s)",
				ncBytes(t.sent.Load()), ncBytes(t.received.Load()), d.Seconds(), float64(n)/1e6/max(d.Seconds(), 1e-9)), true)
		}
	}()

	var (
		sendDone, recvDone bool
		sendErr, recvErr   error
		ended              bool // the session ended before both directions did
	)
	for !(sendDone && recvDone) && !ended {
		select {
		case sendErr = <-t.sendRes:
			sendDone = true
			if le := (*ncLocalError)(nil); errors.As(sendErr, &le) {
				return t.abort("the sender could not read its input", sendErr)
			}
			if t.channelReset(sendErr) {
				return t.channelFailed(sendErr)
			}
		case recvErr = <-t.recvRes:
			recvDone = true
			if le := (*ncLocalError)(nil); errors.As(recvErr, &le) {
				return t.abort("the receiver could not write its output", recvErr)
			}
			if t.channelReset(recvErr) {
				return t.channelFailed(recvErr)
			}
			if recvErr == nil && !sendDone && t.interactive {
				// The peer is done and our stdin is a person at a
				// terminal: end our side too, as nc -l does.
				go t.endSend()
			}
		case <-t.s.Done():
			ended = true
		case <-ctx.Done():
			return t.abort("interrupted", errors.New("interrupted"))
		case now := <-tick:
			n := t.sent.Load() + t.received.Load()
			rate := float64(n-lastN) / 1e6 / now.Sub(lastAt).Seconds()
			lastAt, lastN = now, n
			t.st.progress(fmt.Sprintf("sent %s, received %s, %.1f MB/s",
				ncBytes(t.sent.Load()), ncBytes(t.received.Load()), rate), false)
		}
	}

	if !ended {
		// Both directions are done: our FIN went out after everything we
		// sent, and the peer's FIN arrived after everything it sent. Close
		// the session; the peer's CLOSE (its answer to ours, or its own)
		// proves it received our FIN, hence all our data.
		_ = t.s.Close()
		select {
		case <-t.s.Done():
		case <-time.After(ncCloseTimeout):
			return t.abort("no CLOSE", fmt.Errorf("the peer did not confirm the end of the session within %v", ncCloseTimeout))
		case <-ctx.Done():
			return t.abort("interrupted", errors.New("interrupted"))
		}
	} else {
		// The session ended first. Reads no longer block (buffered data,
		// then EOF or the session's error), nor do channel writes; only a
		// read of stdin can, and that we do not wait for.
		if !recvDone {
			select {
			case recvErr = <-t.recvRes:
				recvDone = true
			case <-ctx.Done():
				return errors.New("interrupted")
			}
			if le := (*ncLocalError)(nil); errors.As(recvErr, &le) {
				return recvErr
			}
		}
		if !sendDone {
			wait := true
			t.mu.Lock()
			switch {
			case t.sendEnded:
				// Its result is on the way.
			case t.reading.Load():
				// Idle on stdin: everything read so far was written.
				t.sendEnded = true
				sendErr, wait = ncErrStdinOpen, false
			default:
				// Between a read and a write: the sender reports.
				t.stop = true
			}
			t.mu.Unlock()
			if wait {
				sendErr = <-t.sendRes
				if le := (*ncLocalError)(nil); errors.As(sendErr, &le) {
					return sendErr
				}
			}
		}
	}
	return t.verdict(sendErr, recvErr)
}

// Why the sending direction did not finish when the session ended first.
var (
	// ncErrStdinOpen: it waited on stdin with nothing pending.
	ncErrStdinOpen = errors.New("stdin still open")
	// ncErrUnsent: it had read data it could no longer send.
	ncErrUnsent = errors.New("data read from stdin could not be sent: the session had ended")
)

// verdict decides, once the session is over, whether the transfer
// succeeded, and says why not.
func (t *ncTransfer) verdict(sendErr, recvErr error) error {
	sent, recvd := t.sent.Load(), t.received.Load()
	counts := fmt.Sprintf("%d bytes sent, %d received", sent, recvd)
	if err := ncEndedBadly(t.s, counts); err != nil {
		return err
	}
	if recvErr != nil {
		return fmt.Errorf("peer closed the session before it finished sending: %s (%s)", ncErrText(recvErr), counts)
	}
	// Everything we queued must have been written before the session
	// ended: a CLOSE from the peer makes the session drop what is queued.
	lost := uint64(sent) > t.s.Stats().BytesSent
	switch {
	case sendErr == ncErrStdinOpen && !lost:
		// The peer closed while we waited on stdin with nothing pending:
		// it had all we sent so far.
		t.st.info("the peer closed the session; stopped reading stdin")
		return nil
	case sendErr != nil && sendErr != ncErrStdinOpen:
		return fmt.Errorf("peer closed before receiving all data: %s (%s)", ncErrText(sendErr), counts)
	case sendErr != nil || lost:
		return fmt.Errorf("peer closed before receiving all data (%s)", counts)
	}
	return nil
}

// ncEndedBadly says why an ended session did not end with the peer's
// CLOSE(NO_ERROR), or returns nil if it did; counts ends the message.
func ncEndedBadly(s *pool.Session, counts string) error {
	pc := s.PeerClosed()
	if pc == nil {
		err := s.Err()
		var ce *pool.CloseError
		switch {
		case err == nil || errors.Is(err, pool.ErrPeerVanished):
			return fmt.Errorf("peer vanished before confirming delivery: the connection ended without a CLOSE (%s)", counts)
		case errors.As(err, &ce):
			// We closed it: a protocol error of the peer's, say.
			return fmt.Errorf("the session failed before the peer confirmed delivery: %s (%s)", ncErrText(err), counts)
		}
		return fmt.Errorf("peer vanished before confirming delivery: %s (%s)", ncErrText(err), counts)
	}
	switch {
	case pc.Code == ncCodeAbort:
		return fmt.Errorf("the peer gave up: %s (%s)", pc.Reason, counts)
	case pc.Code != pool.CodeNoError:
		return fmt.Errorf("the peer closed the session with %v: %s (%s)", pc.Code, pc.Reason, counts)
	}
	return nil
}

// ncServe opens channel n and runs the transfer on it: what listen and
// connect do once they have a session.
func ncServe(ctx context.Context, s *pool.Session, n int, in io.Reader, out io.Writer, st *ncStatus, showProgress bool) error {
	ch, err := ncOpenChannel(ctx, s, n)
	if err != nil {
		if errors.Is(err, pool.ErrClosed) || s.Err() != nil || s.PeerClosed() != nil {
			// The session is ending (the peer closed it, say): wait for
			// the end and say why.
			select {
			case <-s.Done():
			case <-time.After(ncCloseTimeout):
			case <-ctx.Done():
			}
			if e := ncEndedBadly(s, "nothing sent or received"); e != nil {
				return e
			}
		}
		if ctx.Err() != nil {
			_ = s.CloseWithError(ncCodeAbort, "interrupted")
			return errors.New("interrupted")
		}
		_ = s.CloseWithError(ncCodeAbort, "no channel")
		return fmt.Errorf("opening channel %d: %s", n, ncErrText(err))
	}
	return ncRun(ctx, s, ch, in, out, st, showProgress)
}
