package shimd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// StatusError is a response other than StatusConnected, as Connect
// returns it.
type StatusError struct {
	Status Status
	Reason string
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return "shimd: " + e.Status.String()
	}
	return fmt.Sprintf("shimd: %s: %s", e.Status, e.Reason)
}

// Connect does in Go what the C shim does: it asks the shimd at path for a
// stream to dst and returns it once shimd answered StatusConnected, or a
// *StatusError with shimd's status and reason. ctx bounds the whole
// exchange. Tests and Go tools use it; Go programs proper should use the
// bridge (docs/OPERATIONS.md, "The LD_PRELOAD shim").
func Connect(ctx context.Context, path string, dst netip.AddrPort) (net.Conn, error) {
	req, err := EncodeRequest(dst)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// A context canceled without a deadline still ends the wait.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// A busy shimd answers and closes without reading the request, so a
	// failed write may still have a response to read.
	_, werr := c.Write(req[:])
	var hdr [ResponseLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.Close()
		if werr != nil {
			return nil, fmt.Errorf("shimd: cannot send the request: %w", werr)
		}
		return nil, fmt.Errorf("shimd: no response: %w", err)
	}
	st, n, err := DecodeResponseHeader(hdr[:])
	if err != nil {
		c.Close()
		return nil, err
	}
	reason := make([]byte, n)
	if _, err := io.ReadFull(c, reason); err != nil {
		c.Close()
		return nil, fmt.Errorf("shimd: truncated response: %w", err)
	}
	if !stop() {
		c.Close()
		return nil, ctx.Err()
	}
	_ = c.SetDeadline(time.Time{})
	if st != StatusConnected {
		c.Close()
		return nil, &StatusError{Status: st, Reason: string(reason)}
	}
	return c, nil
}
